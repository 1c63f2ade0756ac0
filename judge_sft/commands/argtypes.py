"""argparse types shared by the commands: a bad value is argparse's own one-line error naming the flag."""

import argparse
import math

from judge_sft.train.recipe_values import TYPE_NAMES, range_problem


def number_in(text, convert, accepts, expected):
    """`convert(text)` when `accepts` it, else argparse's error: "expected <expected>, got <text>"."""
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not accepts(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
    return value


def positive_int(text):
    return number_in(text, int, lambda value: value >= 1, "a positive integer")


def fraction(text):
    """A number in [0, 1)."""
    return number_in(text, float, lambda value: 0 <= value < 1, "a fraction in [0, 1)")


def positive_number(text):
    """A finite number above 0 (GB, TFLOPS)."""
    return number_in(text, float, lambda value: 0 < value < math.inf, "a positive number")


def unit_fraction(text):
    """A number in (0, 1]: a share that must be above nothing and at most all (MFU)."""
    return number_in(text, float, lambda value: 0 < value <= 1, "a fraction in (0, 1]")


def recipe_value(key, convert=int):
    """The argparse type of a flag that sets recipe key `key`: converted as the recipe converts it, and refused where
    parse_recipe would refuse it (the shared range checks of judge_sft/train/recipe_values.py)."""

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {TYPE_NAMES[convert.__name__]}, got {text!r}") from None
        problem = range_problem(key, value, text)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    return parse


def cpu_offload(text):
    """none, optimizer or all; true and false (the cookbook's) mean all and none."""
    from judge_sft.errors import JudgeSFTError
    from judge_sft.train.launch import cpu_offload_mode

    try:
        return cpu_offload_mode(text)
    except JudgeSFTError:
        raise argparse.ArgumentTypeError(f"expected none, optimizer, all, true or false, got {text!r}")
