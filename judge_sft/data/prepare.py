"""HelpSteer2 rows -> DIR/train.parquet, DIR/val.parquet (messages + ratings) and DIR/stats.json (`judge-sft prepare-data`).

Each row read is either written or dropped under the first reason that applies, in this order:
empty_text, malformed_turns, the score bounds, duplicate, val_prompt_in_train, one_per_prompt, not_in_sample.
"""

import hashlib
import random
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from judge_sft.data import helpsteer2
from judge_sft.data.helpsteer2 import SCORE_COLUMNS
from judge_sft.data.helpsteer2_rows import where
from judge_sft.data.messages import MESSAGES_COLUMN, MESSAGES_TYPE, TRAIN_ON_FINAL, TRAIN_ON_METADATA_KEY
from judge_sft.data.stats import STATS_NAME, InputCount, PrepareOptions, PrepareStats, SplitCount
from judge_sft.errors import JudgeSFTError
from judge_sft.files import cannot_write, refuse_existing, staged_directory

OUTPUT_FILES = ("train.parquet", "val.parquet", STATS_NAME)
DEFAULT_MIN = {"correctness": 4}
WRITE_BATCH_ROWS = 4096

OUTPUT_SCHEMA = pa.schema(
    [(MESSAGES_COLUMN, MESSAGES_TYPE)]
    + [(column, pa.int8()) for column in SCORE_COLUMNS]
    + [("source", pa.string()), ("source_row", pa.int64())],
    # Only the final response is rated: earlier assistant turns in HelpSteer2 prompts are context, not targets.
    metadata={TRAIN_ON_METADATA_KEY: TRAIN_ON_FINAL.encode()},
)


@dataclass(frozen=True)
class Options:
    keep_malformed: bool = False
    val_fraction: float = 0.05
    one_per_prompt: bool = False
    sample: int | None = None
    seed: int = 0
    empty_text_is_error: bool = False  # judge tasks: a judge must not learn to grade an empty response


def prepare_data(inputs, from_hub, output_dir: Path, mins, maxs, options: Options, overwrite=False) -> PrepareStats:
    """Read HelpSteer2 (files or a Hub dataset), select and split its rows, and write DIR's outputs all or nothing."""
    bounds = score_bounds(mins, maxs)
    refuse_existing(output_dir, OUTPUT_FILES, overwrite)  # before a Hub download, not only after it
    sources = helpsteer2.hub_sources(from_hub) if from_hub else helpsteer2.file_sources(inputs)
    # Train inputs first: of a pair in both, the val copy is the duplicate dropped.
    sources = sorted(sources, key=lambda source: source.split == "val")
    if all(source.split == "val" for source in sources):
        raise JudgeSFTError(
            f"{sources[0].name}: every input feeds the val split (named validation*/val*/test*); add the train file"
        )
    with staged_directory(output_dir, OUTPUT_FILES, overwrite) as staging:
        splits, stats = select_examples(sources, bounds, options)
        if not splits["train"]:
            raise JudgeSFTError(f"no rows left for train.parquet: {stats.where_rows_went()}; nothing written")
        try:
            for split, examples in splits.items():
                write_split(staging / f"{split}.parquet", examples)
            stats.write(staging / STATS_NAME)
        except OSError as error:  # a full disk or quota; pyarrow's IO errors are OSErrors too
            raise cannot_write(output_dir, error) from error
    return stats


# ---------------------------------------------------------------------------------------------------- selection


@dataclass(slots=True)
class Example:
    messages: list
    scores: tuple
    source: str
    source_row: int
    prompt: str

    @property
    def multi_turn(self) -> bool:
        return len(self.messages) > 2


@dataclass(frozen=True)
class Bound:
    attribute: str
    index: int  # into SCORE_COLUMNS
    low: int
    high: int

    @property
    def reason_low(self) -> str:
        return f"{self.attribute}<{self.low}"

    @property
    def reason_high(self) -> str:
        return f"{self.attribute}>{self.high}"


