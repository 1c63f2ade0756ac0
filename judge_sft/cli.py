"""The `judge-sft` console script: one subcommand per module, each exposing `add_arguments(parser)` and `main(args) -> int`."""

import argparse
import importlib
import sys

from judge_sft import __version__
from judge_sft.errors import JudgeSFTError

# name -> (module, one-line help). Modules are imported only when their command runs, so `--help` stays fast.
COMMANDS = {
    "prepare-data": (
        "judge_sft.commands.prepare_data",
        "HelpSteer2 (jsonl / jsonl.gz / parquet) -> train/val messages Parquet",
    ),
    "validate-data": ("judge_sft.commands.validate_data", "check a messages Parquet file row by row"),
    "recipe": ("judge_sft.commands.recipe", "the cookbook's run parameters -> a commented YAML recipe for run.py"),
    "inspect-data": (
        "judge_sft.commands.inspect_data",
        "show token counts, truncation and the trained text of each row",
    ),
    "plot": (
        "judge_sft.commands.plot",
        "train/val loss and lr against step, from a run's trainer_state.json, as a PNG",
    ),
    "samples": (
        "judge_sft.commands.samples",
        "a run's eval samples: each prompt, its reference and the model's completion side by side",
    ),
    "push": (
        "judge_sft.commands.push",
        "push an output or checkpoint directory to the Hugging Face Hub, with its model card",
    ),
    "plan": (
        "judge_sft.commands.plan",
        "per-GPU memory, steps and time of a recipe on N GPUs, with advice when it does not fit",
    ),
    "doctor": ("judge_sft.commands.doctor", "check data, chat template, special tokens and truncation before training"),
    "tiny-model": (
        "judge_sft.commands.tiny_model",
        "write a tiny random-weight Qwen3 with the real Qwen3 tokenizer (demo, tests)",
    ),
}


def build_parser(command=None):
    parser = argparse.ArgumentParser(prog="judge-sft", description="Train judge models by SFT on chat data.")
    parser.add_argument("--version", action="version", version=f"judge-sft {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        subparser = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == command:
            importlib.import_module(module_name).add_arguments(subparser)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    command = next((arg for arg in argv if arg in COMMANDS), None)
    args = build_parser(command).parse_args(argv)
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return module.main(args) or 0
    except JudgeSFTError as error:
        print(f"judge-sft {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
