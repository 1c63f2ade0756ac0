"""`judge-sft validate-data`: check a messages Parquet file (ours or a user's) row by row.

`check_messages` is the per-row rule set; doctor and training call it too.
"""

import argparse
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from judge_sft.data_format import MESSAGES_COLUMN, ROLES, TRAIN_ON_METADATA_KEY
from judge_sft.errors import JudgeSFTError

READ_BATCH_ROWS = 4096


def check_messages(messages) -> list[str]:
    """The problems with one conversation (an empty list when it is valid).

    Valid: a non-empty list of {role, content}; roles system (first message only), user, assistant; after the
    optional system message, user and assistant alternate starting with user; the last message is from the
    assistant; no content is empty or blank.
    """
    if messages is None:
        return ["messages is null"]
    if not isinstance(messages, list):
        return [f"messages is not a list (got {type(messages).__name__})"]
    if not messages:
        return ["no messages"]
    problems = []
    expected = "user"  # the role the next non-system message should have
    for index, message in enumerate(messages):
        role, content = (message.get("role"), message.get("content")) if isinstance(message, dict) else (None, None)
        where = f"message {index}"
        if role not in ROLES:
            problems.append(f"{where}: role is {role!r}, expected one of {', '.join(ROLES)}")
        elif role == "system":
            if index != 0:
                problems.append(f"{where}: system message is allowed first only")
        elif role != expected:
            problems.append(f"{where}: expected {expected}, got {role} (user and assistant alternate, user first)")
        if role in ("user", "assistant"):
            expected = "assistant" if role == "user" else "user"
        if not isinstance(content, str):
            problems.append(f"{where}: content is {'missing' if content is None else type(content).__name__}")
        elif not content.strip():
            problems.append(f"{where}: content is empty")
    last_role = messages[-1].get("role") if isinstance(messages[-1], dict) else None
    if last_role != "assistant":
        problems.append(f"last message is from {last_role}, expected assistant")
    return problems


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="messages Parquet file(s) to check")


def main(args: argparse.Namespace) -> int:
    invalid_rows = sum(validate_file(path)[1] for path in args.files)
    return 1 if invalid_rows else 0


def validate_file(path: Path) -> tuple[int, int]:
    """Print every problem as `FILE row N: ...` and a count line; returns (rows, invalid rows)."""
    parquet = _open(path)
    rows = invalid = 0
    for batch in parquet.iter_batches(batch_size=READ_BATCH_ROWS, columns=[MESSAGES_COLUMN]):
        for messages in batch.column(0).to_pylist():
            problems = check_messages(messages)
            if problems:
                invalid += 1
                for problem in problems:
                    print(f"{path} row {rows}: {problem}")
            rows += 1
    train_on = (parquet.schema_arrow.metadata or {}).get(TRAIN_ON_METADATA_KEY)
    train_on_note = f"train_on={train_on.decode()}" if train_on else "no train_on metadata: every assistant turn trains"
    print(f"{path}: {rows} rows, {rows - invalid} valid, {invalid} invalid ({train_on_note})")
    return rows, invalid


def _open(path: Path) -> pq.ParquetFile:
    if not path.is_file():
        raise JudgeSFTError(f"{path}: no such file")
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as error:
        raise JudgeSFTError(f"{path}: not a readable Parquet file ({str(error).strip().splitlines()[0]})") from error
    schema = parquet.schema_arrow
    if MESSAGES_COLUMN not in schema.names:
        raise JudgeSFTError(f"{path}: no {MESSAGES_COLUMN!r} column (columns: {', '.join(schema.names)})")
    column_type = schema.field(MESSAGES_COLUMN).type
    if not _is_messages_type(column_type):
        raise JudgeSFTError(f"{path}: column {MESSAGES_COLUMN!r} has type {column_type}, "
                            "expected a list of {role: string, content: string} structs")
    return parquet


def _is_messages_type(column_type: pa.DataType) -> bool:
    """list (or large_list) of structs holding string `role` and `content` fields; extra fields are allowed."""
    if not (pa.types.is_list(column_type) or pa.types.is_large_list(column_type)):
        return False
    item = column_type.value_type
    if not pa.types.is_struct(item):
        return False
    fields = {item.field(index).name: item.field(index).type for index in range(item.num_fields)}
    is_text = lambda field_type: pa.types.is_string(field_type) or pa.types.is_large_string(field_type)  # noqa: E731
    return all(name in fields and is_text(fields[name]) for name in ("role", "content"))