def select_examples(sources, bounds: list[Bound], options: Options) -> tuple[dict, PrepareStats]:
    """Read every source and decide which rows go to train and val; returns ({split: [Example]}, stats)."""
    dropped = Counter({reason: 0 for reason in _drop_reasons(bounds)})
    counts = Counter()
    seen_pairs = set()
    by_split = {"train": [], "val": []}
    for source in sources:
        read_before = counts["read"]
        for row in tqdm(
            source.rows(), total=source.num_rows, desc=source.name, unit=" rows", file=sys.stderr, disable=None
        ):
            counts["read"] += 1
            example, reason = _screen(row, source.name, bounds, options, seen_pairs, counts)
            if reason:
                dropped[reason] += 1
            else:
                by_split[source.split].append(example)
        counts[f"read:{source.name}"] = counts["read"] - read_before

    has_val_files = any(source.split == "val" for source in sources)
    if has_val_files:
        train_prompts = {example.prompt for example in by_split["train"]}
        in_train = [example.prompt in train_prompts for example in by_split["val"]]
        by_split["val"] = _drop(by_split["val"], in_train, dropped, "val_prompt_in_train")
    else:
        by_split = _split_by_prompt_hash(by_split["train"], options.val_fraction)
    if options.one_per_prompt:
        by_split = {split: _one_per_prompt(examples, dropped) for split, examples in by_split.items()}
    if options.sample is not None:
        by_split["train"] = _sample(by_split["train"], options.sample, options.seed, dropped)
    return by_split, _stats(sources, by_split, dropped, counts, bounds, options, has_val_files)


def _screen(row, source_name, bounds, options, seen_pairs, counts):
    """(Example, None) for a row that passes the per-row checks, else (None, drop reason)."""
    try:
        messages = helpsteer2.split_turns(row.prompt, row.response)
        counts["multi_turn_read"] += len(messages) > 2
    except helpsteer2.MalformedTurns:
        if helpsteer2.is_blank(row.prompt) or helpsteer2.is_blank(row.response):
            if options.empty_text_is_error:
                empty = "prompt" if helpsteer2.is_blank(row.prompt) else "response"
                raise JudgeSFTError(f"{where(source_name, row.source_row)}: {empty} is empty ({getattr(row, empty)!r})")
            return None, "empty_text"
        if not options.keep_malformed:
            return None, "malformed_turns"
        messages = helpsteer2.single_turn(row.prompt, row.response)
        counts["malformed_kept"] += 1
    for bound in bounds:
        score = row.scores[bound.index]
        if score < bound.low:
            return None, bound.reason_low
        if score > bound.high:
            return None, bound.reason_high
    pair = (row.prompt, row.response)
    if pair in seen_pairs:
        return None, "duplicate"
    seen_pairs.add(pair)
    return Example(messages, row.scores, source_name, row.source_row, row.prompt), None


def _split_by_prompt_hash(examples, val_fraction: float) -> dict:
    """Whole prompts go to val by a stable hash of their text, so no prompt lands on both sides."""
    by_split = {"train": [], "val": []}
    for example in examples:
        by_split["val" if prompt_hash_fraction(example.prompt) < val_fraction else "train"].append(example)
    return by_split


def prompt_hash_fraction(prompt: str) -> float:
    """The prompt's place in [0, 1): the same on every run, machine and Python version."""
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _one_per_prompt(examples, dropped: Counter) -> list:
    helpfulness = SCORE_COLUMNS.index("helpfulness")
    best = {}  # prompt -> position of its most helpful example so far (the first one on ties)
    for position, example in enumerate(examples):
        current = best.get(example.prompt)
        if current is None or example.scores[helpfulness] > examples[current].scores[helpfulness]:
            best[example.prompt] = position
    chosen = set(best.values())
    return _drop(examples, [position not in chosen for position in range(len(examples))], dropped, "one_per_prompt")


def _sample(examples, size: int, seed: int, dropped: Counter) -> list:
    chosen = set(random.Random(seed).sample(range(len(examples)), min(size, len(examples))))
    return _drop(examples, [position not in chosen for position in range(len(examples))], dropped, "not_in_sample")


