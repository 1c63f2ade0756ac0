"""HelpSteer2 input: finding and reading its files (jsonl, jsonl.gz, parquet, or the Hub), and splitting prompts into turns.

Every row is checked on the way in; a bad one raises JudgeSFTError naming the file and the line (JSONL, 1-based)
or row (Parquet and Hub, 0-based index).
The columns, the Row type and those per-row checks live in helpsteer2_rows.
"""

import gzip
import re
import zlib
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from judge_sft.data.helpsteer2_rows import (  # noqa: F401 - MAX_SCORE, MIN_SCORE, SCORE_COLUMNS, TEXT_COLUMNS: re-exported
    COLUMNS,
    MAX_SCORE,
    MIN_SCORE,
    SCORE_COLUMNS,
    TEXT_COLUMNS,
    Row,
    check_columns,
    row_from_json,
    rows_from_batches,
    rows_if_clean,
)
from judge_sft.errors import JudgeSFTError, one_line

# A multi-turn prompt: the first user turn has no marker; each later turn starts with exactly one of these.
ASSISTANT_MARKER = "\n<extra_id_1>Assistant\n"
USER_MARKER = "\n<extra_id_1>User\n"
MARKER_STEM = "<extra_id_1>"
_MARKER_PATTERN = re.compile(f"({re.escape(ASSISTANT_MARKER)}|{re.escape(USER_MARKER)})")

SUFFIXES = (".jsonl.gz", ".jsonl", ".parquet")
VAL_NAME_PREFIXES = ("val", "test")  # validation*, val*, test* feed the val split
PARQUET_BATCH_ROWS = 4096
READ_CHUNK_BYTES = 256 << 10
PARSE_BLOCK_BYTES = 4 << 20
JSON_BLOCK_BYTES = 1 << 20  # pyarrow parses blocks of this size in parallel; a longer line takes the line-by-line path


class MalformedTurns(ValueError):
    """The prompt's turn markers do not alternate Assistant/User, a stray marker is left, or a turn is blank."""


# ---------------------------------------------------------------------------------------------------- turn splitting


def split_turns(prompt: str, response: str) -> list[dict]:
    """Alternating user/assistant messages ending with `response`, every content string kept byte for byte."""
    if MARKER_STEM not in prompt and MARKER_STEM not in response:  # single turn: most rows
        if is_blank(prompt) or is_blank(response):
            raise MalformedTurns("blank turn")
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
    parts = _MARKER_PATTERN.split(prompt)  # [first user turn, marker, turn, marker, turn, ...]
    contents, markers = parts[0::2], parts[1::2]
    expected = [ASSISTANT_MARKER if index % 2 == 0 else USER_MARKER for index in range(len(markers))]
    if markers != expected or len(markers) % 2:
        raise MalformedTurns("turn markers do not alternate Assistant/User ending on a user turn")
    contents.append(response)
    if any(MARKER_STEM in content for content in contents):
        raise MalformedTurns(f"stray {MARKER_STEM} marker")
    if any(is_blank(content) for content in contents):
        raise MalformedTurns("blank turn")
    roles = ("user", "assistant")
    return [{"role": roles[index % 2], "content": content} for index, content in enumerate(contents)]


def is_blank(text: str) -> bool:
    return not text or text.isspace()


def single_turn(prompt: str, response: str) -> list[dict]:
    """The whole prompt as one user message: for prompts whose markers are malformed, when the user asks to keep them."""
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]


# ---------------------------------------------------------------------------------------------------- sources


def split_of(name: str) -> str:
    """'val' for files named validation*, val*, test*; 'train' otherwise."""
    return "val" if name.lower().startswith(VAL_NAME_PREFIXES) else "train"


class FileSource:
    """One input file. `rows()` yields checked Rows; `num_rows` is known up front for Parquet only."""

    def __init__(self, path: Path):
        self.path = path
        self.name = str(path)
        self.split = split_of(path.name)
        self.num_rows = None

    def rows(self) -> Iterator[Row]:
        count = 0
        for count, row in enumerate(self._read(), 1):  # noqa: B007 - read after the loop
            yield row
        if count == 0:
            raise JudgeSFTError(f"{self.name}: no rows (empty input)")


class JsonlSource(FileSource):
    def _read(self) -> Iterator[Row]:
        lines_read = 0
        try:
            for numbers, lines, lines_read in _line_blocks(self.path):  # noqa: B007 - read after the loop
                yield from _rows_from_json_lines(self.name, numbers, lines)
        except (gzip.BadGzipFile, EOFError, zlib.error) as error:
            where = f"after line {lines_read}" if lines_read else "at the start"
            raise JudgeSFTError(f"{self.name}: corrupt gzip data {where} ({error})") from error
        except OSError as error:
            raise JudgeSFTError(f"{self.name}: cannot read ({error.strerror or error})") from error


