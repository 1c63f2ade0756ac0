"""`prepare-data --task pointwise|pairwise`: HelpSteer2 -> DIR/train.parquet, DIR/val.parquet (grading conversations
with their label columns, task and format in the schema metadata) and DIR/stats.json with the labels counted.

Every row is built, and its verdict read back by its format's parser, before anything is written.
"""

import hashlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from judge_sft.data import helpsteer2, preference
from judge_sft.data.helpsteer2 import SCORE_COLUMNS
from judge_sft.data.helpsteer2_rows import where
from judge_sft.data.messages import MESSAGES_COLUMN, MESSAGES_TYPE, TRAIN_ON_FINAL, TRAIN_ON_METADATA_KEY
from judge_sft.data.prepare import OUTPUT_FILES, Options, score_bounds, select_examples
from judge_sft.data.stats import STATS_NAME, InputCount, PrepareOptions, PrepareStats, SplitCount
from judge_sft.errors import JudgeSFTError
from judge_sft.files import cannot_write, refuse_existing, staged_directory
from judge_sft.judges import columns, pairwise
from judge_sft.judges.prompts import load_prompt, pointwise_variables
from judge_sft.judges.verdicts import parse_verdict, render_verdict

SOURCE_FIELDS = [("source", pa.string()), ("source_row", pa.int64())]


@dataclass(frozen=True)
class JudgeOptions:
    task: str  # pointwise or pairwise
    format_name: str = "openjudge"
    template: Path | None = None  # the user's prompt template; None: the format's shipped one
    attributes: tuple = ("helpfulness",)  # pointwise
    min_strength: int = 1  # pairwise, and below
    rationale: bool = True
    both_orders: bool = True


def output_schema(judge: JudgeOptions) -> pa.Schema:
    if judge.task == "pointwise":
        labels = columns.POINTWISE_LABEL_FIELDS + [(name, pa.int8()) for name in SCORE_COLUMNS]
    else:
        labels = columns.PAIRWISE_LABEL_FIELDS
    metadata = {TRAIN_ON_METADATA_KEY: TRAIN_ON_FINAL.encode()}
    metadata |= columns.judge_metadata(
        judge.task, judge.format_name, judge.attributes if judge.task == "pointwise" else ()
    )
    return pa.schema([(MESSAGES_COLUMN, MESSAGES_TYPE)] + labels + SOURCE_FIELDS, metadata=metadata)


def prepare_judge_data(
    inputs, from_hub, output_dir: Path, mins, maxs, options: Options, judge: JudgeOptions, overwrite=False
):
    """Build every judge row of the inputs, then write DIR's outputs all or nothing; returns the stats."""
    prompt = load_prompt(judge.task, judge.format_name, judge.template)
    refuse_existing(output_dir, OUTPUT_FILES, overwrite)  # before a Hub download, not only after it
    if judge.task == "pointwise":
        rows, stats = _pointwise(inputs, from_hub, mins, maxs, options, judge, prompt)
    else:
        rows, stats = _pairwise(inputs, from_hub, options, judge, prompt)
    if not rows["train"]:
        raise JudgeSFTError(f"no rows left for train.parquet: {stats.where_rows_went()}; nothing written")
    schema = output_schema(judge)
    with staged_directory(output_dir, OUTPUT_FILES, overwrite) as staging:
        try:
            for split, split_rows in rows.items():
                pq.write_table(pa.Table.from_pylist(split_rows, schema=schema), staging / f"{split}.parquet")
            stats.write(staging / STATS_NAME)
        except OSError as error:  # a full disk or quota; pyarrow's IO errors are OSErrors too
            raise cannot_write(output_dir, error) from error
    return stats


def checked_verdict(prompt, judge: JudgeOptions, place: str, answer: str, expected) -> None:
    """The format's parser must read the written verdict back from the whole answer (rationale included)."""
    parsed = parse_verdict(judge.task, judge.format_name, answer, judge.attributes)
    if parsed != expected:
        raise JudgeSFTError(
            f"{prompt.name}: the {judge.format_name} parser reads {place}'s verdict as {parsed!r}, "
            f"not {expected!r} (answer ends {answer[-60:]!r})"
        )


