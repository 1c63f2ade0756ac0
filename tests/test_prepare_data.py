"""`judge-sft prepare-data`: turn splitting, filters, dedup, splits, sampling, bad input, atomic output, stats."""

import gzip
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from judge_sft.cli import main
from judge_sft.data import prepare as prepare_data
from judge_sft.data.helpsteer2 import ASSISTANT_MARKER as A
from judge_sft.data.helpsteer2 import USER_MARKER as U
from judge_sft.data.helpsteer2 import MalformedTurns, split_turns
from judge_sft.data.messages import TRAIN_ON_METADATA_KEY, read_train_on

SAMPLE = Path(prepare_data.__file__).parent / "helpsteer2_sample.jsonl"
SCORES = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")


def record(prompt, response, helpfulness=3, correctness=4, coherence=4, complexity=1, verbosity=1):
    return {
        "prompt": prompt,
        "response": response,
        "helpfulness": helpfulness,
        "correctness": correctness,
        "coherence": coherence,
        "complexity": complexity,
        "verbosity": verbosity,
    }


def write_jsonl(path, records):
    text = "".join(json.dumps(item) + "\n" for item in records)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def write_lines(path, lines):
    """Raw lines, for inputs that are not valid JSON records."""
    path.write_text("".join(line + "\n" for line in lines))
    return path


def prepare(tmp_path, *inputs, output="out", extra=()):
    """Run the real CLI; returns (exit code, output dir)."""
    output_dir = tmp_path / output
    argv = ["prepare-data", "--output-dir", str(output_dir)]
    for path in inputs:
        argv += ["--input", str(path)]
    return main(argv + list(extra)), output_dir


def read(path):
    return pq.read_table(path).to_pylist()


def both_splits(output_dir):
    return read(output_dir / "train.parquet") + read(output_dir / "val.parquet")


def stats(output_dir):
    return json.loads((output_dir / "stats.json").read_text())


def distinct_records(count, **scores):
    return [
        record(f"Question {index}: what is {index} squared?", f"{index * index}.", **scores) for index in range(count)
    ]


# ---------------------------------------------------------------------------------------------------- turn splitting


def test_single_turn_prompt_is_one_user_message():
    assert split_turns("What is 2 + 2?", "4.") == [
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": "4."},
    ]


def test_multi_turn_prompt_keeps_every_byte_of_odd_whitespace():
    prompt = f"First question\n \n\n {A}  first answer\t{U}\n second question \n"
    assert split_turns(prompt, "\nfinal answer\n \n\n ") == [
        {"role": "user", "content": "First question\n \n\n "},
        {"role": "assistant", "content": "  first answer\t"},
        {"role": "user", "content": "\n second question \n"},
        {"role": "assistant", "content": "\nfinal answer\n \n\n "},
    ]


def test_three_user_turns():
    prompt = f"q1{A}a1{U}q2{A}a2{U}q3"
    assert [(m["role"], m["content"]) for m in split_turns(prompt, "a3")] == [
        ("user", "q1"),
        ("assistant", "a1"),
        ("user", "q2"),
        ("assistant", "a2"),
        ("user", "q3"),
        ("assistant", "a3"),
    ]


@pytest.mark.parametrize(
    "prompt, response",
    [
        (f"q1{U}q2", "a"),  # a User marker where an Assistant one belongs
        (f"q1{A}a1", "a2"),  # the prompt ends on an assistant turn
        (f"q1{A}a1{A}a2{U}q2", "a3"),  # two assistant turns in a row
        ("q1\r\n<extra_id_1>Assistant\r\na1", "a2"),  # a marker with other line breaks: never split, never kept as text
        (f"q1{A}a1\n<extra_id_1>User q2", "a2"),  # a marker without its newline
        ("q1", "a1\n<extra_id_1>User\nq2"),  # a marker inside the response
        (f"q1{A} \n {U}q2", "a2"),  # a blank assistant turn
        (f"{A}a1{U}q2", "a2"),  # an empty first user turn
        ("q1", " \n"),  # a blank response
    ],
)
def test_malformed_turns_are_rejected(prompt, response):
    with pytest.raises(MalformedTurns):
        split_turns(prompt, response)


