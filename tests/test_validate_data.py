"""`judge-sft validate-data` and `check_messages`: every problem named with its row, exit 1 on any invalid row."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from judge_sft.cli import main
from judge_sft.data.validate import check_messages


def user(content="question?"):
    return {"role": "user", "content": content}


def assistant(content="answer."):
    return {"role": "assistant", "content": content}


def system(content="Be brief."):
    return {"role": "system", "content": content}


@pytest.mark.parametrize(
    "messages",
    [
        [user(), assistant()],
        [system(), user(), assistant()],
        [user(), assistant(), user(" odd \n whitespace "), assistant()],
    ],
)
def test_valid_conversations_have_no_problems(messages):
    assert check_messages(messages) == []


@pytest.mark.parametrize(
    "messages, problems",
    [
        (None, ["messages is null"]),
        ("hi", ["messages is not a list (got str)"]),
        ([], ["no messages"]),
        ([user()], ["last message is from user, expected assistant"]),
        ([assistant()], ["message 0: expected user, got assistant (user and assistant alternate, user first)"]),
        (
            [user(), user(), assistant()],
            ["message 1: expected assistant, got user (user and assistant alternate, user first)"],
        ),
        ([user(), assistant(), system(), user(), assistant()], ["message 2: system message is allowed first only"]),
        (
            [user(), {"role": "tool", "content": "x"}],
            [
                "message 1: role is 'tool', expected one of system, user, assistant",
                "last message is from tool, expected assistant",
            ],
        ),
        ([user(""), assistant(" \n\t")], ["message 0: content is empty", "message 1: content is empty"]),
        ([user(), {"role": "assistant", "content": None}], ["message 1: content is missing"]),
        ([user(), {"role": "assistant"}], ["message 1: content is missing"]),
        (
            [user(), "answer"],
            [
                "message 1: role is None, expected one of system, user, assistant",
                "message 1: content is missing",
                "last message is from None, expected assistant",
            ],
        ),
    ],
)
def test_each_problem_is_reported(messages, problems):
    assert check_messages(messages) == problems


def write(path, conversations, **columns):
    table = pa.table(
        {
            "messages": pa.array(conversations, pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
            **columns,
        }
    )
    pq.write_table(table, path)
    return path


def test_valid_file_exits_0_with_counts(tmp_path, capsys):
    path = write(tmp_path / "mine.parquet", [[user(), assistant()], [system(), user(), assistant()]])
    assert main(["validate-data", str(path)]) == 0
    assert capsys.readouterr().out == (
        f"{path}: 2 rows, 2 valid, 0 invalid (no train_on metadata: every assistant turn trains)\n"
    )


def test_train_on_metadata_is_shown(tmp_path, capsys):
    table = pa.table({"messages": [[user(), assistant()]]}).replace_schema_metadata({b"judge_sft.train_on": b"final"})
    pq.write_table(table, tmp_path / "ours.parquet")
    assert main(["validate-data", str(tmp_path / "ours.parquet")]) == 0
    assert capsys.readouterr().out.endswith("1 rows, 1 valid, 0 invalid (train_on=final)\n")


def test_invalid_rows_are_named_and_exit_1(tmp_path, capsys):
    path = write(
        tmp_path / "bad.parquet",
        [
            [user(), assistant()],
            [user(), assistant(), user()],
            None,
            [user(""), assistant()],
            [user(), assistant()],
            [system(), system(), user(), assistant()],
        ],
    )
    assert main(["validate-data", str(path)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{path} row 1: last message is from user, expected assistant",
        f"{path} row 2: messages is null",
        f"{path} row 3: message 0: content is empty",
        f"{path} row 5: message 1: system message is allowed first only",
        f"{path}: 6 rows, 2 valid, 4 invalid (no train_on metadata: every assistant turn trains)",
    ]


def test_rows_are_counted_across_batches(tmp_path, capsys):
    conversations = [[user(), assistant()]] * 5000
    conversations[4500] = [user()]
    path = write(tmp_path / "big.parquet", conversations)
    assert main(["validate-data", str(path)]) == 1
    assert capsys.readouterr().out.splitlines()[0] == f"{path} row 4500: last message is from user, expected assistant"


def test_every_file_is_checked(tmp_path, capsys):
    bad = write(tmp_path / "bad.parquet", [[user()]])
    good = write(tmp_path / "good.parquet", [[user(), assistant()]])
    assert main(["validate-data", str(bad), str(good)]) == 1
    out = capsys.readouterr().out
    assert f"{bad}: 1 rows, 0 valid, 1 invalid" in out and f"{good}: 1 rows, 1 valid, 0 invalid" in out


def test_large_list_and_extra_fields_are_accepted(tmp_path, capsys):
    message_type = pa.struct([("role", pa.large_string()), ("content", pa.string()), ("name", pa.string())])
    messages = pa.array(
        [[{"role": "user", "content": "q", "name": "ann"}, {"role": "assistant", "content": "a", "name": None}]],
        pa.large_list(message_type),
    )
    pq.write_table(pa.table({"messages": messages, "score": [3]}), tmp_path / "wide.parquet")
    assert main(["validate-data", str(tmp_path / "wide.parquet")]) == 0


@pytest.mark.parametrize(
    "table, fragment",
    [
        (
            pa.table({"conversation": [[{"role": "user", "content": "q"}]]}),
            "no `messages` column (columns: conversation)",
        ),
        (pa.table({"messages": ["user: q"]}), "column `messages` has type string, expected a list of"),
        (
            pa.table({"messages": [[{"role": "user", "text": "q"}]]}),
            "column `messages` has type list<element: struct<role",
        ),
        (pa.table({"messages": [["q", "a"]]}), "column `messages` has type list<element: string>"),
    ],
)
def test_wrong_schema_is_an_error(tmp_path, capsys, table, fragment):
    pq.write_table(table, tmp_path / "data.parquet")
    assert main(["validate-data", str(tmp_path / "data.parquet")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"judge-sft validate-data: error: {tmp_path / 'data.parquet'}: ") and fragment in err
    assert err.count("\n") == 1


def test_missing_and_unreadable_files(tmp_path, capsys):
    assert main(["validate-data", str(tmp_path / "nope.parquet")]) == 1
    assert f"error: {tmp_path / 'nope.parquet'}: no such file" in capsys.readouterr().err
    (tmp_path / "junk.parquet").write_text("not parquet")
    assert main(["validate-data", str(tmp_path / "junk.parquet")]) == 1
    assert f"error: {tmp_path / 'junk.parquet'}: not a readable Parquet file" in capsys.readouterr().err
