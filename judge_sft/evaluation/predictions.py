"""OUTPUT/predictions.jsonl: one line per (model, row) — prompt hash, completion, parsed verdict, label, correct —
appended and flushed as each completion arrives, so a killed evaluation loses nothing and a rerun skips what is done."""

import json
import os
from pathlib import Path

from judge_sft.errors import JudgeSFTError
from judge_sft.judges.verdicts import parse_verdict

PREDICTIONS_NAME = "predictions.jsonl"


def prediction(data, label, row, completion):
    """The predictions.jsonl record of `label`'s completion of `row`: the verdict parsed by the format's own parser
    (None when unparsable, never a class) and whether it equals the human label."""
    verdict = parse_verdict(data.task, data.format_name, completion, data.attributes)
    return {
        "row": row,
        "model": label,
        "prompt_hash": data.prompt_hash(row),
        "completion": completion,
        "verdict": verdict,
        "label": data.labels[row],
        "correct": verdict == data.labels[row],
    }


class PredictionsLog:
    """The records already in OUTPUT/predictions.jsonl, by model and row, and the appender of new ones."""

    def __init__(self, output_dir, data):
        self.path = Path(output_dir) / PREDICTIONS_NAME
        self.data = data
        self.records = {}  # model -> {row: record}
        if self.path.exists():
            self._read()

    def done(self, label):
        return self.records.get(label, {})

    def append(self, record):
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with open(self.path, "a", encoding="utf-8") as stream:
            stream.write(line)
            stream.flush()
            os.fsync(stream.fileno())
        self.records.setdefault(record["model"], {})[record["row"]] = record

    def _read(self):
        text = self.path.read_text(encoding="utf-8")
        if text and not text.endswith("\n"):  # the last line of a killed run, half written: drop it
            text = text[: text.rfind("\n") + 1]
            with open(self.path, "r+", encoding="utf-8") as stream:
                stream.truncate(len(text.encode("utf-8")))
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                record = self._checked(number, line)
                self.records.setdefault(record["model"], {})[record["row"]] = record

    def _checked(self, number, line):
        where = f"{self.path} line {number}"
        try:
            record = json.loads(line)
            model, row, digest = record["model"], record["row"], record["prompt_hash"]
        except (ValueError, KeyError, TypeError) as error:
            raise JudgeSFTError(
                f"{where}: not a predictions record ({error}); remove the file or pick another --output"
            )
        if not isinstance(row, int) or not 0 <= row < self.data.total_rows:
            raise JudgeSFTError(f"{where}: row {row} is not in {self.data.path}; pick another --output")
        if row < len(self.data) and digest != self.data.prompt_hash(row):
            raise JudgeSFTError(
                f"{where}: row {row} of model {model} has another prompt than {self.data.path} row {row} "
                "(another data file?); pick another --output"
            )
        if row < len(self.data):  # re-parsed: a record written by another version of the parser reads as this one's
            record = prediction(self.data, model, row, record.get("completion", ""))
        return record