def test_malformed_rows_are_skipped_and_counted(tmp_path):
    data = write_jsonl(tmp_path / "data.jsonl", [record("ok", "fine"), record(f"q1{U}q2", "a"), record(f"q{A}a", "b")])
    code, out = prepare(tmp_path, data, extra=["--val-fraction", "0"])
    assert code == 0
    assert [row["messages"] for row in read(out / "train.parquet")] == [
        [{"role": "user", "content": "ok"}, {"role": "assistant", "content": "fine"}]
    ]
    assert stats(out)["dropped"]["malformed_turns"] == 2


def test_keep_malformed_keeps_the_whole_prompt_as_one_user_message(tmp_path):
    data = write_jsonl(tmp_path / "data.jsonl", [record(f"q1{U}q2", "a"), record(" \n", "b")])
    code, out = prepare(tmp_path, data, extra=["--val-fraction", "0", "--keep-malformed"])
    assert code == 0
    assert [row["messages"] for row in read(out / "train.parquet")] == [
        [{"role": "user", "content": f"q1{U}q2"}, {"role": "assistant", "content": "a"}]
    ]
    assert stats(out)["malformed_kept_as_one_turn"] == 1
    assert stats(out)["dropped"]["empty_text"] == 1  # a blank prompt is never kept


# ---------------------------------------------------------------------------------------------------- filters


@pytest.fixture
def graded(tmp_path):
    """25 rows: every (correctness, helpfulness) pair in 0-4, verbosity = (correctness + helpfulness) % 5."""
    records = [
        record(f"prompt {c}-{h}", f"response {c}-{h}", helpfulness=h, correctness=c, verbosity=(c + h) % 5)
        for c in range(5)
        for h in range(5)
    ]
    return write_jsonl(tmp_path / "graded.jsonl", records)


@pytest.mark.parametrize(
    "bounds, kept, dropped",
    [
        ([], 5, {"correctness<4": 20}),
        (["--min", "correctness=0"], 25, {}),
        (["--min", "correctness=3"], 10, {"correctness<3": 15}),
        # a row failing several bounds counts under the first, in attribute order: helpfulness before correctness
        (["--min", "helpfulness=3"], 2, {"helpfulness<3": 15, "correctness<4": 8}),
        (["--max", "verbosity=2"], 3, {"correctness<4": 20, "verbosity>2": 2}),
        (
            ["--min", "correctness=0", "--min", "helpfulness=3", "--max", "verbosity=2"],
            6,
            {"helpfulness<3": 15, "verbosity>2": 4},
        ),
    ],
)
def test_score_bounds_keep_exact_rows(tmp_path, graded, bounds, kept, dropped):
    code, out = prepare(tmp_path, graded, extra=["--val-fraction", "0", *bounds])
    assert code == 0
    rows = read(out / "train.parquet")
    assert len(rows) == kept
    assert {reason: count for reason, count in stats(out)["dropped"].items() if count} == dropped


def test_contradictory_bounds_are_refused(tmp_path, graded, capsys):
    code, out = prepare(tmp_path, graded, extra=["--min", "verbosity=3", "--max", "verbosity=2"])
    assert code == 1
    assert "--min verbosity=3 and --max verbosity=2 leave no rows" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("bound", ["colour=3", "correctness=5", "correctness", "correctness=-1"])
def test_bad_bound_is_a_usage_error(tmp_path, graded, bound):
    with pytest.raises(SystemExit) as exit_info:
        prepare(tmp_path, graded, extra=["--min", bound])
    assert exit_info.value.code == 2


# ---------------------------------------------------------------------------------------------------- dedup


