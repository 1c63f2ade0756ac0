"""`judge-sft prepare-data --task pointwise|pairwise`: exact grading conversations per format, verdicts read back over
the whole bundled samples, mirrored swaps, splits, label columns and metadata, stats, and bad input."""

import gzip
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from judge_sft.cli import main
from judge_sft.data import prepare as prepare_module
from judge_sft.judges.columns import read_judge_metadata
from judge_sft.judges.verdicts import parse_verdict

DATA = Path(prepare_module.__file__).parent
SAMPLE = DATA / "helpsteer2_sample.jsonl"
PREFERENCE_SAMPLE = DATA / "helpsteer2_preference_sample.jsonl"
SCORES = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")

# A multi-turn HelpSteer2 row (main files) and a preference row, in the published schemas.
RATED = {
    "prompt": "What is the boiling point of water in Fahrenheit?\n<extra_id_1>Assistant\n212 °F at sea level."
    "\n<extra_id_1>User\nAnd in Celsius?",
    "response": "100 °C at sea level.",
    "helpfulness": 4,
    "correctness": 4,
    "coherence": 4,
    "complexity": 1,
    "verbosity": 1,
}
PREFERRED = {
    "split": "train",
    "prompt": "Name a prime number between 10 and 20.",
    "response_1": "12 is prime.",
    "response_2": "13 is a prime number between 10 and 20.",
    "preference_strength": 2,
    "preference_statement": "@Response 2 is better than @Response 1 because @Response 1 is wrong.",
    "preference_elaboration": "12 is divisible by 2 and 3, so @Response 1 names no prime; @Response 2 names 13, "
    "which is prime.",
    "three_most_similar_preferences": [],
    "all_preferences_unprocessed": [],
}
RATIONALE_B = (
    "Response B is better than Response A because Response A is wrong.\n\n12 is divisible by 2 and 3, so Response A "
    "names no prime; Response B names 13, which is prime."
)


def write_jsonl(path, records):
    text = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in records)
    path.write_bytes(gzip.compress(text.encode())) if path.name.endswith(".gz") else path.write_text(text)
    return path


def prepare(tmp_path, task, *inputs, extra=(), output="out"):
    argv = ["prepare-data", "--task", task, "--output-dir", str(tmp_path / output)]
    for path in inputs:
        argv += ["--input", str(path)]
    return main(argv + list(extra)), tmp_path / output


def rows(output_dir, split="train"):
    return pq.read_table(output_dir / f"{split}.parquet").to_pylist()


def both_splits(output_dir):
    return rows(output_dir, "train") + rows(output_dir, "val")


def stats(output_dir):
    return json.loads((output_dir / "stats.json").read_text())


def assert_failed_cleanly(code, out, capsys, message):
    """Exit 1, exactly this one error line, and nothing written."""
    assert code == 1
    assert capsys.readouterr().err == f"judge-sft prepare-data: error: {message}\n"
    assert not out.exists() or not any(out.iterdir())


# ---------------------------------------------------------------------------------------------------- exact messages

POINTWISE_OPENJUDGE = """You are a professional evaluator. Grade the assistant's last response in the conversation below.

<rubric>
- helpfulness: overall helpfulness of the response to the prompt
</rubric>
Score it from 0 (worst) to 4 (best).

<conversation>
[user]
What is the boiling point of water in Fahrenheit?
[assistant]
212 °F at sea level.
[user]
And in Celsius?
</conversation>

<response>
100 °C at sea level.
</response>

Answer with the score only, in this format: <score>N</score>"""

POINTWISE_PROMETHEUS = """###Task Description:
An instruction (might include earlier turns of a conversation), a response to evaluate, and a score rubric representing an evaluation criteria are given.
1. Write a score that is an integer between 1 and 5 for each criterion, strictly based on the given score rubric, not evaluating in general.
2. The output format should look as follows: "[RESULT] helpfulness: N, complexity: N"
3. Please do not generate any other opening, closing, and explanations.

###The instruction to evaluate:
[user] What is the boiling point of water in Fahrenheit?
[assistant] 212 °F at sea level.
[user] And in Celsius?

###Response to evaluate:
100 °C at sea level.

###Score Rubrics:
[helpfulness: overall helpfulness of the response to the prompt]
[complexity: intellectual depth required to write the response (basic language competency, or deep domain expertise)]
Score 1: the response shows none of it. Score 5: the response shows all of it.

###Result:"""  # noqa: E501 - the prompt's own long lines

