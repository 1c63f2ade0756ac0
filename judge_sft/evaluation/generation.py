"""Where a judge's completions come from: the Generator interface every source implements (a local model:
evaluation/local.py; an OpenAI-compatible server: evaluation/endpoint.py), and `--predictions FILE.jsonl`, completions
produced elsewhere (a vLLM batch job), one `{"row": N, "completion": "..."}` object per line."""

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol

from judge_sft.errors import JudgeSFTError


class Generator(Protocol):
    label: str  # the model's name in predictions.jsonl, metrics.json and the table

    def complete(self, requests: Iterable[tuple[int, list[dict]]]) -> Iterator[tuple[int, str]]:
        """(row index, prompt messages: the row's messages without the final assistant turn) -> (row index,
        completion text), yielded as each finishes, in any order."""
        ...


class PredictionsFile:
    """Completions read from a JSONL file, checked line by line before anything is evaluated: every evaluated row of
    the data needs one, and every line names a row the data has."""

    def __init__(self, path, evaluated_rows, data_rows):
        self.path = Path(path)
        self.label = str(path)
        self.completions = read_completions(self.path, data_rows)
        missing = [row for row in range(evaluated_rows) if row not in self.completions]
        if missing:
            shown = ", ".join(map(str, missing[:5])) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise JudgeSFTError(
                f"{self.path}: no completion for row {shown} of the {evaluated_rows} evaluated; complete the file or "
                "pass --limit"
            )

    def complete(self, requests):
        for row, _ in requests:
            yield row, self.completions[row]


def read_completions(path, data_rows):
    """{row: completion} of a predictions file; one line naming the file, line and row at the first fault."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise JudgeSFTError(f"{path}: cannot read the predictions ({getattr(error, 'strerror', None) or error})")
    completions, first_line = {}, {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        row, completion = completion_line(path, number, line)
        if row >= data_rows:
            raise JudgeSFTError(f"{path} line {number}: row {row} is not in the data (it has {data_rows} rows)")
        if row in completions:
            raise JudgeSFTError(f"{path} line {number}: row {row} again (first on line {first_line[row]})")
        completions[row], first_line[row] = completion, number
    return completions


def completion_line(path, number, line):
    where = f"{path} line {number}"
    try:
        record = json.loads(line)
    except ValueError as error:
        raise JudgeSFTError(f"{where}: not a JSON object ({error})")
    if not isinstance(record, dict):
        raise JudgeSFTError(f"{where}: not a JSON object")
    row, completion = record.get("row"), record.get("completion")
    if isinstance(row, bool) or not isinstance(row, int) or row < 0:
        raise JudgeSFTError(f"{where}: `row` must be a row index (an integer >= 0), got {json.dumps(row)}")
    if not isinstance(completion, str):
        raise JudgeSFTError(f"{where} (row {row}): `completion` must be a string, got {json.dumps(completion)}")
    return row, completion
