"""`judge-sft validate-data FILE...`: check messages Parquet files (ours or a user's) row by row."""

from pathlib import Path

from judge_sft.data.messages import MESSAGES_COLUMN
from judge_sft.data.validate import validate_file


def add_arguments(parser):
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="messages Parquet file(s) to check")
    parser.add_argument(
        "--messages-key", default=MESSAGES_COLUMN, help="column holding the chat messages (as the recipe's)"
    )


def main(args):
    invalid_rows = 0
    for path in args.files:
        result = validate_file(path, args.messages_key)
        print("\n".join([*result.problems, result.summary()]))
        invalid_rows += result.invalid
    return 1 if invalid_rows else 0