PAIRWISE_OPENJUDGE = """You are a professional evaluator. Compare two responses to the last turn of the conversation below and decide which one is better: more helpful, correct, coherent, and as detailed as the user needs.

<conversation>
[user]
Name a prime number between 10 and 20.
</conversation>

<response_a>
12 is prime.
</response_a>

<response_b>
13 is a prime number between 10 and 20.
</response_b>

Explain which response is better and why, then end with your verdict, in this format: <better>A</better> or <better>B</better>"""  # noqa: E501

PAIRWISE_PROMETHEUS = """###Task Description:
An instruction (might include earlier turns of a conversation), two responses to evaluate (denoted as Response A and Response B), and an evaluation criteria are given.
1. Write a detailed feedback that assess the quality of the two responses strictly based on the given evaluation criteria, not evaluating in general.
2. After writing the feedback, indicate the better response, either "A" or "B".
3. The output format should look as follows: "(write a feedback for criteria) [RESULT] A" or "(feedback) [RESULT] B"
4. Please do not generate any other opening, closing, and explanations.

###Instruction:
Name a prime number between 10 and 20.

###Response A:
12 is prime.

###Response B:
13 is a prime number between 10 and 20.

###Score Rubric:
[Is the response helpful, correct, coherent, and as detailed as the user needs?]

###Feedback:"""  # noqa: E501

PAIRWISE_MT_BENCH = """Please act as an impartial judge and evaluate the quality of the responses provided by two AI assistants to the user question displayed below. You should choose the assistant that follows the user's instructions and answers the user's question better. Your evaluation should consider factors such as the helpfulness, relevance, accuracy, depth, creativity, and level of detail of their responses. Avoid any position biases and ensure that the order in which the responses were presented does not influence your decision. Do not allow the length of the responses to influence your evaluation. Be as objective as possible. Output only your verdict by strictly following this format: "[[A]]" if Response A is better, "[[B]]" if Response B is better.

[User Question]
Name a prime number between 10 and 20.

[The Start of Response A]
12 is prime.
[The End of Response A]

[The Start of Response B]
13 is a prime number between 10 and 20.
[The End of Response B]"""  # noqa: E501


@pytest.mark.parametrize(
    "extra,prompt,verdict",
    [
        ((), POINTWISE_OPENJUDGE, "<score>4</score>"),
        (
            ("--judge-format", "prometheus", "--attributes", "helpfulness,complexity"),
            POINTWISE_PROMETHEUS,
            "[RESULT] helpfulness: 5, complexity: 2",
        ),
    ],
)
def test_a_rated_row_becomes_the_exact_pointwise_conversation(tmp_path, extra, prompt, verdict):
    data = write_jsonl(tmp_path / "train.jsonl", [RATED])
    code, out = prepare(tmp_path, "pointwise", data, extra=("--val-fraction", "0", *extra))
    assert code == 0
    [row] = rows(out)
    assert row["messages"] == [{"role": "user", "content": prompt}, {"role": "assistant", "content": verdict}]
    assert {name: row[name] for name in SCORES} == {name: RATED[name] for name in SCORES}
    assert (row["task"], row["source_row"]) == ("pointwise", 1)


