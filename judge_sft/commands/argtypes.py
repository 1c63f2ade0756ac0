"""argparse types shared by the commands: a bad value is argparse's own one-line error naming the flag."""

import argparse


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


def cpu_offload(text):
    """none, optimizer or all; true and false (the cookbook's) mean all and none."""
    from judge_sft.errors import JudgeSFTError
    from judge_sft.train.launch import cpu_offload_mode

    try:
        return cpu_offload_mode(text)
    except JudgeSFTError:
        raise argparse.ArgumentTypeError(f"expected none, optimizer, all, true or false, got {text!r}")
