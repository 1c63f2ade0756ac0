"""The `judge-sft` console script: one subcommand per module, each exposing `add_arguments(parser)` and `main(args) -> int`."""

import argparse
import contextlib
import importlib
import os
import sys

from judge_sft import __version__
from judge_sft.errors import JudgeSFTError, print_error

# name -> one-line help; the command lives in judge_sft/commands/<name with _>.py, imported only when it runs.
COMMANDS = {
    "prepare-data": "HelpSteer2 (jsonl / jsonl.gz / parquet) -> train/val messages Parquet",
    "validate-data": "check a messages Parquet file row by row",
    "inspect-data": "show token counts, truncation and the trained text of each row",
    "recipe": "the cookbook's run parameters -> a commented YAML recipe",
    "plan": "per-GPU memory, steps and time of a recipe on N GPUs, with advice when it does not fit",
    "doctor": "check data, chat template, special tokens and truncation before training",
    "train": "train a recipe: check it against the launch, then run accelerate's launcher on judge_sft.run",
    "plot": "train/val loss and lr against step, from a run's trainer_state.json, as a PNG",
    "samples": "a run's eval samples: each prompt, its reference and the model's completion side by side",
    "evaluate": "how well judges judge: their verdicts on a judge Parquet against its human labels, side by side",
    "push": "push an output or checkpoint directory to the Hugging Face Hub, with its model card",
    "merge": "merge a LoRA run's adapters into its base model: a plain model any server loads",
    "fix-template": "remove the training-only generation tags from a saved chat template, so every server loads it",
    "tiny-model": "write a tiny random-weight Qwen3 with the real Qwen3 tokenizer (demo, tests)",
}


# Library modules that print to stdout as they load: transformers' reporters print "[INFO] Running in WANDB offline
# mode" when WANDB_MODE=offline, which only repeats the user's setting; stdout is the command's own (`plan --json`).
CHATTY_IMPORTS = ("transformers.integrations.integration_utils",)


@contextlib.contextmanager
def quiet_library_imports():
    """Imports with any stdout output on stderr, and WANDB_MODE out of sight of transformers' import-time notice."""
    wandb_mode = os.environ.pop("WANDB_MODE", None)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        if wandb_mode is not None:
            os.environ["WANDB_MODE"] = wandb_mode


def command_module(name):
    with quiet_library_imports():
        module = importlib.import_module(f"judge_sft.commands.{name.replace('-', '_')}")
        if "transformers" in sys.modules:  # a command that loads the libraries: their notices too
            for chatty in CHATTY_IMPORTS:
                importlib.import_module(chatty)
    return module


def build_parser(command=None):
    parser = argparse.ArgumentParser(prog="judge-sft", description="Train judge models by SFT on chat data.")
    parser.add_argument("--version", action="version", version=f"judge-sft {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_text in COMMANDS.items():
        subparser = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == command:
            command_module(name).add_arguments(subparser)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    command = next((arg for arg in argv if arg in COMMANDS), None)
    try:
        args = build_parser(command).parse_args(argv)
        status = command_module(args.command).main(args) or 0
        sys.stdout.flush()
        return status
    except JudgeSFTError as error:
        print_error(f"judge-sft {command}: error: {error}")
        return getattr(error, "status", 1)
    except BrokenPipeError:  # `judge-sft doctor | head`: the reader left; stop quietly, as `yes | head` does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return 128 + 13  # SIGPIPE


if __name__ == "__main__":
    sys.exit(main())