@pytest.mark.parametrize(
    "judge_format,prompt,answer",
    [
        ("openjudge", PAIRWISE_OPENJUDGE, f"{RATIONALE_B}\n\n<better>B</better>"),
        ("prometheus", PAIRWISE_PROMETHEUS, f"{RATIONALE_B}\n\n[RESULT] B"),
        ("mt-bench", PAIRWISE_MT_BENCH, "[[B]]"),
    ],
)
def test_a_preference_row_becomes_the_exact_pairwise_conversation(tmp_path, judge_format, prompt, answer):
    data = write_jsonl(tmp_path / "preference.jsonl", [PREFERRED])
    extra = ["--judge-format", judge_format] + (["--no-rationale"] if judge_format == "mt-bench" else [])
    code, out = prepare(tmp_path, "pairwise", data, extra=extra)
    assert code == 0
    shown, swapped = rows(out)
    assert shown["messages"] == [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
    labels = [(row["order"], row["label"], row["preference_strength"], row["judge_format"]) for row in (shown, swapped)]
    assert labels == [(0, "B", 2, judge_format), (1, "A", 2, judge_format)]
    assert shown["pair_id"] == swapped["pair_id"] and shown["prompt_id"] == swapped["prompt_id"]


# ---------------------------------------------------------------------------------------------------- whole samples


@pytest.mark.parametrize(
    "task,sample,extra",
    [
        ("pointwise", SAMPLE, ("--judge-format", "openjudge")),
        ("pointwise", SAMPLE, ("--judge-format", "prometheus", "--attributes", ",".join(SCORES))),
        ("pairwise", PREFERENCE_SAMPLE, ("--judge-format", "openjudge")),
        ("pairwise", PREFERENCE_SAMPLE, ("--judge-format", "prometheus")),
        ("pairwise", PREFERENCE_SAMPLE, ("--judge-format", "mt-bench", "--no-rationale")),
    ],
)
def test_every_verdict_written_reads_back_under_its_formats_parser(tmp_path, task, sample, extra):
    code, out = prepare(tmp_path, task, sample, extra=extra)
    assert code == 0
    task_read, judge_format, attributes = read_judge_metadata(pq.read_schema(out / "train.parquet"))
    assert (task_read, judge_format) == (task, extra[1])
    written = both_splits(out)
    for row in written:
        verdict = parse_verdict(task, judge_format, row["messages"][-1]["content"], attributes)
        expected = row["label"] if task == "pairwise" else {name: row[name] for name in attributes}
        assert verdict == expected, row
    assert len(written) == (174 if task == "pairwise" else 191)
    assert main(["validate-data", str(out / "train.parquet"), str(out / "val.parquet")]) == 0


def swap_letters(text):
    """`Response A` <-> `Response B` and the verdict's letter."""
    return re.sub(r"(Response |<better>)([AB])", lambda match: match[1] + {"A": "B", "B": "A"}[match[2]], text)


def shown_responses(prompt):
    return prompt.split("<response_a>\n")[1].split("\n</response_a>")[0], prompt.split("<response_b>\n")[1].split(
        "\n</response_b>"
    )[0]


def test_the_two_orders_of_a_pair_mirror_each_other(tmp_path):
    code, out = prepare(tmp_path, "pairwise", PREFERENCE_SAMPLE)
    assert code == 0
    by_pair = {}
    for row in both_splits(out):
        by_pair.setdefault(row["pair_id"], []).append(row)
    source = [json.loads(line) for line in PREFERENCE_SAMPLE.read_text().splitlines()]
    for first, second in by_pair.values():
        assert (first["order"], second["order"]) == (0, 1)
        assert {first["label"], second["label"]} == {"A", "B"}
        record = source[first["source_row"] - 1]
        assert shown_responses(first["messages"][0]["content"]) == (record["response_1"], record["response_2"])
        assert shown_responses(second["messages"][0]["content"]) == (record["response_2"], record["response_1"])
        assert swap_letters(first["messages"][1]["content"]) == second["messages"][1]["content"]
        assert "@Response" not in first["messages"][1]["content"]
        assert first["label"] == ("A" if record["preference_strength"] < 0 else "B")


def test_no_prompt_is_in_both_splits_and_the_split_column_decides(tmp_path):
    code, out = prepare(tmp_path, "pairwise", PREFERENCE_SAMPLE)
    assert code == 0
    train, val = rows(out, "train"), rows(out, "val")
    assert not {row["prompt_id"] for row in train} & {row["prompt_id"] for row in val}
    source = [json.loads(line) for line in PREFERENCE_SAMPLE.read_text().splitlines()]
    assert {source[row["source_row"] - 1]["split"] for row in train} == {"train"}
    assert {source[row["source_row"] - 1]["split"] for row in val} == {"validation"}
    assert stats(out)["dropped"]["val_prompt_in_train"] == 1
    code, out = prepare(tmp_path, "pointwise", SAMPLE, output="pointwise")
    assert not {row["prompt_id"] for row in rows(out, "train")} & {row["prompt_id"] for row in rows(out, "val")}


def test_min_strength_keeps_the_exact_pairs_and_stats_count_them(tmp_path):
    source = [json.loads(line) for line in PREFERENCE_SAMPLE.read_text().splitlines()]
    code, out = prepare(tmp_path, "pairwise", PREFERENCE_SAMPLE, extra=("--min-strength", "2"))
    assert code == 0
    result = stats(out)
    assert result["dropped"]["|strength|<2"] == sum(
        abs(item["preference_strength"]) < 2 and "<extra_id_1>User\nActually" not in item["prompt"]
        and not item["prompt"].rstrip().endswith("3 is prime.")
        for item in source
    )  # fmt: skip
    written = both_splits(out)
    assert all(abs(row["preference_strength"]) >= 2 for row in written)
    for split in ("train", "val"):
        split_rows = rows(out, split)
        labels = Counter(row["label"] for row in split_rows)
        assert result["judge"]["labels"][split] == {letter: labels[letter] for letter in sorted(labels)}
        assert labels["A"] == labels["B"] == result["judge"]["pairs"][split] == len(split_rows) / 2
        strengths = Counter(row["preference_strength"] for row in split_rows if row["order"] == 0)
        assert result["judge"]["pairs_per_strength"][split] == {str(s): strengths[s] for s in sorted(strengths)}
        assert result["splits"][split]["rows"] == len(split_rows)


def test_one_order_shows_each_pair_once_with_the_letters_balanced(tmp_path):
    code, out = prepare(tmp_path, "pairwise", PREFERENCE_SAMPLE, extra=("--one-order",))
    assert code == 0
    train = rows(out)
    assert len({row["pair_id"] for row in train}) == len(train) == 76
    assert Counter(row["label"] for row in train) == {"A": 38, "B": 38}
    assert {row["order"] for row in train} == {0, 1}


def test_pointwise_keeps_every_quality_level_and_counts_the_labels(tmp_path):
    code, out = prepare(tmp_path, "pointwise", SAMPLE, extra=("--attributes", "correctness"))
    assert code == 0
    result = stats(out)
    source = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    assert result["rows_read"] == len(source) == 197
    assert {reason: count for reason, count in result["dropped"].items() if count} == {
        "malformed_turns": 4,
        "duplicate": 2,
    }
    for split in ("train", "val"):
        scores = Counter(str(row["correctness"]) for row in rows(out, split))
        assert result["judge"]["labels"][split] == {"correctness": {s: scores[s] for s in sorted(scores)}}
    assert {row["correctness"] for row in both_splits(out)} == {0, 1, 2, 3, 4}
    assert result["judge"]["attributes"] == ["correctness"]
    code, out = prepare(tmp_path, "pointwise", SAMPLE, extra=("--min", "correctness=4"), output="filtered")
    assert {row["correctness"] for row in both_splits(out)} == {4}


def test_the_judge_files_carry_train_on_and_the_judge_metadata(tmp_path):
    code, out = prepare(tmp_path, "pointwise", SAMPLE, extra=("--attributes", "coherence,verbosity"))
    assert code == 0
    metadata = pq.read_schema(out / "val.parquet").metadata
    assert metadata == {
        b"judge_sft.train_on": b"final",
        b"judge_sft.task": b"pointwise",
        b"judge_sft.format": b"openjudge",
        b"judge_sft.attributes": b"coherence,verbosity",
    }
    assert pq.read_schema(out / "train.parquet").names == [
        "messages", "task", "judge_format", "prompt_id", "response_id", *SCORES, "source", "source_row",
    ]  # fmt: skip


def test_a_users_template_renders_with_the_documented_variables(tmp_path):
    template = tmp_path / "mine.jinja"
    template.write_text(
        "{% for m in conversation %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
        "A: {{ response_a }}\nB: {{ response_b }}\n{{ 'why, then ' if rationale }}{{ verdict_a }} or {{ verdict_b }}"
    )
    data = write_jsonl(tmp_path / "preference.jsonl", [PREFERRED])
    code, out = prepare(tmp_path, "pairwise", data, extra=("--judge-template", str(template)))
    assert code == 0
    assert rows(out)[1]["messages"][0]["content"] == (
        "user: Name a prime number between 10 and 20.\nA: 13 is a prime number between 10 and 20.\nB: 12 is prime.\n"
        "why, then <better>A</better> or <better>B</better>"
    )
    assert stats(out)["judge"]["template"] == str(template)


def test_the_bundled_preference_sample_matches_its_generator():
    from judge_sft.data.make_preference_sample import sample_text

    assert sample_text() == PREFERENCE_SAMPLE.read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------------- bad input


def preferred(**changes):
    return {**PREFERRED, **changes}


@pytest.mark.parametrize(
    "record,message",
    [
        (preferred(preference_strength=5), "line 1: preference_strength is 5, outside -3..3"),
        (preferred(preference_strength=1.5), "line 1: preference_strength is not an integer (got 1.5)"),
        (preferred(preference_strength="2"), "line 1: preference_strength is not an integer (got '2')"),
        (preferred(response_2=" \n"), "line 1: response_2 is empty (' \\n')"),
        (preferred(split="dev"), "line 1: split is 'dev', expected one of train, validation, val, test"),
        (preferred(preference_statement=None), "line 1: preference_statement is not a string (got None)"),
        (
            RATED,
            "line 1: columns prompt, response, helpfulness, correctness, coherence, complexity, verbosity are a "
            "HelpSteer2 main file (rated responses), not a preference file; use --task pointwise (or responses)",
        ),
    ],
)
def test_a_bad_preference_row_is_one_line_naming_file_line_and_value(tmp_path, capsys, record, message):
    data = write_jsonl(tmp_path / "preference.jsonl", [record])
    code, out = prepare(tmp_path, "pairwise", data)
    assert_failed_cleanly(code, out, capsys, f"{data} {message}")


PREFERENCE_COLUMNS = ", ".join(PREFERRED)


@pytest.mark.parametrize("task", ["pointwise", "responses"])
def test_a_preference_file_given_to_the_other_tasks_names_its_columns_and_the_task_that_fits(tmp_path, capsys, task):
    data = write_jsonl(tmp_path / "preference.jsonl", [PREFERRED])
    code, out = prepare(tmp_path, task, data)
    assert_failed_cleanly(
        code,
        out,
        capsys,
        f"{data} line 1: columns {PREFERENCE_COLUMNS} are a HelpSteer2 preference file, not rated responses; "
        "use --task pairwise",
    )
    parquet = tmp_path / "preference.parquet"
    pq.write_table(pa.Table.from_pylist([PREFERRED]), parquet)
    code, out = prepare(tmp_path, task, parquet)
    assert_failed_cleanly(
        code,
        out,
        capsys,
        f"{parquet}: columns {PREFERENCE_COLUMNS} are a HelpSteer2 preference file, not rated responses; "
        "use --task pairwise",
    )


@pytest.mark.parametrize(
    "record,message",
    [
        ({**RATED, "correctness": 3.5}, "line 1: correctness is not an integer (got 3.5)"),
        ({**RATED, "response": ""}, "line 1: response is empty ('')"),
    ],
)
def test_a_bad_rated_row_stops_pointwise_with_one_line(tmp_path, capsys, record, message):
    data = write_jsonl(tmp_path / "train.jsonl", [RATED, record])
    code, out = prepare(tmp_path, "pointwise", data)
    assert_failed_cleanly(code, out, capsys, f"{data} {message.replace('line 1', 'line 2')}")


@pytest.mark.parametrize(
    "template,message",
    [
        ("{{ nope }}", "does not render for {data} line 1 (UndefinedError: 'nope' is undefined)"),
        (
            "{{ ''.__class__.__mro__[1].__subclasses__() }}",
            "does not render for {data} line 1 (SecurityError: access to attribute '__class__' of 'str' object is unsafe.)",
        ),
        ("{% for m in conversation %}", "line 1: not a valid Jinja template (Unexpected end of template. Jinja was "
         "looking for the following tags: 'endfor' or 'else'. The innermost block that needs to be closed is 'for'.)"),
        ("{% if false %}x{% endif %}", "renders an empty prompt for {data} line 1"),
    ],
)  # fmt: skip
def test_a_template_that_does_not_render_is_one_line_and_writes_nothing(tmp_path, capsys, template, message):
    path = tmp_path / "mine.jinja"
    path.write_text(template)
    data = write_jsonl(tmp_path / "preference.jsonl", [PREFERRED])
    code, out = prepare(tmp_path, "pairwise", data, extra=("--judge-template", str(path)))
    separator = " " if message.startswith("line") else ": "
    assert_failed_cleanly(code, out, capsys, f"{path}{separator}{message.format(data=data)}")


def test_a_verdict_its_parser_cannot_read_back_is_refused():
    from judge_sft.errors import JudgeSFTError
    from judge_sft.judges.dataset import JudgeOptions, checked_verdict
    from judge_sft.judges.prompts import load_prompt

    prompt = load_prompt("pairwise", "mt-bench")
    checked_verdict(prompt, JudgeOptions("pairwise", "mt-bench"), "f.jsonl line 3", "Because.\n\n[[B]]", "B")
    with pytest.raises(JudgeSFTError) as error:
        checked_verdict(prompt, JudgeOptions("pairwise", "mt-bench"), "f.jsonl line 3", "B is better: [B]", "B")
    assert str(error.value) == (
        f"{prompt.name}: the mt-bench parser reads f.jsonl line 3's verdict as None, not 'B' "
        "(answer ends 'B is better: [B]')"
    )


@pytest.mark.parametrize(
    "task,extra,message",
    [
        ("pointwise", ("--min-strength", "2"), "--min-strength applies to --task pairwise, not pointwise"),
        ("responses", ("--judge-format", "openjudge"), "--judge-format applies to --task pointwise or pairwise, not "
         "responses"),
        ("pairwise", ("--attributes", "coherence"), "--attributes applies to --task pointwise, not pairwise"),
        ("pairwise", ("--one-per-prompt",), "--one-per-prompt applies to --task responses or pointwise, not pairwise"),
        ("pointwise", ("--judge-format", "mt-bench"), "--judge-format mt-bench has no pointwise verdict (one of "
         "openjudge, prometheus)"),
    ],
)  # fmt: skip
def test_an_option_of_another_task_is_refused(tmp_path, capsys, task, extra, message):
    code, out = prepare(tmp_path, task, SAMPLE, extra=extra)
    assert_failed_cleanly(code, out, capsys, message)


def test_pairwise_from_hub_reads_only_the_preference_file(tmp_path):
    # A local copy of the Hub layout, offline; disagreements/ is not gzip at all, so reading it would fail.
    local = tmp_path / "HelpSteer2"
    (local / "preference").mkdir(parents=True)
    (local / "disagreements").mkdir()
    write_jsonl(local / "train.jsonl.gz", [RATED])
    write_jsonl(local / "preference" / "preference.jsonl.gz", [PREFERRED, preferred(split="validation", prompt="Hi?")])
    (local / "disagreements" / "disagreements.jsonl.gz").write_text("not gzip")
    script = (
        "import sys; from judge_sft.cli import main\n"
        "codes = [main(['prepare-data', '--task', 'pairwise', '--from-hub', name, '--output-dir', out]) for name, out "
        "in [('nvidia/HelpSteer2', sys.argv[1]), (sys.argv[2], sys.argv[3])]]\n"
        "print('exit codes', *codes)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home")}
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "hub_out"), str(local), str(tmp_path / "local_out")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.stdout.splitlines()[-1] == "exit codes 1 0", result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("judge-sft")]
    assert error.startswith(
        "judge-sft prepare-data: error: nvidia/HelpSteer2: cannot load preference/preference.jsonl.gz from the "
        "Hugging Face Hub ("
    )
    assert error.endswith("download it and pass it with --input")
    assert not (tmp_path / "hub_out").exists()
    out = tmp_path / "local_out"
    assert stats(out)["inputs"] == [
        {"source": f"{local}:preference/preference.jsonl.gz", "split": "split column", "rows": 2}
    ]
    assert [(row["source_row"], row["label"]) for row in rows(out, "train")] == [(0, "B"), (0, "A")]
    assert [row["source_row"] for row in rows(out, "val")] == [1, 1]


