"""Write helpsteer2_sample.jsonl: ~200 rows in the exact HelpSteer2 schema, written by us for demos and tests.

    python judge_sft/data/make_sample.py        # rewrites the .jsonl beside this script (deterministic)

What it holds, on purpose: two rated responses per prompt (adjacent, as in HelpSteer2), fact / math / code questions,
~29% multi-turn prompts joined with HelpSteer2's turn markers, wrong answers with low correctness, one exact
duplicate row, two prompts whose markers are malformed, and odd whitespace kept as it is in the real data.
The fact and code questions, with their answers, are read from sample_topics.json beside this script.
"""

import json
import random
import re
from pathlib import Path

OUTPUT = Path(__file__).with_name("helpsteer2_sample.jsonl")
SEED = 2024
ASSISTANT = "\n<extra_id_1>Assistant\n"
USER = "\n<extra_id_1>User\n"

TOPICS = json.loads(OUTPUT.with_name("sample_topics.json").read_text(encoding="utf-8"))
# (question, short correct answer, supporting detail, short wrong answer)
FACTS = [(item["question"], item["answer"], item["detail"], item["wrong"]) for item in TOPICS["facts"]]
# (question, correct answer, time complexity note, wrong answer)
CODE = [(item["question"], item["answer"], item["complexity"], item["wrong"]) for item in TOPICS["code"]]

FOLLOW_UP_SHORT = "Thanks. Can you say that in one sentence, for a quiz card?"
FOLLOW_UP_COMPLEXITY = "What is the time complexity of that?"
ODD_WHITESPACE = ["\n \n\n ", "  ", "\n\n", " \t", "\n "]


def scores(rng: random.Random, quality: str) -> dict:
    """HelpSteer2-like ratings for a response of the given quality: 'full', 'terse' or 'wrong'."""
    if quality == "full":
        return rate(rng, helpfulness=(3, 4), correctness=(4, 4), coherence=(3, 4), complexity=(1, 2), verbosity=(2, 3))
    if quality == "terse":
        return rate(rng, helpfulness=(2, 3), correctness=(3, 4), coherence=(4, 4), complexity=(0, 1), verbosity=(0, 1))
    return rate(rng, helpfulness=(0, 1), correctness=(0, 2), coherence=(2, 4), complexity=(0, 1), verbosity=(0, 1))


def rate(rng: random.Random, **ranges) -> dict:
    return {name: rng.randint(low, high) for name, (low, high) in ranges.items()}


def row(prompt: str, response: str, ratings: dict) -> dict:
    return {"prompt": prompt, "response": response, **ratings}


def pair(rng: random.Random, prompt: str, answers: dict) -> list[dict]:
    """Two rated responses to one prompt, picked from answers {quality: text}: a strong one and a weaker one."""
    first, second = rng.choice([("full", "wrong"), ("full", "terse"), ("terse", "wrong"), ("full", "wrong")])
    if answers["terse"] == answers["full"]:
        first, second = "full", "wrong"
    return [row(prompt, answers[first], scores(rng, first)), row(prompt, answers[second], scores(rng, second))]


def first_clause(text: str) -> str:
    return re.split(r"[:;,]", text)[0].rstrip(".") + "."


def fact_prompts(rng):
    for question, short, detail, wrong in FACTS:
        yield question, {"full": f"{short} {detail}", "terse": short, "wrong": wrong}


def code_prompts(rng):
    for question, answer, _, wrong in CODE:
        terse = answer.split("\n```\n")[0] + "\n```" if answer.startswith("```") else first_clause(answer)
        yield question, {"full": answer, "terse": terse, "wrong": wrong}


def math_prompts(rng):
    for _ in range(8):
        a, b = rng.randint(12, 99), rng.randint(12, 99)
        product = a * b
        yield (
            f"What is {a} × {b}?",
            {
                "full": f"{a} × {b} = {product}. One way to see it: {a} × {b // 10 * 10} = {a * (b // 10 * 10)}, plus "
                f"{a} × {b % 10} = {a * (b % 10)}, gives {product}.",
                "terse": f"{product}",
                "wrong": f"{a} × {b} = {product + rng.choice([-10, 10, 100])}.",
            },
        )
    for _ in range(6):
        x, a, b = rng.randint(2, 15), rng.randint(2, 9), rng.randint(1, 30)
        c = a * x + b
        yield (
            f"Solve for x: {a}x + {b} = {c}",
            {
                "full": f"Subtract {b} from both sides: {a}x = {c - b}. Divide by {a}: x = {x}. Check: {a} × {x} + {b} = {c}.",
                "terse": f"x = {x}",
                "wrong": f"x = {x + 1}",
            },
        )
    for _ in range(5):
        distance, hours = rng.randint(2, 9) * 60, rng.randint(2, 5)
        yield (
            f"A train travels {distance} km in {hours} hours. What is its average speed?",
            {
                "full": f"Average speed is distance divided by time: {distance} km / {hours} h = {distance / hours:g} km/h.",
                "terse": f"{distance / hours:g} km/h",
                "wrong": f"{distance * hours} km/h",
            },
        )
    for n in rng.sample([91, 97, 51, 53, 87, 89], 4):
        factors = [k for k in range(2, n) if n % k == 0]
        verdict = (
            f"No, {n} is not prime: {n} = {factors[0]} × {n // factors[0]}."
            if factors
            else f"Yes, {n} is prime: it has no divisor between 2 and {int(n**0.5)}."
        )
        wrong = f"Yes, {n} is prime." if factors else f"No, {n} is divisible by 3."
        yield f"Is {n} a prime number?", {"full": verdict, "terse": verdict.split(":")[0] + ".", "wrong": wrong}


