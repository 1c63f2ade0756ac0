"""The label columns and schema metadata of a judge Parquet (`prepare-data --task pointwise|pairwise`).

A judge file is a messages Parquet (data/messages.py) whose rows are grading conversations, plus the human labels
that `judge-sft evaluate` scores the judge's verdicts against. The task and format are recorded in the schema
metadata, so no later command has to guess them.
"""

import pyarrow as pa

TASKS = ("responses", "pointwise", "pairwise")
JUDGE_TASKS = ("pointwise", "pairwise")

TASK_METADATA_KEY = b"judge_sft.task"  # "pointwise" | "pairwise" (absent in a `responses` file)
FORMAT_METADATA_KEY = b"judge_sft.format"  # the verdict format whose parser reads the assistant turn back
ATTRIBUTES_METADATA_KEY = b"judge_sft.attributes"  # pointwise: the graded attributes, comma-separated, in order

# Both tasks
TASK_COLUMN = "task"  # string: "pointwise" | "pairwise"
FORMAT_COLUMN = "judge_format"  # string: the verdict format's name
PROMPT_ID_COLUMN = "prompt_id"  # string: sha256 of the prompt conversation; no prompt_id is in both splits

# Pointwise: one int8 column per HelpSteer2 attribute (helpfulness, correctness, coherence, complexity, verbosity),
# the human rating on HelpSteer2's 0-4 scale, whatever scale the format shows. The graded ones are in the metadata.
RESPONSE_ID_COLUMN = "response_id"  # string: sha256 of prompt and response

# Pairwise
PAIR_ID_COLUMN = "pair_id"  # string: the same for both orders of a pair
ORDER_COLUMN = "order"  # int8: 0 = response_1 shown as A, 1 = swapped (response_2 shown as A)
LABEL_COLUMN = "label"  # string: "A" | "B", the human's better response under the letters shown
STRENGTH_COLUMN = "preference_strength"  # int8: HelpSteer2's -3..3 (negative: response_1 better), of the source row

LETTERS = ("A", "B")

POINTWISE_LABEL_FIELDS = [
    (TASK_COLUMN, pa.string()),
    (FORMAT_COLUMN, pa.string()),
    (PROMPT_ID_COLUMN, pa.string()),
    (RESPONSE_ID_COLUMN, pa.string()),
]
PAIRWISE_LABEL_FIELDS = [
    (TASK_COLUMN, pa.string()),
    (FORMAT_COLUMN, pa.string()),
    (PROMPT_ID_COLUMN, pa.string()),
    (PAIR_ID_COLUMN, pa.string()),
    (ORDER_COLUMN, pa.int8()),
    (LABEL_COLUMN, pa.string()),
    (STRENGTH_COLUMN, pa.int8()),
]


def judge_metadata(task: str, format_name: str, attributes=()) -> dict[bytes, bytes]:
    """The schema metadata a judge file carries (merged with the messages file's own, e.g. train_on)."""
    metadata = {TASK_METADATA_KEY: task.encode(), FORMAT_METADATA_KEY: format_name.encode()}
    if attributes:
        metadata[ATTRIBUTES_METADATA_KEY] = ",".join(attributes).encode()
    return metadata


def read_judge_metadata(schema: pa.Schema) -> tuple[str | None, str | None, tuple[str, ...]]:
    """(task, format, attributes) of a file's schema; (None, None, ()) for a file prepare-data did not write as a judge."""
    metadata = schema.metadata or {}
    task = metadata.get(TASK_METADATA_KEY)
    format_name = metadata.get(FORMAT_METADATA_KEY)
    attributes = metadata.get(ATTRIBUTES_METADATA_KEY, b"").decode()
    return (
        task.decode() if task else None,
        format_name.decode() if format_name else None,
        tuple(name for name in attributes.split(",") if name),
    )
