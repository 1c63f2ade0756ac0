"""Write helpsteer2_preference_sample.jsonl: ~100 pairs in the exact schema of HelpSteer2's
preference/preference.jsonl.gz, written by us for the judge demo and tests.

    python judge_sft/data/make_preference_sample.py   # rewrites the .jsonl beside this script (deterministic)

The prompts and response pairs are helpsteer2_sample.jsonl's (make_sample.py, from sample_topics.json), each pair in a
random order with a preference strength from the two helpfulness ratings (-3..3, negative: response 1 better) and a
statement and elaboration that name @Response 1 / @Response 2. On purpose: ~12% validation rows, ties (strength 0),
one exact duplicate, one validation row whose prompt is also in train, and the sample's two malformed prompts.
"""

import json
import random
from pathlib import Path

from judge_sft.data.make_sample import sample_rows

OUTPUT = Path(__file__).with_name("helpsteer2_preference_sample.jsonl")
SEED = 2025
DEGREE = {1: "slightly better than", 2: "better than", 3: "much better than"}


def prompt_pairs() -> list[tuple]:
    """(prompt, first response row, second response row) of each prompt of the responses sample, in its order."""
    by_prompt = {}
    for item in sample_rows():
        responses = by_prompt.setdefault(item["prompt"], [])
        if item not in responses:  # the sample's exact duplicate
            responses.append(item)
    return [(prompt, *responses[:2]) for prompt, responses in by_prompt.items()]


def quote(text: str) -> str:
    first_line = text.strip().splitlines()[0]
    return first_line if len(first_line) <= 60 else first_line[:57] + "..."


def preference(rng: random.Random, prompt: str, first: dict, second: dict, split: str) -> dict:
    strength = max(-3, min(3, second["helpfulness"] - first["helpfulness"]))
    if strength == 0:
        statement = "@Response 1 and @Response 2 are equally good."
        elaboration = f"Both answer the question: @Response 1 says \"{quote(first['response'])}\" and @Response 2 " \
            f"says \"{quote(second['response'])}\"."  # fmt: skip
    else:
        better, worse = (1, 2) if strength < 0 else (2, 1)
        better_row, worse_row = (first, second) if strength < 0 else (second, first)
        why = (
            f"@Response {worse} is wrong" if worse_row["correctness"] < better_row["correctness"]
            else f"@Response {better} explains more where @Response {worse} gives only the result"
        )  # fmt: skip
        statement = f"@Response {better} is {DEGREE[abs(strength)]} @Response {worse} because {why}."
        elaboration = (
            f'@Response {better} says "{quote(better_row["response"])}", while @Response {worse} says '
            f'"{quote(worse_row["response"])}".'
        )
    similar = [{"statement": statement, "elaboration": elaboration, "strength": strength} for _ in range(3)]
    return {
        "split": split,
        "prompt": prompt,
        "response_1": first["response"],
        "response_2": second["response"],
        "preference_strength": strength,
        "preference_statement": statement,
        "preference_elaboration": elaboration,
        "three_most_similar_preferences": similar,
        "all_preferences_unprocessed": [
            {"strength": max(-3, min(3, strength + rng.choice([-1, 0, 0, 1]))), "justification": statement}
            for _ in range(rng.randint(2, 5))
        ],
    }


def sample_rows_preference() -> list[dict]:
    rng = random.Random(SEED)
    rows = []
    for prompt, first, second in prompt_pairs():
        if rng.random() < 0.5:
            first, second = second, first
        rows.append(preference(rng, prompt, first, second, "validation" if rng.random() < 0.12 else "train"))
    train_at = rng.choice(
        [index for index, item in enumerate(rows) if item["split"] == "train" and abs(item["preference_strength"]) > 1]
    )
    leaked = dict(rows[train_at], split="validation", response_1=rows[train_at]["response_2"])
    leaked["response_2"] = rows[train_at]["response_1"]  # the same prompt, so it must not reach val
    leaked["preference_strength"] = -rows[train_at]["preference_strength"]
    rows.append(leaked)
    duplicate_at = rng.choice([index for index, item in enumerate(rows) if item["preference_strength"]])
    rows.insert(duplicate_at + 1, dict(rows[duplicate_at]))
    return rows


def sample_text() -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in sample_rows_preference())


if __name__ == "__main__":
    OUTPUT.write_text(sample_text(), encoding="utf-8")
    print(f"wrote {OUTPUT}")
