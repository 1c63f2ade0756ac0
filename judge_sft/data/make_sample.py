"""Write helpsteer2_sample.jsonl: ~200 rows in the exact HelpSteer2 schema, written by us for demos and tests.

    python judge_sft/data/make_sample.py        # rewrites the .jsonl beside this script (deterministic)

What it holds, on purpose: two rated responses per prompt (adjacent, as in HelpSteer2), fact / math / code questions,
~29% multi-turn prompts joined with HelpSteer2's turn markers, wrong answers with low correctness, one exact
duplicate row, two prompts whose markers are malformed, and odd whitespace kept as it is in the real data.
"""

import json
import random
import re
from pathlib import Path

OUTPUT = Path(__file__).with_name("helpsteer2_sample.jsonl")
SEED = 2024
ASSISTANT = "\n<extra_id_1>Assistant\n"
USER = "\n<extra_id_1>User\n"

# (question, short correct answer, supporting detail, short wrong answer)
FACTS = [
    ("What is the capital of Australia?", "The capital of Australia is Canberra.",
     "It was chosen in 1908 as a compromise between Sydney and Melbourne, and Parliament has met there since 1927.",
     "The capital of Australia is Sydney."),
    ("At what temperature does water boil at sea level?", "At sea level, water boils at 100 °C (212 °F).",
     "At higher altitudes the air pressure is lower, so water boils at a lower temperature.",
     "Water boils at 90 °C at sea level."),
    ("How many bones are in the adult human body?", "An adult human has 206 bones.",
     "Babies are born with around 270 bones; many of them fuse together during growth.",
     "An adult human has 212 bones."),
    ("Which planet is closest to the Sun?", "Mercury is the planet closest to the Sun.",
     "Its average distance from the Sun is about 58 million kilometres, and a year there lasts 88 Earth days.",
     "Venus is the planet closest to the Sun."),
    ("Who wrote 'Pride and Prejudice'?", "'Pride and Prejudice' was written by Jane Austen.",
     "It was published in 1813 and follows Elizabeth Bennet and Mr Darcy.",
     "'Pride and Prejudice' was written by Charlotte Brontë."),
    ("What is the chemical symbol for gold?", "The chemical symbol for gold is Au.",
     "It comes from the Latin word 'aurum'. Gold has atomic number 79.",
     "The chemical symbol for gold is Ag."),
    ("In what year did the Berlin Wall fall?", "The Berlin Wall fell in 1989.",
     "The border crossings opened on the night of 9 November 1989, and Germany reunified in October 1990.",
     "The Berlin Wall fell in 1991."),
    ("What is the largest ocean on Earth?", "The Pacific Ocean is the largest ocean on Earth.",
     "It covers about 165 million square kilometres, more than all the land on Earth combined.",
     "The Atlantic Ocean is the largest ocean on Earth."),
    ("What gas do plants take in for photosynthesis?", "Plants take in carbon dioxide (CO2) for photosynthesis.",
     "Using light energy, they turn carbon dioxide and water into glucose and release oxygen.",
     "Plants take in oxygen for photosynthesis and release carbon dioxide."),
    ("What is the tallest mountain above sea level?", "Mount Everest is the tallest mountain above sea level.",
     "Its summit is 8,849 metres above sea level, according to the 2020 survey by China and Nepal.",
     "K2 is the tallest mountain above sea level."),
    ("Who developed the general theory of relativity?", "Albert Einstein developed the general theory of relativity.",
     "He published it in 1915; it describes gravity as the curvature of spacetime.",
     "Isaac Newton developed the general theory of relativity."),
    ("What is the freezing point of water in Fahrenheit?", "Water freezes at 32 °F.",
     "That is 0 °C. The Fahrenheit scale puts the boiling point of water at 212 °F.",
     "Water freezes at 0 °F."),
    ("What is the longest river in South America?", "The Amazon is the longest river in South America.",
     "It flows about 6,400 km from the Andes to the Atlantic and carries more water than any other river.",
     "The Paraná is the longest river in South America."),
    ("What is the smallest prime number?", "The smallest prime number is 2.",
     "It is also the only even prime: every other even number is divisible by 2.",
     "The smallest prime number is 1."),
    ("What is the hardest natural mineral?", "Diamond is the hardest natural mineral.",
     "It scores 10 on the Mohs scale; it is made of carbon atoms in a rigid crystal lattice.",
     "Quartz is the hardest natural mineral."),
    ("Which element has atomic number 1?", "Hydrogen has atomic number 1.",
     "It has one proton and is the most abundant element in the universe.",
     "Helium has atomic number 1."),
    ("What is the currency of Japan?", "The currency of Japan is the yen.",
     "Its ISO code is JPY and its symbol is ¥.",
     "The currency of Japan is the won."),
    ("Who painted the Mona Lisa?", "Leonardo da Vinci painted the Mona Lisa.",
     "He worked on it from about 1503; it hangs in the Louvre in Paris.",
     "Michelangelo painted the Mona Lisa."),
    ("How many minutes are there in a day?", "There are 1,440 minutes in a day.",
     "A day has 24 hours and each hour has 60 minutes, so 24 × 60 = 1,440.",
     "There are 1,400 minutes in a day."),
    ("What is the largest planet in the solar system?", "Jupiter is the largest planet in the solar system.",
     "Its mass is more than twice that of all the other planets combined.",
     "Saturn is the largest planet in the solar system."),
    ("What does DNA stand for?", "DNA stands for deoxyribonucleic acid.",
     "It carries the genetic instructions of living organisms in a double helix of two strands.",
     "DNA stands for dinitrogen acid."),
    ("Which organ produces insulin?", "Insulin is produced by the pancreas.",
     "The beta cells in the islets of Langerhans release it to lower blood sugar.",
     "Insulin is produced by the liver."),
    ("How many players does a football (soccer) team have on the field?",
     "A football team has 11 players on the field, including the goalkeeper.",
     "A team must have at least 7 players on the field for a match to continue.",
     "A football team has 10 players on the field."),
    ("What is the capital of Canada?", "The capital of Canada is Ottawa.",
     "Queen Victoria chose it in 1857; it lies in Ontario, on the border with Quebec.",
     "The capital of Canada is Toronto."),
    ("In which year did humans first land on the Moon?", "Humans first landed on the Moon in 1969.",
     "Apollo 11's lunar module landed on 20 July 1969 with Neil Armstrong and Buzz Aldrin.",
     "Humans first landed on the Moon in 1972."),
    ("What is the SI unit of electric current?", "The SI unit of electric current is the ampere (A).",
     "One ampere is one coulomb of charge passing a point per second.",
     "The SI unit of electric current is the volt."),
    ("What is the speed of light in a vacuum?", "The speed of light in a vacuum is 299,792,458 metres per second.",
     "The value is exact, because the metre is defined from it.",
     "The speed of light in a vacuum is about 300,000 metres per second."),
    ("Which blood type is the universal donor for red blood cells?", "O negative is the universal red-cell donor type.",
     "Its red cells carry no A, B or RhD antigens, so most recipients' antibodies do not attack them.",
     "AB positive is the universal red-cell donor type."),
    ("How many strings does a standard guitar have?", "A standard guitar has six strings.",
     "In standard tuning they are E, A, D, G, B and E, from lowest to highest.",
     "A standard guitar has five strings."),
    ("What is the main language spoken in Brazil?", "The main language of Brazil is Portuguese.",
     "Brazil was a Portuguese colony until its independence in 1822.",
     "The main language of Brazil is Spanish."),
]