def test_exact_pairs_are_deduplicated_and_both_responses_kept(tmp_path):
    data = write_jsonl(
        tmp_path / "data.jsonl",
        [
            record("p", "first", helpfulness=2),
            record("p", "second", helpfulness=4),
            record("p", "first", helpfulness=3),  # the same pair again (even rated differently): a duplicate
            record("q", "only"),
        ],
    )
    code, out = prepare(tmp_path, data, extra=["--val-fraction", "0"])
    assert code == 0
    rows = read(out / "train.parquet")
    assert [(row["messages"][-1]["content"], row["helpfulness"], row["source_row"]) for row in rows] == [
        ("first", 2, 1),
        ("second", 4, 2),
        ("only", 3, 4),
    ]
    assert stats(out)["dropped"]["duplicate"] == 1
    assert stats(out)["duplicates"] == 1


def test_one_per_prompt_keeps_the_most_helpful_response(tmp_path):
    data = write_jsonl(
        tmp_path / "data.jsonl",
        [
            record("p", "weak", helpfulness=2),
            record("p", "strong", helpfulness=4),
            record("q", "tie one", helpfulness=3),
            record("q", "tie two", helpfulness=3),
        ],
    )
    code, out = prepare(tmp_path, data, extra=["--val-fraction", "0", "--one-per-prompt"])
    assert code == 0
    assert [row["messages"][-1]["content"] for row in read(out / "train.parquet")] == ["strong", "tie one"]
    assert stats(out)["dropped"]["one_per_prompt"] == 2


# ---------------------------------------------------------------------------------------------------- splits


def test_val_split_takes_whole_prompts_by_a_stable_hash(tmp_path):
    records = [record(f"prompt {index}", f"response {index}-{side}") for index in range(200) for side in "ab"]
    code, out = prepare(tmp_path, write_jsonl(tmp_path / "data.jsonl", records), extra=["--val-fraction", "0.2"])
    assert code == 0
    train_prompts = {row["messages"][0]["content"] for row in read(out / "train.parquet")}
    val_prompts = {row["messages"][0]["content"] for row in read(out / "val.parquet")}
    assert not train_prompts & val_prompts
    assert len(train_prompts | val_prompts) == 200
    expected_val = {
        f"prompt {index}" for index in range(200) if prepare_data.prompt_hash_fraction(f"prompt {index}") < 0.2
    }
    assert val_prompts == expected_val
    assert 20 <= len(val_prompts) <= 60
    assert stats(out)["splits"]["val"] == {"rows": 2 * len(val_prompts), "prompts": len(val_prompts), "multi_turn": 0}


def test_prompt_hash_is_sha256_based_not_pythons_hash():
    # Pinned: changing the hash would move prompts between the published train and val splits.
    assert prepare_data.prompt_hash_fraction("What is the capital of Australia?") == pytest.approx(
        0.7298876204, abs=1e-9
    )
    assert prepare_data.prompt_hash_fraction("") == pytest.approx(0.8894159949, abs=1e-9)


def test_validation_file_feeds_val_and_overlapping_prompts_leave_val(tmp_path, capsys):
    train = write_jsonl(tmp_path / "train.jsonl", [record(f"train {index}", "r") for index in range(10)])
    val = write_jsonl(
        tmp_path / "validation.jsonl", [record("val 0", "r"), record("train 3", "other response"), record("val 1", "r")]
    )
    code, out = prepare(tmp_path, train, val)
    assert code == 0
    assert len(read(out / "train.parquet")) == 10  # --val-fraction does not apply when a validation file is given
    assert [row["messages"][0]["content"] for row in read(out / "val.parquet")] == ["val 0", "val 1"]
    assert stats(out)["dropped"]["val_prompt_in_train"] == 1
    assert ["dropped:", "val_prompt_in_train", "1"] in [line.split() for line in capsys.readouterr().out.splitlines()]


