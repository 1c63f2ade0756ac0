"""`judge-sft inspect-data FILE --tokenizer PATH --max-length N`: what training sees, row by row.

The same code as training: the training chat template (judge_sft.chat_templates), the same `train_on` resolution as
run.py (the recipe's value, or with `auto` what prepare-data recorded in the file, else `all`), and
judge_sft.tokenization.tokenize_messages for tokens, truncation and the loss mask. Shown per row: token counts,
whether truncation bit, and the trained text (highlighted in the rendering; `loss_text` in --json), then a summary
of lengths and the truncation rate.
"""

import json
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from judge_sft.chat_templates import load_tokenizer, training_chat_template
from judge_sft.data_format import resolve_train_on
from judge_sft.errors import JudgeSFTError
from judge_sft.tokenization import IGNORE_INDEX, tokenize_messages

BRACKETS = ("[[", "]]")
ANSI_TRAINED = ("\033[1;32m", "\033[0m")  # bold green
PERCENTILES = (50, 90, 99)


def open_messages(path, messages_key):
    try:
        parquet = pq.ParquetFile(path)
    except FileNotFoundError:
        raise JudgeSFTError(f"{path}: no such file")
    except (pa.ArrowException, OSError) as error:
        raise JudgeSFTError(f"{path}: not a readable Parquet file ({str(error).splitlines()[0]})")
    if messages_key not in parquet.schema_arrow.names:
        raise JudgeSFTError(f"{path}: no `{messages_key}` column (columns: {', '.join(parquet.schema_arrow.names)})")
    return parquet


def read_conversations(parquet, messages_key, limit=None):
    """(row index, messages) for the first `limit` rows (all when None)."""
    index = 0
    for batch in parquet.iter_batches(batch_size=256, columns=[messages_key]):
        for messages in batch.column(0).to_pylist():
            if limit is not None and index >= limit:
                return
            yield index, messages
            index += 1


def inspect_row(index, messages, tokenizer, chat_template, max_length, train_on, truncation_mode, where):
    try:
        tokenized = tokenize_messages(messages, tokenizer, chat_template, max_length, train_on, truncation_mode)
    except Exception as error:  # jinja, tokenizer and type errors alike: name the row, not a traceback
        raise JudgeSFTError(f"{where} row {index}: cannot tokenise ({type(error).__name__}: {str(error).splitlines()[0]})")
    trained = [token for token in tokenized["labels"] if token != IGNORE_INDEX]
    report = {
        "row": index,
        "num_tokens": tokenized["num_tokens"],
        "num_loss_tokens": tokenized["num_loss_tokens"],
        "truncated": tokenized["truncated"],
        "dropped": tokenized["num_loss_tokens"] == 0,  # training drops a row left with no trained token
        "loss_text": decode(tokenizer, trained),
    }
    return report, tokenized


def decode(tokenizer, token_ids):
    return tokenizer.decode(token_ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def render(tokenized, tokenizer, markers):
    """The row's text with each run of trained tokens wrapped in markers."""
    pieces, run, run_trained = [], [], None
    for token, label in zip(tokenized["input_ids"], tokenized["labels"]):
        trained = label != IGNORE_INDEX
        if run and trained != run_trained:
            pieces.append(wrap(decode(tokenizer, run), markers if run_trained else None))
            run = []
        run.append(token)
        run_trained = trained
    if run:
        pieces.append(wrap(decode(tokenizer, run), markers if run_trained else None))
    return "".join(pieces)


def wrap(text, markers):
    return f"{markers[0]}{text}{markers[1]}" if markers else text


def header(report):
    state = "TRUNCATED" if report["truncated"] else "not truncated"
    if report["dropped"]:
        state += ", DROPPED (no trained token left)"
    return f"=== row {report['row']}: {report['num_tokens']} tokens, {report['num_loss_tokens']} trained, {state}"


def summary(reports, max_length, train_on):
    if not reports:
        return ["no rows"]
    tokens = np.array([report["num_tokens"] for report in reports])
    trained = np.array([report["num_loss_tokens"] for report in reports])
    truncated = sum(report["truncated"] for report in reports)
    dropped = sum(report["dropped"] for report in reports)

    def spread(values):
        cuts = "  ".join(f"p{p} {np.percentile(values, p):.0f}" for p in PERCENTILES)
        return f"mean {values.mean():.0f}  {cuts}  max {values.max()}"

    return [
        f"{len(reports)} row{'s' * (len(reports) != 1)}, loss on {train_on} assistant message(s), max_length {max_length}",
        f"tokens:         {spread(tokens)}",
        f"trained tokens: {spread(trained)}",
        f"truncated: {truncated} of {len(reports)} rows ({truncated / len(reports):.1%})",
        f"dropped (truncation left no trained token): {dropped}",
    ]


def add_arguments(parser):
    parser.add_argument("file", help="a messages Parquet file, as training reads it")
    parser.add_argument("--tokenizer", required=True, help="the model's tokenizer: Hub id or directory (model_name_or_path)")
    parser.add_argument("--max-length", type=int, default=4096, help="tokens per row, as the recipe's max_length (default 4096)")
    parser.add_argument("--train-on", choices=("auto", "final", "all"), default="auto",
                        help="as the recipe's train_on: auto = what the file records, else all")
    parser.add_argument("--truncation-mode", choices=("keep_start", "keep_end"), default="keep_start",
                        help="as the recipe's truncation_mode (keep_start: cut on the right)")
    parser.add_argument("--messages-key", default="messages", help="column holding the chat messages")
    parser.add_argument("--chat-template-path", help="as the recipe's chat_template_path")
    parser.add_argument("--limit", type=int, help="only the first K rows")
    parser.add_argument("--json", action="store_true", help="one JSON object per row (summary on stderr)")
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                        help="highlight trained text in colour (auto: when stdout is a terminal), else [[...]]")


def main(args):
    parquet = open_messages(args.file, args.messages_key)
    train_on = resolve_train_on(args.train_on, args.file)
    tokenizer = load_tokenizer(args.tokenizer, chat_template_path=args.chat_template_path)
    chat_template = training_chat_template(tokenizer)
    colour = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    markers = ANSI_TRAINED if colour else BRACKETS
    reports = []
    for index, messages in read_conversations(parquet, args.messages_key, args.limit):
        report, tokenized = inspect_row(index, messages, tokenizer, chat_template, args.max_length, train_on,
                                        args.truncation_mode, args.file)
        reports.append(report)
        if args.json:
            print(json.dumps(report, ensure_ascii=False))
        else:
            print(header(report))
            print(render(tokenized, tokenizer, markers))
    lines = summary(reports, args.max_length, train_on)
    print("\n".join(lines), file=sys.stderr if args.json else sys.stdout)
    return 0
