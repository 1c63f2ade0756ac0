"""`judge-sft inspect-data` on the real Qwen3 tokenizer: exact trained text, counts and truncation, as training sees them."""

import json

import pytest
from conftest import MULTI_TURN as MULTI
from conftest import SINGLE_TURN as SINGLE
from conftest import write_messages

from judge_sft.cli import main
from judge_sft.tiny_model import qwen3_tokenizer_dir

LONG_ANSWER = [{"role": "user", "content": "Count."}, {"role": "assistant", "content": "one" + " two" * 200}]
LONG_PROMPT = [{"role": "user", "content": "Read" + " this" * 200}, {"role": "assistant", "content": "Done."}]
MAX_LENGTH = 64

# The Qwen3 training template (TRL's), rendered: every assistant turn carries an empty think block.
PROMPT = "<|im_start|>user\nIs 7 prime?<|im_end|>\n<|im_start|>assistant\n"
YES = "<think>\n\n</think>\n\nYes.<|im_end|>\n"
NO = "<think>\n\n</think>\n\nNo, 9 = 3 x 3.<|im_end|>\n"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inspect")
    rows = [SINGLE, MULTI, LONG_ANSWER, LONG_PROMPT]
    final = write_messages(folder / "final.parquet", rows, {b"judge_sft.train_on": b"final"})  # as prepare-data writes
    unmarked = write_messages(folder / "unmarked.parquet", rows)  # a user's own file: no train_on recorded
    return final, unmarked


def inspect(capsys, path, *flags):
    status = main(
        [
            "inspect-data",
            str(path),
            "--tokenizer",
            str(qwen3_tokenizer_dir()),
            "--max-length",
            str(MAX_LENGTH),
            *map(str, flags),
        ]
    )
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def inspect_json(capsys, path, *flags):
    status, out, err = inspect(capsys, path, "--json", *flags)
    assert status == 0, err
    return [json.loads(line) for line in out.splitlines()], err


def count(tokenizer, text):
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def test_single_and_multi_turn_trained_text_with_the_files_train_on(capsys, data, qwen3_tokenizer):
    rows, _ = inspect_json(capsys, data[0])
    single, multi = rows[0], rows[1]
    assert single == {
        "row": 0,
        "num_tokens": count(qwen3_tokenizer, PROMPT + YES),
        "num_loss_tokens": count(qwen3_tokenizer, YES),
        "truncated": False,
        "dropped": None,
        "loss_text": YES,
    }
    # prepare-data recorded train_on=final: the earlier answer is context, only the last one is trained
    multi_text = PROMPT + YES + "<|im_start|>user\nAnd 9?<|im_end|>\n<|im_start|>assistant\n" + NO
    assert multi == {
        "row": 1,
        "num_tokens": count(qwen3_tokenizer, multi_text),
        "num_loss_tokens": count(qwen3_tokenizer, NO),
        "truncated": False,
        "dropped": None,
        "loss_text": NO,
    }


@pytest.mark.parametrize("file_index, flags", [(0, ["--train-on", "all"]), (1, [])])
def test_every_assistant_turn_is_trained_with_train_on_all_or_a_file_without_a_record(capsys, data, file_index, flags):
    rows, _ = inspect_json(capsys, data[file_index], *flags, "--limit", "2")
    assert [row["loss_text"] for row in rows] == [YES, YES + NO]


def test_truncation_is_reported_and_cuts_the_trained_text_on_the_right(capsys, data, qwen3_tokenizer):
    rows, summary = inspect_json(capsys, data[0])
    long_answer, long_prompt = rows[2], rows[3]
    prompt_tokens = count(qwen3_tokenizer, "<|im_start|>user\nCount.<|im_end|>\n<|im_start|>assistant\n")
    assert (
        long_answer["truncated"],
        long_answer["num_tokens"],
        long_answer["num_loss_tokens"],
        long_answer["dropped"],
    ) == (True, MAX_LENGTH, MAX_LENGTH - prompt_tokens, None)
    assert long_answer["loss_text"].startswith("<think>\n\n</think>\n\none two two")
    assert long_answer["loss_text"].endswith(" two")  # cut mid-answer: no <|im_end|>
    # a prompt longer than max_length leaves nothing to train on: training drops the row
    assert (
        long_prompt["truncated"],
        long_prompt["num_tokens"],
        long_prompt["num_loss_tokens"],
        long_prompt["dropped"],
        long_prompt["loss_text"],
    ) == (True, MAX_LENGTH, 0, "truncation", "")
    assert "truncated: 2 of 4 rows (50.0%)" in summary.splitlines()
    assert "dropped: truncation 1" in summary.splitlines()


def test_readable_rendering_brackets_the_trained_tokens_when_not_a_terminal(capsys, data, qwen3_tokenizer):
    status, out, err = inspect(capsys, data[0], "--limit", "2")
    assert (status, err) == (0, "")
    blocks = out.split("=== ")
    assert (
        blocks[1] == f"row 0: {count(qwen3_tokenizer, PROMPT + YES)} tokens, {count(qwen3_tokenizer, YES)} trained, "
        f"not truncated\n{PROMPT}[[{YES}]]\n"
    )
    assert blocks[2].count("[[") == 1 and f"assistant\n{YES}<|im_start|>user" in blocks[2] and f"[[{NO}]]" in blocks[2]
    summary = out.rsplit("]]\n", 1)[1].splitlines()
    assert summary[0] == f"2 rows, loss on final assistant message(s), max_length {MAX_LENGTH}"
    assert summary[1].startswith("tokens:") and all(f" {cut} " in summary[1] for cut in ("p50", "p90", "p99", "max"))
    assert summary[3] == "truncated: 0 of 2 rows (0.0%)"


def test_colour_highlights_the_trained_tokens(capsys, data):
    status, out, _ = inspect(capsys, data[0], "--limit", "1", "--color", "always")
    assert status == 0
    assert f"\033[1;32m{YES}\033[0m" in out and "[[" not in out


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--messages-key", "conversation"], "{path}: no `conversation` column (columns: messages)"),
    ],
)
def test_a_file_without_the_messages_column_is_a_one_line_error(capsys, data, flags, message):
    status, out, err = inspect(capsys, data[0], *flags)
    assert (status, out, err) == (1, "", f"judge-sft inspect-data: error: {message.format(path=data[0])}\n")


def test_a_missing_or_non_parquet_file_is_a_one_line_error(capsys, tmp_path):
    text_file = tmp_path / "rows.parquet"
    text_file.write_text("not parquet")
    assert inspect(capsys, tmp_path / "nope.parquet") == (
        1,
        "",
        f"judge-sft inspect-data: error: {tmp_path / 'nope.parquet'}: no such file\n",
    )
    status, out, err = inspect(capsys, text_file)
    assert (status, out) == (1, "") and err.startswith(
        f"judge-sft inspect-data: error: {text_file}: not a readable Parquet"
    )
    assert err.count("\n") == 1