def test_a_pair_in_both_files_stays_in_train_whatever_the_argument_order(tmp_path):
    val = write_jsonl(tmp_path / "validation.jsonl", [record("shared", "same answer"), record("val only", "r")])
    train = write_jsonl(tmp_path / "train.jsonl", [record("shared", "same answer"), record("train only", "r")])
    code, out = prepare(tmp_path, val, train)
    assert code == 0
    assert [row["messages"][0]["content"] for row in read(out / "train.parquet")] == ["shared", "train only"]
    assert [row["messages"][0]["content"] for row in read(out / "val.parquet")] == ["val only"]
    assert stats(out)["dropped"]["duplicate"] == 1
    assert [item["split"] for item in stats(out)["inputs"]] == ["train", "val"]


@pytest.mark.parametrize(
    "name, split",
    [
        ("validation.jsonl.gz", "val"),
        ("val_set.jsonl", "val"),
        ("test.parquet", "val"),
        ("train.jsonl.gz", "train"),
        ("my_data.jsonl", "train"),
    ],
)
def test_file_names_pick_the_split(name, split):
    from judge_sft.data.helpsteer2 import split_of

    assert split_of(name) == split


def test_directory_input_reads_the_files_inside(tmp_path):
    folder = tmp_path / "helpsteer2"
    folder.mkdir()
    write_jsonl(folder / "train.jsonl.gz", [record(f"train {index}", "r") for index in range(4)])
    write_jsonl(folder / "validation.jsonl.gz", [record("val 0", "r")])
    (folder / "README.md").write_text("ignored")
    code, out = prepare(tmp_path, folder)
    assert code == 0
    assert (len(read(out / "train.parquet")), len(read(out / "val.parquet"))) == (4, 1)
    assert [item["split"] for item in stats(out)["inputs"]] == ["train", "val"]


def test_only_validation_files_is_refused(tmp_path, capsys):
    val = write_jsonl(tmp_path / "validation.jsonl", [record("p", "r")])
    code, out = prepare(tmp_path, val)
    assert code == 1
    assert f"{val}: every input feeds the val split" in capsys.readouterr().err
    assert not out.exists()


# ---------------------------------------------------------------------------------------------------- sampling


def test_sample_is_reproducible_and_keeps_input_order(tmp_path):
    data = write_jsonl(tmp_path / "data.jsonl", distinct_records(40))
    runs = {}
    for name, seed in [("a", 1), ("b", 1), ("c", 2)]:
        code, out = prepare(
            tmp_path, data, output=name, extra=["--val-fraction", "0", "--sample", "7", "--seed", str(seed)]
        )
        assert code == 0
        runs[name] = [row["source_row"] for row in read(out / "train.parquet")]
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]
    assert len(runs["a"]) == 7 and runs["a"] == sorted(runs["a"]) and set(runs["a"]) <= set(range(1, 41))
    assert stats(tmp_path / "a")["dropped"]["not_in_sample"] == 33


def test_sample_larger_than_the_data_keeps_everything(tmp_path):
    code, out = prepare(
        tmp_path,
        write_jsonl(tmp_path / "data.jsonl", distinct_records(5)),
        extra=["--val-fraction", "0", "--sample", "1000"],
    )
    assert code == 0
    assert len(read(out / "train.parquet")) == 5


# ---------------------------------------------------------------------------------------------------- formats