def _drop(examples, drop_mask, dropped: Counter, reason: str) -> list:
    """The examples whose mask entry is true are counted under `reason`; the rest keep their order."""
    dropped[reason] += sum(drop_mask)
    return [example for example, drop in zip(examples, drop_mask) if not drop]


# ---------------------------------------------------------------------------------------------------- score bounds


def score_bounds(mins, maxs, defaults=DEFAULT_MIN) -> list[Bound]:
    low = {**defaults, **dict(mins)}
    high = dict(maxs)
    bounds = []
    for index, attribute in enumerate(SCORE_COLUMNS):
        if attribute not in low and attribute not in high:
            continue
        bound = Bound(
            attribute, index, low.get(attribute, helpsteer2.MIN_SCORE), high.get(attribute, helpsteer2.MAX_SCORE)
        )
        if bound.low > bound.high:
            raise JudgeSFTError(f"--min {attribute}={bound.low} and --max {attribute}={bound.high} leave no rows")
        bounds.append(bound)
    return bounds


def _drop_reasons(bounds) -> list[str]:
    reasons = ["empty_text", "malformed_turns"]
    for bound in bounds:
        if bound.low > helpsteer2.MIN_SCORE:
            reasons.append(bound.reason_low)
        if bound.high < helpsteer2.MAX_SCORE:
            reasons.append(bound.reason_high)
    return reasons + ["duplicate", "val_prompt_in_train", "one_per_prompt", "not_in_sample"]


# ---------------------------------------------------------------------------------------------------- output


def write_split(path: Path, examples) -> None:
    """Write the examples as a messages Parquet file, a batch at a time (an empty split still gets the schema)."""
    with pq.ParquetWriter(path, OUTPUT_SCHEMA) as writer:
        for start in range(0, len(examples), WRITE_BATCH_ROWS):
            writer.write_batch(_record_batch(examples[start : start + WRITE_BATCH_ROWS]))


def _record_batch(examples) -> pa.RecordBatch:
    # Flat role/content columns plus list offsets: much faster than converting nested Python dicts.
    roles, contents, offsets = [], [], [0]
    for example in examples:
        roles.extend(message["role"] for message in example.messages)
        contents.extend(message["content"] for message in example.messages)
        offsets.append(len(roles))
    messages = pa.StructArray.from_arrays(
        [pa.array(roles, pa.string()), pa.array(contents, pa.string())], fields=list(MESSAGES_TYPE.value_type)
    )
    columns = [pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), messages, type=MESSAGES_TYPE)]
    columns += [
        pa.array([example.scores[index] for example in examples], pa.int8()) for index in range(len(SCORE_COLUMNS))
    ]
    columns += [
        pa.array([example.source for example in examples], pa.string()),
        pa.array([example.source_row for example in examples], pa.int64()),
    ]
    return pa.RecordBatch.from_arrays(columns, schema=OUTPUT_SCHEMA)


def _stats(sources, by_split, dropped, counts, bounds, options, has_val_files) -> PrepareStats:
    all_kept = [example for examples in by_split.values() for example in examples]
    return PrepareStats(
        inputs=[InputCount(source.name, source.split, counts[f"read:{source.name}"]) for source in sources],
        rows_read=counts["read"],
        rows_kept=len(all_kept),
        dropped=dict(dropped),
        malformed_kept_as_one_turn=counts["malformed_kept"],
        multi_turn={"read": counts["multi_turn_read"], "kept": sum(example.multi_turn for example in all_kept)},
        duplicates=dropped["duplicate"],
        splits={
            split: SplitCount(
                len(examples),
                len({example.prompt for example in examples}),
                sum(example.multi_turn for example in examples),
            )
            for split, examples in by_split.items()
        },
        options=PrepareOptions(
            min={bound.attribute: bound.low for bound in bounds if bound.low > helpsteer2.MIN_SCORE},
            max={bound.attribute: bound.high for bound in bounds if bound.high < helpsteer2.MAX_SCORE},
            val_split="from validation files" if has_val_files else f"prompt hash, fraction {options.val_fraction}",
            one_per_prompt=options.one_per_prompt,
            keep_malformed=options.keep_malformed,
            sample=options.sample,
            seed=options.seed,
        ),
    )
