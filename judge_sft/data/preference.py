"""HelpSteer2's preference file (`preference/preference.jsonl.gz` on the Hub): its columns, its sources (files or the
Hub) and the check of one row on the way in. A bad row raises JudgeSFTError naming the file and line (JSONL, 1-based)
or row (Parquet and Hub, 0-based) and the value.

A main file (rated responses) given to `--task pairwise` is named with the columns found and the task that reads it
(helpsteer2_rows says the same of a preference file given to the other tasks).
"""

import gzip
import json
import zlib
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from judge_sft.data.helpsteer2 import file_sources
from judge_sft.data.helpsteer2_rows import COLUMNS as MAIN_COLUMNS
from judge_sft.data.helpsteer2_rows import where
from judge_sft.errors import JudgeSFTError, one_line

TEXT_COLUMNS = ("split", "prompt", "response_1", "response_2", "preference_statement", "preference_elaboration")
COLUMNS = TEXT_COLUMNS + ("preference_strength",)
MIN_STRENGTH, MAX_STRENGTH = -3, 3
HUB_FILE = "preference/preference.jsonl.gz"  # beside the main files; disagreements/ is never read
SPLITS = {"train": "train", "validation": "val", "val": "val", "test": "val"}


class PreferenceRow(NamedTuple):
    source_row: int
    split: str  # train or val
    prompt: str
    response_1: str
    response_2: str
    strength: int  # -3..3, negative: response_1 better
    statement: str
    elaboration: str


def main_file_error(name: str, columns) -> JudgeSFTError | None:
    """The error for a HelpSteer2 main file (rated responses) given to --task pairwise, else None."""
    if not all(column in columns for column in MAIN_COLUMNS) or "response_1" in columns:
        return None
    return JudgeSFTError(
        f"{name}: columns {', '.join(columns)} are a HelpSteer2 main file (rated responses), not a preference file; "
        "use --task pointwise (or responses)"
    )


def checked_preference(record: dict, name: str, source_row: int) -> PreferenceRow:
    place = where(name, source_row)
    missing = [column for column in COLUMNS if column not in record]
    if missing:
        raise main_file_error(place, list(record)) or JudgeSFTError(
            f"{place}: missing column {missing[0]!r} (columns: {', '.join(record)})"
        )
    for column in TEXT_COLUMNS:
        if not isinstance(record[column], str):
            raise JudgeSFTError(f"{place}: {column} is not a string (got {record[column]!r})")
    for column in ("prompt", "response_1", "response_2"):
        if not record[column].strip():
            raise JudgeSFTError(f"{place}: {column} is empty ({record[column]!r})")
    strength = record["preference_strength"]
    if type(strength) is not int:
        raise JudgeSFTError(f"{place}: preference_strength is not an integer (got {strength!r})")
    if not MIN_STRENGTH <= strength <= MAX_STRENGTH:
        raise JudgeSFTError(f"{place}: preference_strength is {strength}, outside {MIN_STRENGTH}..{MAX_STRENGTH}")
    split = SPLITS.get(record["split"])
    if split is None:
        raise JudgeSFTError(f"{place}: split is {record['split']!r}, expected one of {', '.join(SPLITS)}")
    return PreferenceRow(
        source_row,
        split,
        record["prompt"],
        record["response_1"],
        record["response_2"],
        strength,
        record["preference_statement"],
        record["preference_elaboration"],
    )


class PreferenceSource:
    """One preference file or Hub table; `rows()` reads and checks all of it (the file is small: ~10k pairs)."""

    def __init__(self, name: str, records):
        self.name, self._records = name, records

    def rows(self) -> list[PreferenceRow]:
        rows = [checked_preference(record, self.name, number) for number, record in self._records()]
        if not rows:
            raise JudgeSFTError(f"{self.name}: no rows (empty input)")
        return rows


def preference_file_sources(paths) -> list[PreferenceSource]:
    sources = []
    for source in file_sources(paths):  # the same files, directories and suffixes as the main files
        path = source.path
        reader = _parquet_records if path.name.endswith(".parquet") else _jsonl_records
        sources.append(PreferenceSource(str(path), lambda path=path, reader=reader: reader(path)))
    return sources


def _jsonl_records(path: Path):
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as file:
            for number, line in enumerate(file, 1):
                if line.strip():
                    yield number, _json_object(line, where(str(path), number))
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise JudgeSFTError(f"{path}: corrupt gzip data ({error})") from error
    except OSError as error:
        raise JudgeSFTError(f"{path}: cannot read ({error.strerror or error})") from error


def _json_object(line: bytes, place: str) -> dict:
    try:
        record = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise JudgeSFTError(f"{place}: invalid JSON ({one_line(error)})") from None
    if not isinstance(record, dict):
        raise JudgeSFTError(f"{place}: expected a JSON object, got {type(record).__name__}")
    return record


def _parquet_records(path: Path):
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as error:
        raise JudgeSFTError(f"{path}: not a readable Parquet file ({one_line(error)})") from error
    yield from _table_records(str(path), table)


def _table_records(name: str, table: pa.Table):
    error = main_file_error(name, table.column_names)
    if error:
        raise error
    yield from enumerate(table.to_pylist())


def preference_hub_sources(dataset_name: str) -> list[PreferenceSource]:
    """The Hub dataset's preference file only, through `datasets` (its own split column decides train or val)."""
    try:
        import datasets

        splits = datasets.load_dataset(dataset_name, data_files=HUB_FILE)
    except Exception as error:  # offline, unknown name, gated: datasets raises many types; all mean "cannot load"
        raise JudgeSFTError(
            f"{dataset_name}: cannot load {HUB_FILE} from the Hugging Face Hub ({type(error).__name__}: "
            f"{one_line(error)}); download it and pass it with --input"
        ) from error
    return [
        PreferenceSource(name, lambda name=name, table=dataset.data.table: _table_records(name, table))
        for name, dataset in ((f"{dataset_name}:{HUB_FILE}", dataset) for dataset in splits.values())
    ]
