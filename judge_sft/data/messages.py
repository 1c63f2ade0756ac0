"""The messages Parquet format shared by prepare-data, validate-data, doctor, inspect-data and the trainer, and its one reader.

One row per conversation: `messages` is a list of `{role, content}` structs. prepare-data stores in the
schema metadata which assistant messages carry a training signal (`TRAIN_ON_METADATA_KEY`).
"""

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from judge_sft.errors import JudgeSFTError

MESSAGES_COLUMN = "messages"
ROLES = ("system", "user", "assistant")
MESSAGES_TYPE = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))

TRAIN_ON_METADATA_KEY = b"judge_sft.train_on"
# Loss on the final assistant message only: the earlier assistant turns are context that nobody rated.
# A file without the key (a user's own data) trains every assistant turn unless the recipe says otherwise.
TRAIN_ON_FINAL = "final"


def read_train_on(path) -> str | None:
    """The file's `judge_sft.train_on` schema metadata value (e.g. "final"), or None when it has none."""
    value = (pq.read_schema(path).metadata or {}).get(TRAIN_ON_METADATA_KEY)
    return None if value is None else value.decode("utf-8")


def resolve_train_on(train_on, path) -> str:
    """A recipe's `train_on` for one file: 'auto' means what prepare-data recorded in it, else every assistant message."""
    return train_on if train_on != "auto" else (read_train_on(path) or "all")


READ_BATCH_ROWS = 4096


def open_messages(path, messages_key=MESSAGES_COLUMN) -> pq.ParquetFile:
    """The one reader of messages Parquet files: the file exists, is Parquet, and has `messages_key` as a list of
    {role, content} string structs. Everything that reads such a file opens it here, so all say the same."""
    path = Path(path)
    if path.is_dir():
        raise JudgeSFTError(f"{path}: is a directory, expected a messages Parquet file")
    if not path.is_file():
        raise JudgeSFTError(f"{path}: no such file")
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as error:
        raise JudgeSFTError(f"{path}: not a readable Parquet file ({str(error).strip().splitlines()[0]})") from error
    schema = parquet.schema_arrow
    if messages_key not in schema.names:
        raise JudgeSFTError(f"{path}: no `{messages_key}` column (columns: {', '.join(schema.names)})")
    column_type = schema.field(messages_key).type
    if not is_messages_type(column_type):
        raise JudgeSFTError(
            f"{path}: column `{messages_key}` has type {column_type}, "
            "expected a list of {role: string, content: string} structs"
        )
    return parquet


def iter_conversations(path, messages_key=MESSAGES_COLUMN, limit=None):
    """(row index, messages) of a file, the first `limit` rows (all when None), a batch at a time."""
    index = 0
    for batch in open_messages(path, messages_key).iter_batches(batch_size=READ_BATCH_ROWS, columns=[messages_key]):
        for messages in _conversations(batch.column(0), path, index):
            if limit is not None and index >= limit:
                return
            yield index, messages
            index += 1


def _conversations(column, path, first_row):
    try:
        return column.to_pylist()
    except UnicodeDecodeError:  # Parquet strings are not checked on read: find the row and say so in one line
        for offset in range(len(column)):
            try:
                column.slice(offset, 1).to_pylist()
            except UnicodeDecodeError as error:
                raise JudgeSFTError(f"{path} row {first_row + offset}: not valid UTF-8 ({error.reason})") from None
        raise


def read_conversations(path, messages_key=MESSAGES_COLUMN):
    """Every row's messages of a file, as a list."""
    return [messages for _, messages in iter_conversations(path, messages_key)]


def split_at_final_answer(messages):
    """(messages before the final assistant message, that message), or None when the row has no assistant message."""
    finals = [index for index, message in enumerate(messages) if message["role"] == "assistant"]
    return (messages[: finals[-1]], messages[finals[-1]]) if finals else None


def is_messages_type(column_type: pa.DataType) -> bool:
    """list (or large_list) of structs holding string `role` and `content` fields; extra fields are allowed."""
    if not (pa.types.is_list(column_type) or pa.types.is_large_list(column_type)):
        return False
    item = column_type.value_type
    if not pa.types.is_struct(item):
        return False
    fields = {item.field(index).name: item.field(index).type for index in range(item.num_fields)}
    return all(name in fields and _is_text(fields[name]) for name in ("role", "content"))


def _is_text(field_type):
    return pa.types.is_string(field_type) or pa.types.is_large_string(field_type)
