"""`judge-sft samples OUTPUT_DIR [--step N]`: the eval samples of a run (latest step by default), each row's prompt
(shortened) above its reference and the model's completion side by side."""

import shutil
import textwrap
from itertools import zip_longest
from pathlib import Path

from judge_sft.commands.argtypes import positive_int
from judge_sft.train.sample_files import prompt_text, read_samples, samples_path, shorten

PROMPT_LINES = 3  # a longer prompt shows its first and last lines this many
GUTTER = " │ "


def add_arguments(parser):
    parser.add_argument("output_dir", type=Path, help="a run's output_dir (holding samples/step-*.jsonl)")
    parser.add_argument("--step", type=positive_int, help="the evaluation step to show (default: the latest)")


def wrapped(text, width):
    """`text` as lines of at most `width` characters, its own line breaks kept."""
    return [piece for line in text.splitlines() or [""] for piece in textwrap.wrap(line, width) or [""]]


def head_and_tail(lines):
    if len(lines) <= 2 * PROMPT_LINES + 1:
        return lines
    return [*lines[:PROMPT_LINES], f"… ({len(lines) - 2 * PROMPT_LINES} more lines) …", *lines[-PROMPT_LINES:]]


def side_by_side(left, right, width):
    column = (width - len(GUTTER)) // 2
    left, right = (text if text.strip() else shorten(text, column) for text in (left, right))  # "\n\n" shows as ↵↵
    rows = zip_longest(wrapped(left, column), wrapped(right, column), fillvalue="")
    return [f"{first:<{column}}{GUTTER}{second}".rstrip() for first, second in rows]


def main(args):
    step, records = read_samples(args.output_dir, args.step)
    width = max(shutil.get_terminal_size((120, 24)).columns, 40)
    print(f"step {step}: {len(records)} samples ({samples_path(args.output_dir, step)})")
    for record in records:
        print(f"\n── row {record['row']} " + "─" * (width - 10 - len(str(record["row"]))))
        print("\n".join(head_and_tail(wrapped(prompt_text(record["prompt"]), width))))
        print()
        print("\n".join(side_by_side("REFERENCE", "COMPLETION", width)))
        print("\n".join(side_by_side(record["reference"], record["completion"], width)))
    return 0
