"""`judge-sft prepare-data`: HelpSteer2 (jsonl / jsonl.gz / parquet, or the Hub) -> DIR/train.parquet, DIR/val.parquet
and DIR/stats.json, with a table of where the rows went."""

import argparse
from pathlib import Path

from judge_sft.commands.argtypes import fraction, positive_int
from judge_sft.data.helpsteer2 import MAX_SCORE, MIN_SCORE, SCORE_COLUMNS
from judge_sft.data.prepare import Options, prepare_data
from judge_sft.data.stats import STATS_NAME


def add_arguments(parser):
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--input",
        action="append",
        type=Path,
        metavar="PATH",
        help="a .jsonl, .jsonl.gz or .parquet file, or a directory of them (repeatable); "
        "files named validation*/val*/test* feed the val split",
    )
    source.add_argument(
        "--from-hub", metavar="DATASET", help="load a Hub dataset through `datasets`, e.g. nvidia/HelpSteer2"
    )
    parser.add_argument(
        "--output-dir",
        required=True,
        type=Path,
        metavar="DIR",
        help="where train.parquet, val.parquet and stats.json go",
    )
    bounds = {
        "--min": "keep rows with ATTR >= N (repeatable; default correctness=4, --min correctness=0 lifts it)",
        "--max": "keep rows with ATTR <= N (repeatable)",
    }
    for flag, help_text in bounds.items():
        parser.add_argument(flag, action="append", default=[], type=score_bound, metavar="ATTR=N", help=help_text)
    parser.add_argument(
        "--one-per-prompt",
        action="store_true",
        help="of the responses to one prompt, keep only the most helpful (first on ties)",
    )
    parser.add_argument(
        "--keep-malformed",
        action="store_true",
        help="keep prompts whose turn markers do not alternate, as one user message (default: skip them)",
    )
    parser.add_argument(
        "--val-fraction",
        type=fraction,
        default=0.05,
        metavar="F",
        help="share of prompts hashed into val when no validation file is given (default 0.05)",
    )
    parser.add_argument("--sample", type=positive_int, metavar="N", help="keep a random N of the train rows")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="seed for --sample (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace the outputs already in DIR")


def score_bound(text):
    attribute, _, value = text.partition("=")
    if attribute not in SCORE_COLUMNS or value not in {str(score) for score in range(MIN_SCORE, MAX_SCORE + 1)}:
        raise argparse.ArgumentTypeError(
            f"expected ATTR=N with ATTR one of {', '.join(SCORE_COLUMNS)} and N in "
            f"{MIN_SCORE}-{MAX_SCORE}, got {text!r}"
        )
    return attribute, int(value)


def main(args):
    options = Options(args.keep_malformed, args.val_fraction, args.one_per_prompt, args.sample, args.seed)
    stats = prepare_data(args.input, args.from_hub, args.output_dir, args.min, args.max, options, args.overwrite)
    print(summary(stats, args.output_dir))
    return 0


def summary(stats, directory):
    """A short table of where the rows went."""
    lines = [("read", stats.rows_read, f"from {len(stats.inputs)} input(s)")]
    lines += [(f"  dropped: {reason}", count, "") for reason, count in stats.dropped.items() if count]
    if stats.malformed_kept_as_one_turn:
        lines.append(("  malformed kept as one turn", stats.malformed_kept_as_one_turn, ""))
    lines.append(("kept", stats.rows_kept, f"({stats.multi_turn['kept']} multi-turn)"))
    for split, counts in stats.splits.items():
        path = directory / f"{split}.parquet"
        lines.append((f"  {split}", counts.rows, f"{path}" if counts.rows else f"{path} (empty: leave val_file unset)"))
    width = max(len(label) for label, _, _ in lines)
    digits = max(len(str(count)) for _, count, _ in lines)
    table = [f"{label:<{width}}  {count:>{digits}}  {note}".rstrip() for label, count, note in lines]
    return "\n".join(table + [f"stats: {directory / STATS_NAME}"])
