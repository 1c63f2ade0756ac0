"""The messages Parquet format shared by prepare-data, validate-data and the trainer.

One row per conversation: `messages` is a list of `{role, content}` structs. prepare-data stores in the
schema metadata which assistant messages carry a training signal (`TRAIN_ON_METADATA_KEY`).
"""

import pyarrow as pa
import pyarrow.parquet as pq

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
