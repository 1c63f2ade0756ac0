"""Small judge Parquet files written as judges/columns.py lays them out (what `prepare-data --task` writes), with the
reference verdicts rendered by judges/verdicts.py, and predictions files for `evaluate --predictions`."""

import hashlib
import json

import pyarrow as pa
import pyarrow.parquet as pq

from judge_sft.judges import columns
from judge_sft.judges.verdicts import render_verdict

HELPSTEER2_ATTRIBUTES = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")
QUESTIONS = [
    "What is the boiling point of water at sea level?",
    "Name the largest planet of the solar system.",
    "How many sides does a hexagon have?",
    "Who wrote 'Pride and Prejudice'?",
    "What is 12 x 12?",
    "Which gas do plants absorb from the air?",
]
ANSWERS = [
    ("100 degrees Celsius.", "About 90 degrees Celsius."),
    ("Jupiter.", "Saturn, by a wide margin."),
    ("Six.", "Eight."),
    ("Jane Austen.", "Charlotte Bronte."),
    ("144.", "124."),
    ("Carbon dioxide.", "Oxygen."),
]


def sha(*parts):
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def pointwise_prompt(question, answer, attributes):
    return (
        f"Rate the response on {', '.join(attributes)}, each from 0 to 4.\n\n[Question]\n{question}\n\n"
        f"[Response]\n{answer}"
    )


def write_pointwise(path, ratings, format_name="openjudge", attributes=("helpfulness",)):
    """Two rows per prompt (its two responses): row i rates response i % 2 of question i // 2; `ratings` is each row's
    human rating of the graded attributes, {attribute: 0-4} (the other HelpSteer2 columns get 2)."""
    table = {name: [] for name in ("messages", "task", "judge_format", "prompt_id", "response_id")}
    table.update({name: [] for name in HELPSTEER2_ATTRIBUTES})
    for row, rating in enumerate(ratings):
        question, answer = QUESTIONS[row // 2 % len(QUESTIONS)], ANSWERS[row // 2 % len(ANSWERS)][row % 2]
        verdict = render_verdict("pointwise", format_name, {name: rating[name] for name in attributes})
        table["messages"].append(
            [
                {"role": "user", "content": pointwise_prompt(question, answer, attributes)},
                {"role": "assistant", "content": f"The response is checked against the facts.\n{verdict}"},
            ]
        )
        table["task"].append("pointwise")
        table["judge_format"].append(format_name)
        table["prompt_id"].append(sha(question, str(row // 2)))
        table["response_id"].append(sha(question, answer, str(row)))
        for name in HELPSTEER2_ATTRIBUTES:
            table[name].append(rating.get(name, 2))
    schema = pa.schema(
        [("messages", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())])))]
        + columns.POINTWISE_LABEL_FIELDS
        + [(name, pa.int8()) for name in HELPSTEER2_ATTRIBUTES],
        metadata=columns.judge_metadata("pointwise", format_name, attributes),
    )
    pq.write_table(pa.table(table, schema=schema), path)
    return path


def write_pairwise(path, strengths, format_name="openjudge", both_orders=True):
    """Each strength (HelpSteer2's -3..3, not 0; negative: response_1 better) is one pair, shown in order 0 then 1."""
    table = {name: [] for name in ("messages", "task", "judge_format", "prompt_id", "pair_id", "order", "label")}
    table["preference_strength"] = []
    for pair, strength in enumerate(strengths):
        question = QUESTIONS[pair % len(QUESTIONS)]
        first, second = ANSWERS[pair % len(ANSWERS)]
        for order in (0, 1) if both_orders else (0,):
            shown = (first, second) if order == 0 else (second, first)
            better_first = (strength < 0) == (
                order == 0
            )  # response_1 better and shown first, or response_2 and swapped
            label = "A" if better_first else "B"
            prompt = f"Which response answers better?\n\n[Question]\n{question}\n\n[A]\n{shown[0]}\n\n[B]\n{shown[1]}"
            table["messages"].append(
                [
                    {"role": "user", "content": prompt},
                    {
                        "role": "assistant",
                        "content": f"One is right.\n{render_verdict('pairwise', format_name, label)}",
                    },
                ]
            )
            table["task"].append("pairwise")
            table["judge_format"].append(format_name)
            table["prompt_id"].append(sha(question, str(pair)))
            table["pair_id"].append(sha(question, first, second, str(pair)))
            table["order"].append(order)
            table["label"].append(label)
            table["preference_strength"].append(strength)
    schema = pa.schema(
        [("messages", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())])))]
        + columns.PAIRWISE_LABEL_FIELDS,
        metadata=columns.judge_metadata("pairwise", format_name),
    )
    pq.write_table(pa.table(table, schema=schema), path)
    return path


def write_completions(path, completions):
    """A predictions file: {row: completion text} as one {"row", "completion"} object per line."""
    path.write_text("".join(json.dumps({"row": row, "completion": text}) + "\n" for row, text in completions.items()))
    return path
