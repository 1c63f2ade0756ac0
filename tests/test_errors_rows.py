"""Rows training cannot use, named by their real reason (no assistant message, invalid row, truncation) in the
tokenisation training runs, in `judge-sft inspect-data` (which fails on rows dropped for their data), and in the model
card, which counts the rows each split contributed rather than the rows in its file."""

import pytest
from conftest import SINGLE_TURN, write_messages

from judge_sft import cli
from judge_sft.data.tokenization import drop_reason, tokenize_dataset
from judge_sft.hub.card import model_card
from judge_sft.train.chat_templates import training_chat_template
from judge_sft.train.saved_recipe import save_data_rows

pytestmark = pytest.mark.usefixtures("quiet_imports")

BOT_REPLY = [{"role": "user", "content": "Is 7 prime?"}, {"role": "bot", "content": "Yes."}]
NO_REPLY = [{"role": "user", "content": "Is 9 prime?"}]
LONG_PROMPT = [{"role": "user", "content": "word " * 300}, {"role": "assistant", "content": "ok"}]
MAX_LENGTH = 64


@pytest.fixture
def mixed_rows(tmp_path):
    """One trainable row, a role-"bot" reply, a row without a reply, and a prompt longer than MAX_LENGTH."""
    return write_messages(tmp_path / "mixed.parquet", [SINGLE_TURN, BOT_REPLY, NO_REPLY, LONG_PROMPT])


def test_training_counts_each_dropped_row_under_its_real_reason(qwen3_tokenizer, mixed_rows):
    from datasets import Dataset

    rows, dropped = tokenize_dataset(
        Dataset.from_parquet(str(mixed_rows)),
        qwen3_tokenizer,
        training_chat_template(qwen3_tokenizer),
        MAX_LENGTH,
        "all",
    )
    assert len(rows) == 1 and "drop_reason" not in rows.column_names
    assert dropped == {"no assistant message": 2, "truncation": 1}  # the bot row is not "truncated": it has no reply


def test_the_reason_is_the_first_that_applies():
    empty_reply = [{"role": "user", "content": "Is 7 prime?"}, {"role": "assistant", "content": " "}]
    assert drop_reason(SINGLE_TURN, trained_untruncated=5, trained=5) is None
    assert drop_reason(BOT_REPLY, trained_untruncated=0, trained=0) == "no assistant message"
    assert drop_reason(empty_reply, trained_untruncated=0, trained=0) == "invalid row"
    assert drop_reason(SINGLE_TURN, trained_untruncated=5, trained=0) == "truncation"
    assert drop_reason(SINGLE_TURN, trained_untruncated=0, trained=0) == "nothing marked"  # the template marks nothing


def test_inspect_data_names_why_each_row_is_dropped_and_fails_on_rows_it_cannot_train(capsys, tmp_path, mixed_rows):
    """Once it labelled the role-"bot" row "truncated" and exited 0."""
    from judge_sft.tiny_model import qwen3_tokenizer_dir

    before = sorted(tmp_path.iterdir())
    code = cli.main(
        ["inspect-data", str(mixed_rows), "--tokenizer", str(qwen3_tokenizer_dir()), "--max-length", str(MAX_LENGTH)]
    )
    out, err = capsys.readouterr()
    headers = [line for line in out.splitlines() if line.startswith("=== ")]
    assert [header.split(", ", 2)[-1] for header in headers] == [
        "not truncated",
        "not truncated, DROPPED (no assistant message)",
        "not truncated, DROPPED (no assistant message)",
        "TRUNCATED, DROPPED (truncation)",
    ]
    assert "dropped: no assistant message 2, truncation 1" in out.splitlines()
    assert code == 1
    assert err == (
        f"judge-sft inspect-data: error: {mixed_rows}: 2 of 4 rows cannot be trained (row 1: message 1: role is "
        "'bot', expected one of system, user, assistant); see `judge-sft validate-data`\n"
    )
    assert sorted(tmp_path.iterdir()) == before


def test_inspect_data_refuses_a_meaningless_max_length_as_the_recipe_does(capsys, mixed_rows):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["inspect-data", str(mixed_rows), "--tokenizer", "unused", "--max-length", "0"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "judge-sft inspect-data: error: argument --max-length: expected a positive integer, got 0"
    )


def test_the_model_card_counts_the_rows_each_split_contributed(tmp_path):
    """Not "val_file (8 rows)" when none of the 8 was evaluated."""
    train = write_messages(tmp_path / "train.parquet", [SINGLE_TURN] * 3)
    val = write_messages(tmp_path / "val.parquet", [NO_REPLY] * 8)
    output = tmp_path / "out"
    output.mkdir()
    (output / "recipe.yaml").write_text(f"train_file: {train}\nval_file: {val}\n")
    save_data_rows(
        output,
        {
            "train_file": {"rows": 3, "kept": 2, "dropped": {"truncation": 1}},
            "val_file": {"rows": 8, "kept": 0, "dropped": {"no assistant message": 8}},
        },
    )
    lines = model_card(output).splitlines()
    assert f"- train_file: `{train}` (3 rows; 2 trained on, dropped: truncation 1)" in lines
    assert f"- val_file: `{val}` (8 rows; 0 evaluated, dropped: no assistant message 8)" in lines
    # a run without the record (older runs): the files' own row counts
    (output / "data_rows.json").unlink()
    assert f"- val_file: `{val}` (8 rows)" in model_card(output).splitlines()