def multi_turn_rows(rng):
    """Prompts that hold earlier turns, joined with the HelpSteer2 markers; the response answers the last user turn."""
    rows = []
    for question, short, detail, wrong in rng.sample(FACTS, 10):
        prompt = f"{question}{ASSISTANT}{short} {detail}{USER}{FOLLOW_UP_SHORT}"
        rows += pair(rng, prompt, {"full": f"Sure: {short}", "terse": short, "wrong": wrong})
    for question, answer, complexity, _ in rng.sample(CODE, 8):
        prompt = f"{question}{ASSISTANT}{answer}{USER}{FOLLOW_UP_COMPLEXITY}"
        rows += pair(
            rng,
            prompt,
            {"full": complexity, "terse": first_clause(complexity), "wrong": "It is O(1) whatever the input size."},
        )
    for _ in range(10):
        a, b, c, d = rng.randint(3, 40), rng.randint(3, 40), rng.randint(2, 50), rng.randint(2, 9)
        turns = f"What is {a} + {b}?{ASSISTANT}{a} + {b} = {a + b}.{USER}Now multiply that by {d}."
        total = (a + b) * d
        if rng.random() < 0.5:  # a third user turn
            turns += f"{ASSISTANT}({a + b}) × {d} = {total}.{USER}And subtract {c}?"
            total -= c
            answers = {"full": f"{total + c} − {c} = {total}.", "terse": f"{total}", "wrong": f"{total + 2 * c}"}
        else:
            answers = {"full": f"({a + b}) × {d} = {total}.", "terse": f"{total}", "wrong": f"{a + b * d}"}
        rows += pair(rng, turns, answers)
    return rows


def malformed_rows(rng):
    """Prompts whose markers are wrong: they must be skipped (or kept whole), never split."""
    user_first = f"What is 7 × 8?{USER}Actually, what is 7 × 9?"  # a User marker where an Assistant one belongs
    ends_on_assistant = f"Name a prime number.{ASSISTANT}2 is prime.{USER}Another one?{ASSISTANT}3 is prime."
    return pair(rng, user_first, {"full": "7 × 9 = 63.", "terse": "63", "wrong": "7 × 9 = 56."}) + pair(
        rng, ends_on_assistant, {"full": "5 is prime too.", "terse": "5", "wrong": "9 is prime."}
    )


def with_odd_whitespace(rng, groups):
    """HelpSteer2 text holds stray whitespace; put some in a few prompts (before the first marker when there is one)
    and responses, as the real data has it."""
    for group in rng.sample(groups, 12):
        odd = rng.choice(ODD_WHITESPACE)
        if rng.random() < 0.5:
            first_turn, marker, rest = group[0]["prompt"].partition("\n<extra_id_1>")
            for item in group:  # both responses share the prompt
                item["prompt"] = first_turn + odd + marker + rest
        else:
            group[1]["response"] += odd
    return groups


def sample_rows() -> list[dict]:
    rng = random.Random(SEED)
    single_turn = [
        prompt_answers for source in (fact_prompts, code_prompts, math_prompts) for prompt_answers in source(rng)
    ]
    groups = [pair(rng, prompt, answers) for prompt, answers in single_turn]
    multi = multi_turn_rows(rng)
    groups += [multi[start : start + 2] for start in range(0, len(multi), 2)]
    malformed = malformed_rows(rng)
    groups += [malformed[0:2], malformed[2:4]]
    rng.shuffle(groups)
    rows = [item for group in with_odd_whitespace(rng, groups) for item in group]
    # An exact duplicate of a row that passes the default filter, so that deduplication has work to do.
    duplicate_at = rng.choice([index for index, item in enumerate(rows) if item["correctness"] >= 4])
    rows.insert(duplicate_at + 1, dict(rows[duplicate_at]))
    return rows


def sample_text() -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in sample_rows())


if __name__ == "__main__":
    OUTPUT.write_text(sample_text(), encoding="utf-8")
    print(f"wrote {OUTPUT}")
