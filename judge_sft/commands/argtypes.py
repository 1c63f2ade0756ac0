"""argparse types shared by the commands: a bad value is argparse's own one-line error naming the flag."""

import argparse

from judge_sft.train.recipe_values import TYPE_NAMES, range_problem


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def fraction(text):
    """A number in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}")
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text}")
    return value


def recipe_value(key, convert=int):
    """The argparse type of a flag that sets recipe key `key`: converted as the recipe converts it, and refused where
    parse_recipe would refuse it (the shared range checks of judge_sft/train/recipe_values.py)."""

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {TYPE_NAMES[convert.__name__]}, got {text!r}")
        problem = range_problem(key, value, text)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    return parse
