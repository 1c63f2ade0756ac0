"""`judge-sft fix-template DIR...`: remove the training-only {% generation %} tags from the chat template of a judge
saved before judge-sft stopped saving them, so servers outside transformers load it and `judge-sft push` takes it."""

from pathlib import Path

from judge_sft.train.chat_templates import fix_saved_template


def add_arguments(parser):
    parser.add_argument("paths", nargs="+", type=Path, help="output directories of runs, or their checkpoint-N folders")


def main(args):
    for folder in args.paths:
        path, engines = fix_saved_template(folder)
        if engines is None:
            print(f"{path}: no training-only tags, left as it is")
        else:
            print(f"{path}: rewritten without {{% generation %}} tags; renders as before in {', '.join(engines)}")
    return 0