def _line_blocks(path: Path) -> Iterator[tuple[list[int], list[bytes], int]]:
    """Blocks of the file's non-blank lines: (their 1-based line numbers, the lines, lines read so far).

    Decompressed when the name ends in .gz, and read in chunks: gzip's readline is slow.
    """
    opener = gzip.open if path.name.endswith(".gz") else open
    block = _LineBlock()
    with opener(path, "rb") as file:
        pending = b""
        try:
            while chunk := file.read(READ_CHUNK_BYTES):
                lines = (pending + chunk).split(b"\n")
                pending = lines.pop()  # an incomplete last line waits for the next chunk
                block.add(lines)
                if block.size >= PARSE_BLOCK_BYTES:
                    yield block.take()
        except (gzip.BadGzipFile, EOFError, zlib.error):
            yield block.take()  # the complete lines before the damage, so that the error can count them
            raise
    block.add([pending] if pending else [])
    yield block.take()


class _LineBlock:
    def __init__(self):
        self.numbers, self.lines, self.size, self.lines_read = [], [], 0, 0

    def add(self, lines: list[bytes]) -> None:
        for number, line in enumerate(lines, self.lines_read + 1):
            if line and not line.isspace():
                self.numbers.append(number)
                self.lines.append(line)
                self.size += len(line)
        self.lines_read += len(lines)

    def take(self) -> tuple[list[int], list[bytes], int]:
        taken = self.numbers, self.lines, self.lines_read
        self.numbers, self.lines, self.size = [], [], 0
        return taken


def _rows_from_json_lines(name: str, numbers: list[int], lines: list[bytes]) -> list[Row]:
    """Parse a block with pyarrow's (fast) JSON reader; a block it rejects, or that fails a check, is parsed again
    line by line with `json`, which raises the error for the exact line at fault."""
    if not lines:
        return []
    try:
        table = pa_json.read_json(
            pa.py_buffer(b"\n".join(lines)), read_options=pa_json.ReadOptions(block_size=JSON_BLOCK_BYTES)
        )
        rows = rows_if_clean(table, numbers)
    except pa.ArrowInvalid:
        rows = None
    if rows is None:
        rows = [row_from_json(line, f"{name} line {number}", number) for number, line in zip(numbers, lines)]
    return rows


class ParquetSource(FileSource):
    def __init__(self, path: Path):
        super().__init__(path)
        try:
            self._file = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as error:
            raise JudgeSFTError(f"{self.name}: not a readable Parquet file ({one_line(error)})") from error
        check_columns(self.name, self._file.schema_arrow.names)
        self.num_rows = self._file.metadata.num_rows

    def _read(self) -> Iterator[Row]:
        batches = self._file.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=list(COLUMNS))
        return rows_from_batches(self.name, batches)


class TableSource:
    """One split of a dataset loaded through `datasets` (held as an Arrow table)."""

    def __init__(self, name: str, split: str, table: pa.Table):
        check_columns(name, table.column_names)
        self.name, self.split, self.num_rows = name, split, table.num_rows
        self._table = table

    def rows(self) -> Iterator[Row]:
        if self.num_rows == 0:
            raise JudgeSFTError(f"{self.name}: no rows (empty input)")
        return rows_from_batches(self.name, self._table.select(list(COLUMNS)).to_batches(PARQUET_BATCH_ROWS))


def file_sources(paths) -> list[FileSource]:
    """One source per file; a directory stands for the .jsonl / .jsonl.gz / .parquet files directly inside it."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(child for child in path.iterdir() if child.is_file() and child.name.endswith(SUFFIXES))
            if not found:
                raise JudgeSFTError(f"{path}: directory holds no .jsonl, .jsonl.gz or .parquet files")
            files.extend(found)
        elif path.is_file():
            if not path.name.endswith(SUFFIXES):
                raise JudgeSFTError(f"{path}: unsupported file type (expected .jsonl, .jsonl.gz or .parquet)")
            files.append(path)
        else:
            raise JudgeSFTError(f"{path}: no such file or directory")
    return [ParquetSource(path) if path.name.endswith(".parquet") else JsonlSource(path) for path in files]


def hub_sources(dataset_name: str) -> list[TableSource]:
    """Every split of a Hub dataset through `datasets`: 'train' feeds train, validation/val/test splits feed val."""
    try:
        import datasets

        splits = datasets.load_dataset(dataset_name)
    except Exception as error:  # offline, unknown name, gated: datasets raises many types; all mean "cannot load"
        raise JudgeSFTError(
            f"{dataset_name}: cannot load from the Hugging Face Hub ({type(error).__name__}: {one_line(error)}); "
            "download train.jsonl.gz and validation.jsonl.gz and pass them with --input"
        ) from error
    return [
        TableSource(f"{dataset_name}:{split}", split_of(split), dataset.data.table) for split, dataset in splits.items()
    ]