def test_jsonl_gzip_and_parquet_inputs_give_identical_output(tmp_path):
    records = distinct_records(30) + [record(f"q{A}a{U}follow-up", "final", correctness=4)]
    write_jsonl(tmp_path / "data.jsonl", records)
    write_jsonl(tmp_path / "data.jsonl.gz", records)
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "data.parquet")
    outputs = {}
    for suffix in (".jsonl", ".jsonl.gz", ".parquet"):
        code, out = prepare(
            tmp_path, tmp_path / f"data{suffix}", output=suffix.strip("."), extra=["--val-fraction", "0.3"]
        )
        assert code == 0
        outputs[suffix] = {split: pq.read_table(out / f"{split}.parquet") for split in ("train", "val")}
    for split in ("train", "val"):
        jsonl, gz, parquet = (outputs[suffix][split] for suffix in (".jsonl", ".jsonl.gz", ".parquet"))
        assert jsonl.drop_columns(["source"]).equals(gz.drop_columns(["source"]))
        assert jsonl.drop_columns(["source", "source_row"]).equals(parquet.drop_columns(["source", "source_row"]))
        # JSONL rows are traced by line number (1-based), Parquet rows by index (0-based)
        assert jsonl["source_row"].to_pylist() == [index + 1 for index in parquet["source_row"].to_pylist()]
        assert jsonl.schema.metadata == parquet.schema.metadata
    assert len(outputs[".jsonl"]["val"]) > 0


def test_output_schema_and_train_on_metadata(tmp_path):
    code, out = prepare(tmp_path, write_jsonl(tmp_path / "data.jsonl", distinct_records(40)))
    assert code == 0
    for split in ("train", "val"):
        schema = pq.read_schema(out / f"{split}.parquet")
        assert schema.metadata[TRAIN_ON_METADATA_KEY] == b"final"
        assert read_train_on(out / f"{split}.parquet") == "final"
        assert schema.names == ["messages", *SCORES, "source", "source_row"]
        assert schema.field("messages").type == pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))


def test_read_train_on_is_none_for_a_users_file(tmp_path):
    pq.write_table(pa.table({"messages": [[{"role": "user", "content": "hi"}]]}), tmp_path / "mine.parquet")
    assert read_train_on(tmp_path / "mine.parquet") is None


def test_empty_val_split_is_still_written(tmp_path):
    code, out = prepare(
        tmp_path, write_jsonl(tmp_path / "data.jsonl", distinct_records(3)), extra=["--val-fraction", "0"]
    )
    assert code == 0
    val = pq.read_table(out / "val.parquet")
    assert val.num_rows == 0 and val.schema.metadata[TRAIN_ON_METADATA_KEY] == b"final"


# ---------------------------------------------------------------------------------------------------- stats and summary


def test_stats_json_counts_every_row(tmp_path, capsys):
    data = write_jsonl(
        tmp_path / "data.jsonl",
        [
            record("p1", "r1"),
            record("p1", "r2", correctness=2),
            record("p1", "r1"),  # kept, filtered, duplicate
            record(f"p2{A}a{U}p2b", "r3"),
            record(f"p3{U}x", "r4"),
            record("p4", "r5"),  # multi-turn, malformed, kept
        ],
    )
    code, out = prepare(tmp_path, data, extra=["--val-fraction", "0"])
    assert code == 0
    assert stats(out) == {
        "inputs": [{"source": str(data), "split": "train", "rows": 6}],
        "rows_read": 6,
        "rows_kept": 3,
        "dropped": {
            "empty_text": 0,
            "malformed_turns": 1,
            "correctness<4": 1,
            "duplicate": 1,
            "val_prompt_in_train": 0,
            "one_per_prompt": 0,
            "not_in_sample": 0,
        },
        "malformed_kept_as_one_turn": 0,
        "multi_turn": {"read": 1, "kept": 1},
        "duplicates": 1,
        "splits": {
            "train": {"rows": 3, "prompts": 3, "multi_turn": 1},
            "val": {"rows": 0, "prompts": 0, "multi_turn": 0},
        },
        "options": {
            "min": {"correctness": 4},
            "max": {},
            "val_split": "prompt hash, fraction 0.0",
            "one_per_prompt": False,
            "keep_malformed": False,
            "sample": None,
            "seed": 0,
        },
    }
    summary = capsys.readouterr().out.splitlines()
    assert summary[0].split() == ["read", "6", "from", "1", "input(s)"]
    assert [line.split()[:2] for line in summary[1:4]] == [
        ["dropped:", "malformed_turns"],
        ["dropped:", "correctness<4"],
        ["dropped:", "duplicate"],
    ]
    assert summary[4].split() == ["kept", "3", "(1", "multi-turn)"]
    assert summary[5].split() == ["train", "3", str(out / "train.parquet")]