def sha256(*texts: str) -> str:
    return hashlib.sha256("\0".join(texts).encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------------------------- pointwise


def _pointwise(inputs, from_hub, mins, maxs, options, judge, prompt):
    sources = helpsteer2.hub_sources(from_hub) if from_hub else helpsteer2.file_sources(inputs)
    sources = sorted(sources, key=lambda source: source.split == "val")
    if all(source.split == "val" for source in sources):
        raise JudgeSFTError(
            f"{sources[0].name}: every input feeds the val split (named validation*/val*/test*); add the train file"
        )
    examples, stats = select_examples(sources, score_bounds(mins, maxs, defaults={}), options)
    rows = {split: [_pointwise_row(example, judge, prompt) for example in kept] for split, kept in examples.items()}
    labels = {
        split: {name: _counts(row[name] for row in split_rows) for name in judge.attributes}
        for split, split_rows in rows.items()
    }
    stats.judge = _judge_stats(judge, prompt, labels=labels)
    return rows, stats


def _pointwise_row(example, judge: JudgeOptions, prompt) -> dict:
    place = where(example.source, example.source_row)
    context, response = example.messages[:-1], example.messages[-1]["content"]
    question = prompt.render(place, **pointwise_variables(judge.format_name, context, response, judge.attributes))
    ratings = {name: example.scores[SCORE_COLUMNS.index(name)] for name in judge.attributes}
    answer = render_verdict("pointwise", judge.format_name, ratings)
    checked_verdict(prompt, judge, place, answer, ratings)
    return {
        MESSAGES_COLUMN: [{"role": "user", "content": question}, {"role": "assistant", "content": answer}],
        columns.TASK_COLUMN: "pointwise",
        columns.FORMAT_COLUMN: judge.format_name,
        columns.PROMPT_ID_COLUMN: sha256(example.prompt),
        columns.RESPONSE_ID_COLUMN: sha256(example.prompt, response),
        **dict(zip(SCORE_COLUMNS, example.scores)),
        "source": example.source,
        "source_row": example.source_row,
    }


# ---------------------------------------------------------------------------------------------------- pairwise


def _pairwise(inputs, from_hub, options: Options, judge: JudgeOptions, prompt):
    sources = preference.preference_hub_sources(from_hub) if from_hub else preference.preference_file_sources(inputs)
    pair_options = pairwise.PairOptions(
        judge.format_name, judge.min_strength, judge.rationale, judge.both_orders, options.keep_malformed,
        options.sample, options.seed,
    )  # fmt: skip
    dropped = Counter({reason: 0 for reason in pairwise.drop_reasons(pair_options)})
    counts = Counter()
    pairs = pairwise.select_pairs(sources, pair_options, dropped, counts)
    rows = {
        split: [
            _pairwise_row(pair, order, pair_options, judge, prompt)
            for pair, order in pairwise.orders(kept, judge.both_orders)
        ]
        for split, kept in pairs.items()
    }
    stats = PrepareStats(
        inputs=[InputCount(source.name, "split column", counts[f"read:{source.name}"]) for source in sources],
        rows_read=counts["read"],
        rows_kept=sum(len(kept) for kept in pairs.values()),  # pairs; splits count rows (orders)
        dropped=dict(dropped),
        malformed_kept_as_one_turn=counts["malformed_kept"],
        multi_turn={"read": counts["multi_turn_read"], "kept": sum(pair.multi_turn for kept in pairs.values() for pair in kept)},
        duplicates=dropped["duplicate"],
        splits={
            split: SplitCount(len(rows[split]), len({pair.row.prompt for pair in kept}), sum(pair.multi_turn for pair in kept))
            for split, kept in pairs.items()
        },
        options=PrepareOptions(
            min={}, max={}, val_split="from the split column", one_per_prompt=False,
            keep_malformed=options.keep_malformed, sample=options.sample, seed=options.seed,
        ),
    )  # fmt: skip
    stats.judge = _judge_stats(
        judge,
        prompt,
        pairs={split: len(kept) for split, kept in pairs.items()},
        labels={split: _counts(row[columns.LABEL_COLUMN] for row in split_rows) for split, split_rows in rows.items()},
        pairs_per_strength={split: pairwise.strength_counts(kept) for split, kept in pairs.items()},
    )
    return rows, stats


def _pairwise_row(pair, order: int, pair_options, judge: JudgeOptions, prompt) -> dict:
    place = where(pair.source, pair.row.source_row)
    messages, label = pairwise.conversation(pair, order, prompt, pair_options, place)
    checked_verdict(prompt, judge, place, messages[-1]["content"], label)
    return {
        MESSAGES_COLUMN: messages,
        columns.TASK_COLUMN: "pairwise",
        columns.FORMAT_COLUMN: judge.format_name,
        columns.PROMPT_ID_COLUMN: sha256(pair.row.prompt),
        columns.PAIR_ID_COLUMN: sha256(pair.row.prompt, pair.row.response_1, pair.row.response_2),
        columns.ORDER_COLUMN: order,
        columns.LABEL_COLUMN: label,
        columns.STRENGTH_COLUMN: pair.row.strength,
        "source": pair.source,
        "source_row": pair.row.source_row,
    }


def _counts(values) -> dict:
    counts = Counter(values)
    return {str(value): counts[value] for value in sorted(counts)}


def _judge_stats(judge: JudgeOptions, prompt, **counts) -> dict:
    settings = {"task": judge.task, "format": judge.format_name, "template": prompt.name}
    if judge.task == "pointwise":
        settings["attributes"] = list(judge.attributes)
    else:
        settings |= {"min_strength": judge.min_strength, "rationale": judge.rationale, "both_orders": judge.both_orders}
    return settings | counts
