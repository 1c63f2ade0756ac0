"""HelpSteer2 preference rows -> pairwise grading conversations: which pairs are kept, in which split, and each shown
in both orders (or one, A/B balanced), with the human rationale rewritten to the letters the prompt shows.

Each pair read is either kept or dropped under the first reason that applies, in this order: malformed_turns,
|strength|<N, duplicate, val_prompt_in_train, not_in_sample.
"""

import random
import re
from collections import Counter
from dataclasses import dataclass

from judge_sft.data import helpsteer2
from judge_sft.data.preference import PreferenceRow
from judge_sft.judges.columns import LETTERS
from judge_sft.judges.prompts import pairwise_variables
from judge_sft.judges.verdicts import render_verdict

MENTION = re.compile(r"@Response ([12])\b")


@dataclass(frozen=True)
class PairOptions:
    format_name: str
    min_strength: int = 1
    rationale: bool = True
    both_orders: bool = True
    keep_malformed: bool = False
    sample: int | None = None
    seed: int = 0


@dataclass(slots=True)
class Pair:
    source: str
    row: PreferenceRow
    context: list  # the messages before the two responses, ending on the user's turn
    multi_turn: bool

    @property
    def better(self) -> int:
        """0 when response_1 is better (negative strength), 1 when response_2 is."""
        return 0 if self.row.strength < 0 else 1


def drop_reasons(options: PairOptions) -> list[str]:
    return [
        "malformed_turns",
        f"|strength|<{options.min_strength}",
        "duplicate",
        "val_prompt_in_train",
        "not_in_sample",
    ]


def select_pairs(sources, options: PairOptions, dropped: Counter, counts: Counter) -> dict:
    """{split: [Pair]} of every source's rows that pass, in input order; the train rows read before the val rows."""
    by_split, seen = {"train": [], "val": []}, set()
    for source in sources:
        rows = source.rows()
        counts[f"read:{source.name}"] = len(rows)
        counts["read"] += len(rows)
        for row in sorted(rows, key=lambda row: row.split == "val"):
            pair, reason = _screen(source.name, row, options, seen, counts)
            if reason:
                dropped[reason] += 1
            else:
                by_split[row.split].append(pair)
    train_prompts = {pair.row.prompt for pair in by_split["train"]}
    val = [pair for pair in by_split["val"] if pair.row.prompt not in train_prompts]
    dropped["val_prompt_in_train"] += len(by_split["val"]) - len(val)
    by_split["val"] = val
    if options.sample is not None:
        train = by_split["train"]
        chosen = set(random.Random(options.seed).sample(range(len(train)), min(options.sample, len(train))))
        by_split["train"] = [pair for position, pair in enumerate(train) if position in chosen]
        dropped["not_in_sample"] += len(train) - len(chosen)
    return by_split


def _screen(source_name, row: PreferenceRow, options: PairOptions, seen: set, counts: Counter):
    try:
        context = helpsteer2.split_turns(row.prompt, row.response_1)[:-1]
        helpsteer2.split_turns(row.prompt, row.response_2)
    except helpsteer2.MalformedTurns:
        if not options.keep_malformed:
            return None, "malformed_turns"
        context = helpsteer2.single_turn(row.prompt, "")[:-1]
        counts["malformed_kept"] += 1
    counts["multi_turn_read"] += len(context) > 1
    if abs(row.strength) < options.min_strength:
        return None, f"|strength|<{options.min_strength}"
    key = (row.prompt, row.response_1, row.response_2)
    if key in seen:
        return None, "duplicate"
    seen.add(key)
    return Pair(source_name, row, context, len(context) > 1), None


def orders(pairs: list, both_orders: bool) -> list[tuple]:
    """(pair, order) to write: both orders of each pair, or one with the labels alternating A, B, A, ..."""
    if both_orders:
        return [(pair, order) for pair in pairs for order in (0, 1)]
    return [(pair, pair.better ^ (position % 2)) for position, pair in enumerate(pairs)]


def conversation(pair: Pair, order: int, prompt, options: PairOptions, where: str) -> tuple[list, str]:
    """The grading conversation of a pair shown in one order, and its label (the better response's letter)."""
    row = pair.row
    shown = (row.response_1, row.response_2) if order == 0 else (row.response_2, row.response_1)
    label = LETTERS[pair.better ^ order]
    variables = pairwise_variables(options.format_name, pair.context, *shown, options.rationale)
    verdict = render_verdict("pairwise", options.format_name, label)
    reason = rationale(row, order) if options.rationale else ""
    answer = f"{reason}\n\n{verdict}" if reason else verdict
    return [
        {"role": "user", "content": prompt.render(where, **variables)},
        {"role": "assistant", "content": answer},
    ], label


def rationale(row: PreferenceRow, order: int) -> str:
    """The human statement and elaboration, every `@Response 1` / `@Response 2` named by the letter shown."""
    text = "\n\n".join(part.strip() for part in (row.statement, row.elaboration) if part.strip())
    return MENTION.sub(lambda match: f"Response {LETTERS[(int(match.group(1)) - 1) ^ order]}", text)


def strength_counts(pairs) -> dict:
    counts = Counter(pair.row.strength for pair in pairs)
    return {str(strength): counts[strength] for strength in sorted(counts)}