def test_bundled_sample(tmp_path):
    code, out = prepare(tmp_path, SAMPLE)
    assert code == 0
    result = stats(out)
    assert (result["rows_read"], result["rows_kept"]) == (197, 100)
    assert {reason: count for reason, count in result["dropped"].items() if count} == {
        "malformed_turns": 4,
        "correctness<4": 92,
        "duplicate": 1,
    }
    assert result["multi_turn"] == {"read": 56, "kept": 31}
    assert (result["splits"]["train"]["rows"], result["splits"]["val"]["rows"]) == (92, 8)
    assert main(["validate-data", str(out / "train.parquet"), str(out / "val.parquet")]) == 0


def test_bundled_sample_matches_its_generator():
    make_sample = runpy.run_path(str(SAMPLE.with_name("make_sample.py")))
    assert make_sample["sample_text"]() == SAMPLE.read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------------- bad input


def assert_failed_cleanly(code, out, capsys, *fragments):
    """Exit 1, a one-line error holding every fragment, and nothing written (no output, no staging leftovers)."""
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("judge-sft prepare-data: error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, err
    assert not out.exists() or not any(out.iterdir())
    assert not [path for path in out.parent.iterdir() if path.name.startswith(f".{out.name}.tmp")]


GOOD = json.dumps(record("p", "r"))


@pytest.mark.parametrize(
    "lines, fragment",
    [
        ([GOOD, "", GOOD, '{"prompt": "p", "response": '], "line 4: invalid JSON"),  # blank lines still count
        ([GOOD, "[1, 2]"], "line 2: expected a JSON object, got list"),
        (
            [GOOD, json.dumps({key: value for key, value in record("p", "r").items() if key != "verbosity"})],
            "line 2: missing column 'verbosity'",
        ),
        ([GOOD, json.dumps(record("p", "r", correctness=3.5))], "line 2: correctness is not an integer (got 3.5)"),
        ([GOOD, json.dumps(record("p", "r", correctness="4"))], "line 2: correctness is not an integer (got '4')"),
        ([GOOD, json.dumps(record("p", "r", coherence=True))], "line 2: coherence is not an integer (got True)"),
        ([GOOD, GOOD, json.dumps(record("p", "r", helpfulness=5))], "line 3: helpfulness is 5, outside 0-4"),
        ([json.dumps(record("p", "r", verbosity=-1))], "line 1: verbosity is -1, outside 0-4"),
        ([GOOD, json.dumps(record(None, "r"))], "line 2: prompt is null"),
        ([GOOD, json.dumps(record("p", None))], "line 2: response is null"),
        ([GOOD, json.dumps(record("p", 7))], "line 2: response is not a string (got int)"),
        ([GOOD, json.dumps(record("p", "r", complexity=None))], "line 2: complexity is null"),
    ],
)
def test_bad_jsonl_line_is_named(tmp_path, capsys, lines, fragment):
    data = write_lines(tmp_path / "data.jsonl", lines)
    code, out = prepare(tmp_path, data)
    assert_failed_cleanly(code, out, capsys, f"{data} {fragment}")


def test_bad_line_in_gzip_is_named(tmp_path, capsys):
    data = tmp_path / "train.jsonl.gz"
    data.write_bytes(gzip.compress(f"{GOOD}\n{GOOD}\nnot json\n".encode()))
    code, out = prepare(tmp_path, data)
    assert_failed_cleanly(code, out, capsys, f"{data} line 3: invalid JSON")


def test_missing_file(tmp_path, capsys):
    code, out = prepare(tmp_path, tmp_path / "nope.jsonl.gz")
    assert_failed_cleanly(code, out, capsys, f"{tmp_path / 'nope.jsonl.gz'}: no such file or directory")


def test_unsupported_file_type(tmp_path, capsys):
    data = tmp_path / "data.csv"
    data.write_text("prompt,response\n")
    code, out = prepare(tmp_path, data)
    assert_failed_cleanly(code, out, capsys, f"{data}: unsupported file type")


def test_truncated_gzip(tmp_path, capsys):
    data = tmp_path / "train.jsonl.gz"
    payload = gzip.compress("".join(json.dumps(record(f"p{index}", "r")) + "\n" for index in range(5000)).encode())
    data.write_bytes(payload[: len(payload) - 20])
    code, out = prepare(tmp_path, data)
    assert_failed_cleanly(code, out, capsys, f"{data}: corrupt gzip data after line ", "end-of-stream")


def test_not_gzip_at_all(tmp_path, capsys):
    data = tmp_path / "train.jsonl.gz"
    data.write_text(GOOD + "\n")
    code, out = prepare(tmp_path, data)
    assert_failed_cleanly(code, out, capsys, f"{data}: corrupt gzip data at the start")


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_input(tmp_path, capsys, content):
    data = tmp_path / "train.jsonl"
    data.write_text(content)
    code, out = prepare(tmp_path, data)
    assert_failed_cleanly(code, out, capsys, f"{data}: no rows (empty input)")


def test_empty_parquet_and_empty_directory(tmp_path, capsys):
    data = tmp_path / "train.parquet"
    pq.write_table(
        pa.Table.from_pylist(
            [],
            schema=pa.schema(
                [(name, pa.string()) for name in ("prompt", "response")] + [(name, pa.int64()) for name in SCORES]
            ),
        ),
        data,
    )
    code, out = prepare(tmp_path, data)
    assert_failed_cleanly(code, out, capsys, f"{data}: no rows (empty input)")
    (tmp_path / "empty").mkdir()
    code, out = prepare(tmp_path, tmp_path / "empty")
    assert_failed_cleanly(code, out, capsys, f"{tmp_path / 'empty'}: directory holds no .jsonl, .jsonl.gz or .parquet")


def test_bad_parquet_rows_are_named(tmp_path, capsys):
    rows = [record("p", "r"), record("p2", None), record("p3", "r")]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "nulls.parquet")
    code, out = prepare(tmp_path, tmp_path / "nulls.parquet")
    assert_failed_cleanly(code, out, capsys, f"{tmp_path / 'nulls.parquet'} row 1: response is null")

    pq.write_table(
        pa.Table.from_pylist([record("p", "r", helpfulness=2.0), record("q", "r", helpfulness=2.5)]),
        tmp_path / "floats.parquet",
    )
    code, out = prepare(tmp_path, tmp_path / "floats.parquet")
    assert_failed_cleanly(
        code, out, capsys, f"{tmp_path / 'floats.parquet'} row 0: helpfulness is not an integer (got 2.0)"
    )

    pq.write_table(
        pa.Table.from_pylist([record("p", "r"), record("q", "r", correctness=9)]), tmp_path / "range.parquet"
    )
    code, out = prepare(tmp_path, tmp_path / "range.parquet")
    assert_failed_cleanly(code, out, capsys, f"{tmp_path / 'range.parquet'} row 1: correctness is 9, outside 0-4")