# (question, correct answer, time complexity note, wrong answer)
CODE = [
    ("Write a Python function that reverses a string.",
     "```python\ndef reverse(text: str) -> str:\n    return text[::-1]\n```\nThe slice `[::-1]` walks the string "
     "backwards.",
     "It is O(n): the slice copies each of the n characters once.",
     "```python\ndef reverse(text):\n    return text.reverse()\n```"),
    ("How do I check whether a key exists in a Python dictionary?",
     "Use the `in` operator:\n```python\nif \"name\" in person:\n    print(person[\"name\"])\n```",
     "A membership test on a dict is O(1) on average, because dicts are hash tables.",
     "Call `person.has_key(\"name\")`."),
    ("Write a Python function that returns the factorial of n.",
     "```python\ndef factorial(n: int) -> int:\n    result = 1\n    for k in range(2, n + 1):\n        result *= k\n"
     "    return result\n```",
     "It runs in O(n) multiplications.",
     "```python\ndef factorial(n):\n    if n == 0:\n        return 0\n    return n * factorial(n - 1)\n```"),
    ("What is the time complexity of binary search?",
     "Binary search runs in O(log n) time on a sorted array, because each comparison halves the range left to search.",
     "The recursive version also needs O(log n) stack space; the loop version needs O(1).",
     "Binary search runs in O(n) time."),
    ("How do I read a text file line by line in Python?",
     "```python\nwith open(\"notes.txt\", encoding=\"utf-8\") as file:\n    for line in file:\n        print(line.rstrip(\"\\n\"))\n```",
     "It is O(n) in the file size, and it holds only one line in memory at a time.",
     "```python\nfor line in open(\"notes.txt\").read():\n    print(line)\n```"),
    ("How can I remove duplicates from a Python list but keep the original order?",
     "```python\nunique = list(dict.fromkeys(items))\n```\nDicts keep insertion order, so the first occurrence of each item "
     "wins.",
     "It is O(n) on average for hashable items.",
     "```python\nunique = list(set(items))\n```"),
    ("Write a SQL query that counts the rows in a table named orders.",
     "```sql\nSELECT COUNT(*) FROM orders;\n```",
     "Most databases scan the table or an index, so it is O(n) in the number of rows.",
     "```sql\nSELECT SUM(*) FROM orders;\n```"),
    ("What does the HTTP status code 404 mean?",
     "404 Not Found: the server was reached but has nothing at the requested URL.",
     "Returning it takes constant time; it is a lookup miss, not a computation.",
     "404 means the server crashed while handling the request."),
    ("Write a Python function that checks whether a number is even.",
     "```python\ndef is_even(n: int) -> bool:\n    return n % 2 == 0\n```",
     "It is O(1): one modulo and one comparison.",
     "```python\ndef is_even(n):\n    return n % 2 == 1\n```"),
    ("What does `print(0.1 + 0.2 == 0.3)` print in Python?",
     "It prints `False`: 0.1 and 0.2 have no exact binary representation, so the sum is 0.30000000000000004. Compare "
     "with `math.isclose(0.1 + 0.2, 0.3)` instead.",
     "Both the addition and the comparison are O(1).",
     "It prints `True`."),
    ("How do I sort a list of dictionaries by their 'age' key in Python?",
     "```python\npeople_by_age = sorted(people, key=lambda person: person[\"age\"])\n```",
     "Sorting is O(n log n) comparisons.",
     "```python\npeople.sort(\"age\")\n```"),
    ("Why does this loop raise an IndexError?\n```python\nfor i in range(len(items)):\n    print(items[i + 1])\n```",
     "On the last pass `i` is `len(items) - 1`, so `items[i + 1]` reads one past the end. Use `for item in items: "
     "print(item)`.",
     "The fixed loop is O(n).",
     "Because `range` starts at 1 in Python."),
    ("What is the difference between a list and a tuple in Python?",
     "A list is mutable: you can append, remove and reassign items. A tuple is immutable once created, which also "
     "makes it hashable (when its items are), so it can be a dict key.",
     "Indexing either one is O(1).",
     "Lists can hold only one type of value; tuples can mix types."),
    ("Write a Python function that returns the largest number in a non-empty list without using max().",
     "```python\ndef largest(numbers: list[float]) -> float:\n    best = numbers[0]\n    for number in numbers[1:]:\n"
     "        if number > best:\n            best = number\n    return best\n```",
     "It is O(n): each number is compared once.",
     "```python\ndef largest(numbers):\n    best = 0\n    for number in numbers:\n        if number > best:\n"
     "            best = number\n    return best\n```"),
    ("What does `git stash` do?",
     "It saves your uncommitted changes on a stack and restores a clean working tree; `git stash pop` re-applies "
     "them.",
     "Its cost grows with the size of the changes, not of the repository history.",
     "It deletes your uncommitted changes permanently."),
]

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
        yield f"What is {a} × {b}?", {
            "full": f"{a} × {b} = {product}. One way to see it: {a} × {b // 10 * 10} = {a * (b // 10 * 10)}, plus "
                    f"{a} × {b % 10} = {a * (b % 10)}, gives {product}.",
            "terse": f"{product}", "wrong": f"{a} × {b} = {product + rng.choice([-10, 10, 100])}."}
    for _ in range(6):
        x, a, b = rng.randint(2, 15), rng.randint(2, 9), rng.randint(1, 30)
        c = a * x + b
        yield f"Solve for x: {a}x + {b} = {c}", {
            "full": f"Subtract {b} from both sides: {a}x = {c - b}. Divide by {a}: x = {x}. Check: {a} × {x} + {b} = {c}.",
            "terse": f"x = {x}", "wrong": f"x = {x + 1}"}
    for _ in range(5):
        distance, hours = rng.randint(2, 9) * 60, rng.randint(2, 5)
        yield f"A train travels {distance} km in {hours} hours. What is its average speed?", {
            "full": f"Average speed is distance divided by time: {distance} km / {hours} h = {distance / hours:g} km/h.",
            "terse": f"{distance / hours:g} km/h", "wrong": f"{distance * hours} km/h"}
    for n in rng.sample([91, 97, 51, 53, 87, 89], 4):
        factors = [k for k in range(2, n) if n % k == 0]
        verdict = f"No, {n} is not prime: {n} = {factors[0]} × {n // factors[0]}." if factors else \
            f"Yes, {n} is prime: it has no divisor between 2 and {int(n ** 0.5)}."
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
        rows += pair(rng, prompt, {"full": complexity, "terse": first_clause(complexity),
                                   "wrong": "It is O(1) whatever the input size."})
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
    return (pair(rng, user_first, {"full": "7 × 9 = 63.", "terse": "63", "wrong": "7 × 9 = 56."})
            + pair(rng, ends_on_assistant, {"full": "5 is prime too.", "terse": "5", "wrong": "9 is prime."}))


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
    single_turn = [prompt_answers for source in (fact_prompts, code_prompts, math_prompts)
                   for prompt_answers in source(rng)]
    groups = [pair(rng, prompt, answers) for prompt, answers in single_turn]
    multi = multi_turn_rows(rng)
    groups += [multi[start:start + 2] for start in range(0, len(multi), 2)]
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
