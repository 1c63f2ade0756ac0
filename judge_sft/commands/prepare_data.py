"""`judge-sft prepare-data [--task responses|pointwise|pairwise]`: HelpSteer2 (jsonl / jsonl.gz / parquet, or the Hub)
-> DIR/train.parquet, DIR/val.parquet and DIR/stats.json, with a table of where the rows went."""

import argparse
from pathlib import Path

from judge_sft.commands.argtypes import fraction, positive_int
from judge_sft.data.helpsteer2 import MAX_SCORE, MIN_SCORE, SCORE_COLUMNS
from judge_sft.data.prepare import Options, prepare_data
from judge_sft.data.stats import STATS_NAME
from judge_sft.errors import JudgeSFTError
from judge_sft.judges.columns import TASKS
from judge_sft.judges.dataset import JudgeOptions, prepare_judge_data
from judge_sft.judges.verdicts import FORMATS, formats_for

# option -> the tasks it applies to (given for another task, it is an error, not silently ignored)
TASK_OPTIONS = {
    "attributes": ("pointwise",),
    "judge_format": ("pointwise", "pairwise"),
    "judge_template": ("pointwise", "pairwise"),
    "min_strength": ("pairwise",),
    "no_rationale": ("pairwise",),
    "one_order": ("pairwise",),
    "one_per_prompt": ("responses", "pointwise"),
    "min": ("responses", "pointwise"),
    "max": ("responses", "pointwise"),
    "val_fraction": ("responses", "pointwise"),
}


def add_arguments(parser):
    parser.add_argument(
        "--task",
        choices=TASKS,
        default="responses",
        help="responses: the best responses as answers (default); pointwise: grade one response's ratings; "
        "pairwise: pick the better of two (from HelpSteer2's preference file). See docs/judges.md",
    )
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
        parser.add_argument(flag, action="append", type=score_bound, metavar="ATTR=N", help=help_text)
    parser.add_argument(
        "--one-per-prompt",
        action="store_true",
        default=None,
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
        metavar="F",
        help="share of prompts hashed into val when no validation file is given (default 0.05)",
    )
    parser.add_argument("--sample", type=positive_int, metavar="N", help="keep a random N of the train rows")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="seed for --sample (default 0)")
    parser.add_argument("--overwrite", action="store_true", help="replace the outputs already in DIR")
    add_judge_arguments(parser.add_argument_group("judge tasks (--task pointwise|pairwise)"))


def add_judge_arguments(group):
    group.add_argument(
        "--attributes",
        type=attributes,
        metavar="A[,B...]",
        help=f"pointwise: the graded attribute(s), one verdict holding all (default helpfulness; any of "
        f"{', '.join(SCORE_COLUMNS)})",
    )
    group.add_argument(
        "--judge-format", choices=list(FORMATS), help="the prompt and verdict format (default openjudge)"
    )
    group.add_argument(
        "--judge-template",
        type=Path,
        metavar="PATH",
        help="your own Jinja prompt template (variables: docs/judges.md); the verdict stays --judge-format's",
    )
    group.add_argument(
        "--min-strength",
        type=int,
        choices=(1, 2, 3),
        metavar="N",
        help="pairwise: keep pairs with |preference_strength| >= N, 1-3 (default 1)",
    )
    group.add_argument("--no-rationale", action="store_true", default=None, help="pairwise: the verdict only")
    group.add_argument(
        "--one-order",
        action="store_true",
        default=None,
        help="pairwise: each pair in one order, A/B alternating (default: both orders)",
    )


def attributes(text):
    names = tuple(name.strip() for name in text.split(","))
    unknown = [name for name in names if name not in SCORE_COLUMNS]
    if unknown or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"expected distinct attributes from {', '.join(SCORE_COLUMNS)}, comma-separated, got {text!r}"
        )
    return names


def score_bound(text):
    attribute, _, value = text.partition("=")
    if attribute not in SCORE_COLUMNS or value not in {str(score) for score in range(MIN_SCORE, MAX_SCORE + 1)}:
        raise argparse.ArgumentTypeError(
            f"expected ATTR=N with ATTR one of {', '.join(SCORE_COLUMNS)} and N in "
            f"{MIN_SCORE}-{MAX_SCORE}, got {text!r}"
        )
    return attribute, int(value)


def main(args):
    check_task_options(args)
    judge_task = args.task != "responses"
    options = Options(
        args.keep_malformed,
        0.05 if args.val_fraction is None else args.val_fraction,
        bool(args.one_per_prompt),
        args.sample,
        args.seed,
        empty_text_is_error=judge_task,
    )
    bounds = (args.min or [], args.max or [])
    if judge_task:
        judge = JudgeOptions(
            args.task,
            args.judge_format or "openjudge",
            args.judge_template,
            args.attributes or ("helpfulness",),
            args.min_strength or 1,
            not args.no_rationale,
            not args.one_order,
        )
        stats = prepare_judge_data(args.input, args.from_hub, args.output_dir, *bounds, options, judge, args.overwrite)
    else:
        stats = prepare_data(args.input, args.from_hub, args.output_dir, *bounds, options, args.overwrite)
    print(summary(stats, args.output_dir))
    return 0


def check_task_options(args):
    for option, tasks in TASK_OPTIONS.items():
        if getattr(args, option) is not None and args.task not in tasks:
            flag = "--" + option.replace("_", "-")
            raise JudgeSFTError(f"{flag} applies to --task {' or '.join(tasks)}, not {args.task}")
    if args.judge_format and args.judge_format not in formats_for(args.task):
        raise JudgeSFTError(
            f"--judge-format {args.judge_format} has no {args.task} verdict (one of {', '.join(formats_for(args.task))})"
        )


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
    return "\n".join(table + judge_summary(stats.judge) + [f"stats: {directory / STATS_NAME}"])


def judge_summary(judge):
    """The labels per split, the first thing a judge's author checks (none for --task responses)."""
    if not judge:
        return []
    lines = [f"{judge['task']} judge, format {judge['format']} ({judge['template']})"]
    for split, labels in judge["labels"].items():
        if judge["task"] == "pairwise":
            shown = ", ".join(f"{letter} {count}" for letter, count in labels.items())
            strengths = ", ".join(f"{key}: {count}" for key, count in judge["pairs_per_strength"][split].items())
            lines.append(f"  {split} labels: {shown or 'none'}; pairs per strength: {strengths or 'none'}")
        else:
            for name, scores in labels.items():
                shown = ", ".join(f"{score}: {count}" for score, count in scores.items())
                lines.append(f"  {split} {name}: {shown or 'none'}")
    return lines
