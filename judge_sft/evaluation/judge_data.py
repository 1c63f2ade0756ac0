"""A judge Parquet read for evaluation: each row's prompt (its messages without the final assistant turn), its human
label, and the ids that pair rows up (judges/columns.py)."""

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from judge_sft.data.messages import MESSAGES_COLUMN, open_messages, split_at_final_answer
from judge_sft.errors import JudgeSFTError
from judge_sft.judges.columns import (
    JUDGE_TASKS,
    LABEL_COLUMN,
    LETTERS,
    ORDER_COLUMN,
    PAIR_ID_COLUMN,
    PAIRWISE_LABEL_FIELDS,
    POINTWISE_LABEL_FIELDS,
    PROMPT_ID_COLUMN,
    STRENGTH_COLUMN,
    read_judge_metadata,
)
from judge_sft.judges.verdicts import MAX_RATING, MIN_RATING, formats_for

MAKE_ONE = "write one with `judge-sft prepare-data --task pointwise|pairwise`"


@dataclass
class JudgeRows:
    path: Path
    total_rows: int  # in the file; the first `len(prompts)` are evaluated (--limit)
    task: str
    format_name: str
    attributes: tuple[str, ...]  # pointwise: the graded attributes; pairwise: ()
    prompts: list  # each row's messages before its final assistant message
    labels: list  # pointwise: {attribute: 0-4}; pairwise: "A" | "B"
    prompt_ids: list
    pair_ids: list | None = None  # pairwise
    orders: list | None = None
    strengths: list | None = None

    def __len__(self):
        return len(self.prompts)

    def prompt_hash(self, row):
        return prompt_hash(self.prompts[row])


def prompt_hash(messages):
    """16 hex digits of sha256 over the prompt messages: a predictions line belongs to this row of this file."""
    text = json.dumps(messages, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def label_columns(task, attributes):
    fields = POINTWISE_LABEL_FIELDS if task == "pointwise" else PAIRWISE_LABEL_FIELDS
    return [name for name, _ in fields] + list(attributes)


def read_judge_rows(path, limit=None):
    """The first `limit` rows (all when None) of a judge file; one line naming the file, row and column otherwise."""
    path = Path(path)
    parquet = open_messages(path)
    schema = parquet.schema_arrow
    task, format_name, attributes = read_judge_metadata(schema)
    if task not in JUDGE_TASKS:
        raise JudgeSFTError(
            f"{path}: not a judge file (no judge_sft.task pointwise or pairwise in its metadata); {MAKE_ONE}"
        )
    if format_name not in formats_for(task):
        raise JudgeSFTError(
            f"{path}: unknown {task} verdict format {format_name!r} (known: {', '.join(formats_for(task))})"
        )
    if task == "pointwise" and not attributes:
        raise JudgeSFTError(f"{path}: a pointwise judge file without judge_sft.attributes in its metadata; {MAKE_ONE}")
    columns = label_columns(task, attributes)
    missing = [name for name in columns if name not in schema.names]
    if missing:
        raise JudgeSFTError(f"{path}: no label column {', '.join(missing)}: not a judge file; {MAKE_ONE}")
    table = parquet.read(columns=[MESSAGES_COLUMN, *columns])
    total = table.num_rows
    if limit is not None:
        table = table.slice(0, limit)
    values = table.to_pydict()
    for name in columns:
        if None in values[name]:
            raise JudgeSFTError(f"{path} row {values[name].index(None)}: {name} is null")
    rows = JudgeRows(
        path=path,
        total_rows=total,
        task=task,
        format_name=format_name,
        attributes=attributes if task == "pointwise" else (),
        prompts=[prompt_of(path, row, messages) for row, messages in enumerate(values[MESSAGES_COLUMN])],
        labels=[],
        prompt_ids=values[PROMPT_ID_COLUMN],
    )
    if task == "pointwise":
        rows.labels = [pointwise_label(path, row, values, attributes) for row in range(table.num_rows)]
    else:
        rows.labels = [letter_label(path, row, letter) for row, letter in enumerate(values[LABEL_COLUMN])]
        rows.pair_ids, rows.orders = values[PAIR_ID_COLUMN], values[ORDER_COLUMN]
        rows.strengths = values[STRENGTH_COLUMN]
    return rows


def prompt_of(path, row, messages):
    split = split_at_final_answer(messages or [])
    if split is None:
        raise JudgeSFTError(f"{path} row {row}: no assistant message (the reference verdict); {MAKE_ONE}")
    return split[0]


def pointwise_label(path, row, values, attributes):
    label = {name: int(values[name][row]) for name in attributes}
    for name, rating in label.items():
        if not MIN_RATING <= rating <= MAX_RATING:
            raise JudgeSFTError(f"{path} row {row}: {name} is {rating}, expected {MIN_RATING}-{MAX_RATING}")
    return label


def letter_label(path, row, letter):
    if letter not in LETTERS:
        raise JudgeSFTError(f"{path} row {row}: {LABEL_COLUMN} is {letter!r}, expected A or B")
    return letter
