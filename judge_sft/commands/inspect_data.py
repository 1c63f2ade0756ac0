"""`judge-sft inspect-data FILE --tokenizer PATH --max-length N`: what training sees, row by row.

Training's chat template, `train_on` resolution and tokenise-and-mask function; per row the token counts, whether
truncation bit, and the trained text (highlighted; `loss_text` in --json), then a summary of lengths and truncation.
"""

import json
import sys

from judge_sft.commands.argtypes import recipe_value
from judge_sft.data.inspection import header, inspect_row, invalid_row_problem, invalid_rows_error, render, summary
from judge_sft.data.messages import MESSAGES_COLUMN, iter_conversations, open_messages, resolve_train_on
from judge_sft.train.chat_templates import load_tokenizer, training_chat_template

BRACKETS = ("[[", "]]")
ANSI_TRAINED = ("\033[1;32m", "\033[0m")  # bold green


def add_arguments(parser):
    parser.add_argument("file", help="a messages Parquet file, as training reads it")
    parser.add_argument(
        "--tokenizer", required=True, help="the model's tokenizer: Hub id or directory (model_name_or_path)"
    )
    parser.add_argument(
        "--max-length",
        type=recipe_value("max_length"),
        default=4096,
        help="tokens per row, as the recipe's max_length (default 4096)",
    )
    parser.add_argument(
        "--train-on",
        choices=("auto", "final", "all"),
        default="auto",
        help="as the recipe's train_on: auto = what the file records, else all",
    )
    parser.add_argument(
        "--truncation-mode",
        choices=("keep_start", "keep_end"),
        default="keep_start",
        help="as the recipe's truncation_mode (keep_start: cut on the right)",
    )
    parser.add_argument("--messages-key", default=MESSAGES_COLUMN, help="column holding the chat messages")
    parser.add_argument("--chat-template-path", help="as the recipe's chat_template_path")
    parser.add_argument("--limit", type=int, help="only the first K rows")
    parser.add_argument("--json", action="store_true", help="one JSON object per row (summary on stderr)")
    parser.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="highlight trained text in colour (auto: when stdout is a terminal), else [[...]]",
    )


def main(args):
    open_messages(args.file, args.messages_key)  # a bad file fails before the tokenizer loads
    train_on = resolve_train_on(args.train_on, args.file)
    tokenizer = load_tokenizer(args.tokenizer, chat_template_path=args.chat_template_path)
    chat_template = training_chat_template(tokenizer)
    colour = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    markers = ANSI_TRAINED if colour else BRACKETS
    reports, first_problem = [], None
    for index, messages in iter_conversations(args.file, args.messages_key, args.limit):
        report, tokenized = inspect_row(
            index, messages, tokenizer, chat_template, args.max_length, train_on, args.truncation_mode, args.file
        )
        reports.append(report)
        first_problem = first_problem or invalid_row_problem(report, messages)
        if args.json:
            print(json.dumps(report, ensure_ascii=False))
        else:
            print(header(report))
            print(render(tokenized, tokenizer, markers))
    lines = summary(reports, args.max_length, train_on)
    print("\n".join(lines), file=sys.stderr if args.json else sys.stdout)
    if first_problem:  # after the report, which shows the rows: training would drop them for their data
        raise invalid_rows_error(args.file, reports, first_problem)
    return 0
