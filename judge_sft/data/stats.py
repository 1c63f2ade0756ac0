"""stats.json, written by prepare-data beside train/val.parquet and read by the model card: its one schema."""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

STATS_NAME = "stats.json"


@dataclass
class InputCount:
    source: str  # file name (or `dataset:split` from the Hub)
    split: str  # train or val
    rows: int


@dataclass
class SplitCount:
    rows: int
    prompts: int
    multi_turn: int


@dataclass
class PrepareOptions:
    min: dict  # score attribute -> lowest kept, only where above the scale's minimum
    max: dict
    val_split: str  # "from validation files" or "prompt hash, fraction F"
    one_per_prompt: bool
    keep_malformed: bool
    sample: int | None
    seed: int


@dataclass
class PrepareStats:
    inputs: list  # [InputCount]
    rows_read: int
    rows_kept: int
    dropped: dict  # reason -> rows, in the order the reasons apply
    malformed_kept_as_one_turn: int
    multi_turn: dict  # {"read": N, "kept": N}
    duplicates: int
    splits: dict  # split -> SplitCount
    options: PrepareOptions
    judge: dict | None = None  # --task pointwise|pairwise: task, format, label counts per split (absent otherwise)

    def where_rows_went(self) -> str:
        """'of 3 rows read, correctness<4 dropped 2, ...', for the error when no train row is left."""
        went = [f"{reason} dropped {count}" for reason, count in self.dropped.items() if count]
        if self.splits["val"].rows:
            went.append(f"{self.splits['val'].rows} went to val ({self.options.val_split})")
        return f"of {self.rows_read} rows read, {', '.join(went)}"

    def write(self, path):
        fields = asdict(self)
        if fields["judge"] is None:
            del fields["judge"]
        Path(path).write_text(json.dumps(fields, indent=2) + "\n")

    @classmethod
    def read(cls, path):
        """The stats of a prepare-data output, or None when the file is missing or not ours."""
        try:
            raw = json.loads(Path(path).read_text())
            raw["inputs"] = [InputCount(**item) for item in raw["inputs"]]
            raw["splits"] = {split: SplitCount(**counts) for split, counts in raw["splits"].items()}
            raw["options"] = PrepareOptions(**raw["options"])
            return cls(**raw)
        except (OSError, ValueError, KeyError, TypeError):
            return None


def stats_beside(data_file):
    """prepare-data's stats of the directory a train file came from (None when it did not come from prepare-data)."""
    return PrepareStats.read(Path(data_file).parent / STATS_NAME) if data_file else None
