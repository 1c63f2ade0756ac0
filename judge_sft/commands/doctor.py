"""`judge-sft doctor RECIPE.yaml [--key value ...]`: the cookbook's "loss not decreasing" checks, before any GPU hour.

One PASS / WARN / FAIL line per check (judge_sft.planning.doctor), exit 1 on a failure."""

import argparse

from judge_sft.planning.doctor import FAIL, PASS, WARN, run_checks
from judge_sft.train.arguments import parse_recipe


def add_arguments(parser):
    parser.add_argument("recipe", help="the recipe YAML that run.py would train")
    parser.add_argument(
        "overrides", nargs=argparse.REMAINDER, help="--key value recipe overrides, as run.py takes them"
    )


def main(args):
    judge_args, training_args, model_args = parse_recipe([args.recipe, *args.overrides], for_launch=False)
    checks = run_checks(judge_args, training_args, model_args)
    for check in checks:
        print(check.line())
    counts = {status: sum(check.status == status for check in checks) for status in (PASS, WARN, FAIL)}
    print(f"doctor: {counts[PASS]} passed, {counts[WARN]} warnings, {counts[FAIL]} failed")
    return 1 if counts[FAIL] else 0