def test_parquet_missing_column_and_corrupt_file(tmp_path, capsys):
    pq.write_table(pa.table({"prompt": ["p"], "response": ["r"]}), tmp_path / "short.parquet")
    code, out = prepare(tmp_path, tmp_path / "short.parquet")
    assert_failed_cleanly(code, out, capsys, f"{tmp_path / 'short.parquet'}: missing column 'helpfulness'")

    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    code, out = prepare(tmp_path, tmp_path / "junk.parquet")
    assert_failed_cleanly(code, out, capsys, f"{tmp_path / 'junk.parquet'}: not a readable Parquet file")


def test_output_dir_not_writable(tmp_path, capsys):
    data = write_jsonl(tmp_path / "data.jsonl", distinct_records(3))
    (tmp_path / "a_file").write_text("in the way")
    code = main(["prepare-data", "--input", str(data), "--output-dir", str(tmp_path / "a_file" / "out")])
    err = capsys.readouterr().err
    assert code == 1
    assert f"{tmp_path / 'a_file' / 'out'}: cannot write output there" in err and err.count("\n") == 1
    assert (tmp_path / "a_file").read_text() == "in the way"


def test_from_hub_offline_fails_clearly_and_a_local_dataset_loads(tmp_path):
    # One subprocess for both (importing `datasets` is the slow part), with an empty HF cache and the Hub offline.
    local = tmp_path / "local_dataset"
    local.mkdir()
    write_jsonl(local / "train.jsonl", distinct_records(6))
    write_jsonl(local / "validation.jsonl", [record("held out", "r")])
    script = (
        "import sys; from judge_sft.cli import main\n"
        "codes = [main(['prepare-data', '--from-hub', name, '--output-dir', out]) for name, out in "
        "[('nvidia/HelpSteer2', sys.argv[1]), (sys.argv[2], sys.argv[3])]]\n"
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
    errors = [line for line in result.stderr.splitlines() if line.startswith("judge-sft")]
    assert len(errors) == 1
    assert errors[0].startswith(
        "judge-sft prepare-data: error: nvidia/HelpSteer2: cannot load from the Hugging Face Hub ("
    )
    assert errors[0].endswith("pass them with --input")
    assert not (tmp_path / "hub_out").exists()
    local_stats = stats(tmp_path / "local_out")
    assert local_stats["inputs"] == [
        {"source": f"{local}:train", "split": "train", "rows": 6},
        {"source": f"{local}:validation", "split": "val", "rows": 1},
    ]
    assert [row["source_row"] for row in read(tmp_path / "local_out" / "val.parquet")] == [0]


# ---------------------------------------------------------------------------------------------------- atomic output


def test_failure_while_writing_leaves_nothing(tmp_path, capsys, monkeypatch):
    data = write_jsonl(tmp_path / "data.jsonl", distinct_records(10))
    real_write_split = prepare_data.write_split

    def write_then_fail(path, examples):
        real_write_split(path, examples)
        if path.name == "val.parquet":
            raise prepare_data.JudgeSFTError("disk full (simulated)")

    monkeypatch.setattr(prepare_data, "write_split", write_then_fail)
    code, out = prepare(tmp_path, data)
    assert_failed_cleanly(code, out, capsys, "disk full (simulated)")


def test_existing_output_needs_overwrite(tmp_path, capsys):
    first = write_jsonl(tmp_path / "first.jsonl", distinct_records(4))
    second = write_jsonl(tmp_path / "second.jsonl", distinct_records(9))
    code, out = prepare(tmp_path, first, extra=["--val-fraction", "0"])
    assert code == 0
    (out / "notes.txt").write_text("mine")
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    capsys.readouterr()

    code, _ = prepare(tmp_path, second, extra=["--val-fraction", "0"])
    assert code == 1
    assert f"{out}: already holds train.parquet, val.parquet, stats.json; pass --overwrite" in capsys.readouterr().err
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before

    code, _ = prepare(tmp_path, second, extra=["--val-fraction", "0", "--overwrite"])
    assert code == 0
    assert len(read(out / "train.parquet")) == 9
    assert (out / "notes.txt").read_text() == "mine"
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".out.tmp")]


def test_failed_overwrite_keeps_the_old_output(tmp_path, capsys):
    code, out = prepare(tmp_path, write_jsonl(tmp_path / "good.jsonl", distinct_records(4)))
    assert code == 0
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    bad = write_lines(tmp_path / "bad.jsonl", [GOOD, "{"])
    code, _ = prepare(tmp_path, bad, extra=["--overwrite"])
    assert code == 1
    assert f"{bad} line 2: invalid JSON" in capsys.readouterr().err
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before