# ---------------------------------------------------------------------------------------------------- --task responses

# The last commit before `--task` existed: its prepare-data is what `--task responses` must still write, byte for byte.
BASE_COMMIT = "744e4d795c83646e5defaeeb9bf72215ad386213"
REPO = Path(__file__).resolve().parent.parent
RESPONSES_RUNS = [
    ["--input", str(SAMPLE)],
    ["--input", str(SAMPLE), "--min", "correctness=0", "--max", "verbosity=2", "--one-per-prompt", "--keep-malformed",
     "--sample", "30", "--seed", "3", "--val-fraction", "0.2"],
    ["--input", "{tmp}/train.jsonl", "--input", "{tmp}/validation.jsonl", "--min", "helpfulness=2"],
]  # fmt: skip


def base_checkout(tmp_path):
    """The base commit's judge_sft package, extracted from this checkout's git history."""
    try:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", BASE_COMMIT, "judge_sft"], capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"needs a git checkout holding commit {BASE_COMMIT} (not a shallow clone)")
    base = tmp_path / "base"
    base.mkdir()
    subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
    return base


def responses_argv(run, tmp_path, output):
    return ["prepare-data", "--output-dir", str(output)] + [item.format(tmp=tmp_path) for item in run]


def test_task_responses_writes_byte_for_byte_what_the_code_before_it_wrote(tmp_path, capsys):
    base = base_checkout(tmp_path)
    source = [json.loads(line) for line in SAMPLE.read_text().splitlines()]
    write_jsonl(tmp_path / "train.jsonl", source[:150])
    write_jsonl(tmp_path / "validation.jsonl", source[140:])
    before = [responses_argv(run, tmp_path, tmp_path / f"before{index}") for index, run in enumerate(RESPONSES_RUNS)]
    script = (
        "import json, sys, judge_sft; from judge_sft.cli import main\nprint(judge_sft.__file__)\n"
        "for argv in json.loads(sys.argv[1]): main(argv)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, json.dumps(before)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(base)},
        cwd=tmp_path,  # not the checkout: `python -c` puts the working directory first on sys.path
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == str(base / "judge_sft" / "__init__.py")
    capsys.readouterr()
    for index, run in enumerate(RESPONSES_RUNS):
        for task in ([], ["--task", "responses"]):
            out = tmp_path / f"after{index}{len(task)}"
            assert main(responses_argv(run, tmp_path, out) + task) == 0
            summary = capsys.readouterr().out.replace(str(out), str(tmp_path / f"before{index}"))
            assert summary in result.stdout
            for name in ("train.parquet", "val.parquet", "stats.json"):
                assert (out / name).read_bytes() == (tmp_path / f"before{index}" / name).read_bytes(), (run, name)


def test_the_model_card_names_the_judge_task_and_format(tmp_path):
    from judge_sft.data.stats import stats_beside
    from judge_sft.hub.card import data_section

    code, out = prepare(tmp_path, "pairwise", PREFERENCE_SAMPLE, extra=("--judge-format", "mt-bench"))
    assert code == 0
    lines = data_section({"train_file": str(out / "train.parquet")}, stats_beside(out / "train.parquet"))
    assert "- judge training set: `--task pairwise`, format mt-bench" in lines
    assert "- prepared by `judge-sft prepare-data` from HelpSteer2: 99 rows read, 87 kept; dropped: malformed_turns 2, " \
        "|strength|<1 8, duplicate 1, val_prompt_in_train 1" in lines  # fmt: skip


def test_a_missing_template_file_is_named(tmp_path, capsys):
    data = write_jsonl(tmp_path / "preference.jsonl", [PREFERRED])
    code, out = prepare(tmp_path, "pairwise", data, extra=("--judge-template", str(tmp_path / "none.jinja")))
    assert_failed_cleanly(
        code, out, capsys, f"{tmp_path / 'none.jinja'}: cannot read the judge template (No such file or directory)"
    )
