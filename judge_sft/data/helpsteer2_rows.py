"""HelpSteer2 rows: the columns, the Row every source yields, and the checks each row passes on the way in.

A bad row raises JudgeSFTError naming where it is (`where`: the file and line, or the source and row).
"""

import json
from collections.abc import Iterator
from typing import NamedTuple

import pyarrow as pa

from judge_sft.errors import JudgeSFTError, one_line

TEXT_COLUMNS = ("prompt", "response")
SCORE_COLUMNS = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")
COLUMNS = TEXT_COLUMNS + SCORE_COLUMNS
MIN_SCORE, MAX_SCORE = 0, 4
PREFERENCE_MARKERS = ("response_1", "response_2", "preference_strength")  # preference/preference.jsonl.gz


def where(name: str, source_row: int) -> str:
    """`FILE line N` (JSONL: 1-based lines) or `NAME row N` (Parquet and Hub: 0-based rows)."""
    return f"{name} {'line' if name.endswith(('.jsonl', '.jsonl.gz')) else 'row'} {source_row}"


class Row(NamedTuple):
    source_row: int  # JSONL: 1-based line number; Parquet / Hub: 0-based row index
    prompt: str
    response: str
    scores: tuple  # ints, in SCORE_COLUMNS order


def row_from_json(line: bytes, where: str, source_row: int) -> Row:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise JudgeSFTError(f"{where}: invalid JSON ({error.msg} at column {error.colno})") from None
    except UnicodeDecodeError as error:
        raise JudgeSFTError(f"{where}: not valid UTF-8 ({error.reason} at byte {error.start})") from None
    if not isinstance(record, dict):
        raise JudgeSFTError(f"{where}: expected a JSON object, got {type(record).__name__}")
    missing = [column for column in COLUMNS if column not in record]
    if missing:
        preference_file_error(where, list(record))
        raise JudgeSFTError(f"{where}: missing column {missing[0]!r}")
    return checked_row(record, where, source_row)


def rows_from_batches(name: str, batches) -> Iterator[Row]:
    index = 0
    try:
        for batch in batches:
            numbers = range(index, index + batch.num_rows)
            rows = rows_if_clean(batch, numbers)
            if rows is None:
                columns = [column_values(batch, name, column, numbers) for column in COLUMNS]
                rows = [
                    checked_row(dict(zip(COLUMNS, values)), f"{name} row {number}", number)
                    for number, values in zip(numbers, zip(*columns))
                ]
            yield from rows
            index += batch.num_rows
    except (pa.ArrowException, OSError) as error:
        raise JudgeSFTError(f"{name} row {index}: cannot read Parquet data ({one_line(error)})") from error


def column_values(batch, name: str, column: str, numbers) -> list:
    """One column of a batch as Python values; a string that is not valid UTF-8 raises JudgeSFTError naming its row."""
    array = batch.column(column)
    try:
        return array.to_pylist()
    except UnicodeDecodeError:
        raw = array.view(pa.large_binary() if pa.types.is_large_string(array.type) else pa.binary())
        for number, value in zip(numbers, raw.to_pylist()):
            try:
                if value is not None:
                    value.decode("utf-8")
            except UnicodeDecodeError as error:
                raise JudgeSFTError(
                    f"{name} row {number}: {column} is not valid UTF-8 ({error.reason} at byte {error.start})"
                ) from None
        raise


def rows_if_clean(table, numbers) -> list[Row] | None:
    """The rows of a table or batch whose columns all have the right types, no nulls and scores in range
    (checked per column, which is fast); None when any row needs the per-row checks and their messages."""
    names = table.schema.names
    if table.num_rows != len(numbers) or any(column not in names for column in COLUMNS):
        return None
    columns = {column: table.column(column) for column in COLUMNS}
    if any(column.null_count for column in columns.values()):
        return None
    if not all(
        pa.types.is_string(columns[name].type) or pa.types.is_large_string(columns[name].type) for name in TEXT_COLUMNS
    ):
        return None
    if not all(pa.types.is_integer(columns[name].type) for name in SCORE_COLUMNS):
        return None
    scores = [columns[name].to_pylist() for name in SCORE_COLUMNS]
    if table.num_rows and (min(map(min, scores)) < MIN_SCORE or max(map(max, scores)) > MAX_SCORE):
        return None
    try:  # pyarrow's JSON and Parquet readers keep invalid UTF-8 in strings; it fails only here
        prompts, responses = (columns[name].to_pylist() for name in TEXT_COLUMNS)
    except UnicodeDecodeError:
        return None
    return list(map(Row, numbers, prompts, responses, zip(*scores)))


def checked_row(record: dict, where: str, source_row: int) -> Row:
    for column in TEXT_COLUMNS:
        value = record[column]
        if value is None:
            raise JudgeSFTError(f"{where}: {column} is null")
        if not isinstance(value, str):
            raise JudgeSFTError(f"{where}: {column} is not a string (got {type(value).__name__})")
    scores = tuple(record[column] for column in SCORE_COLUMNS)
    for column, score in zip(SCORE_COLUMNS, scores):
        if score is None:
            raise JudgeSFTError(f"{where}: {column} is null")
        if type(score) is not int:  # bool is an int subclass; 3.0 and "3" are not scores either
            raise JudgeSFTError(f"{where}: {column} is not an integer (got {score!r})")
        if not MIN_SCORE <= score <= MAX_SCORE:
            raise JudgeSFTError(f"{where}: {column} is {score}, outside {MIN_SCORE}-{MAX_SCORE}")
    return Row(source_row, record["prompt"], record["response"], scores)


def check_columns(name: str, present) -> None:
    missing = [column for column in COLUMNS if column not in present]
    if missing:
        preference_file_error(name, list(present))
        raise JudgeSFTError(f"{name}: missing column {missing[0]!r} (columns: {', '.join(present)})")


def preference_file_error(name: str, present) -> None:
    """A HelpSteer2 preference file given where the main files belong: say so, and which task reads it."""
    if all(column in present for column in PREFERENCE_MARKERS):
        raise JudgeSFTError(
            f"{name}: columns {', '.join(present)} are a HelpSteer2 preference file, not rated responses; "
            "use --task pairwise"
        )
