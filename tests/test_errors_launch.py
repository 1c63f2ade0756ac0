"""Failures that are about the launch, through the real `accelerate launch ... judge_sft/run.py` on 2 CPU processes:
a missing model stops in one line before anything is written (recipe.yaml included), no trainable train row is an
error instead of TRL's StopIteration on every rank, and no trainable val row is a warning: training goes on, and the
card says none was evaluated."""

import json
import sys

import pytest
from conftest import launch, tiny_recipe, write_messages

from judge_sft.errors import print_error

BOT_REPLY = [{"role": "user", "content": "Is 7 prime?"}, {"role": "bot", "content": "Yes."}]
NO_REPLY = [{"role": "user", "content": "Is 9 prime?"}]


def error_lines(result):
    """The distinct `judge-sft run: error:` lines of a launch (each rank may print its own)."""
    return {line for line in result.stdout.splitlines() if line.startswith("judge-sft run: error:")}


@pytest.mark.launch
def test_a_missing_model_directory_stops_the_launch_in_one_line_and_writes_nothing(tmp_path, small_data):
    """Once the doctor's tokenizer check failed on huggingface_hub's repo-id message, suggested `skip_doctor` (which
    cannot help), and left OUTPUT_DIR/recipe.yaml behind."""
    missing = tmp_path / "no-such-model"
    result = launch(tiny_recipe(tmp_path, missing, *small_data, report_to="none"), check=False, timeout=300)
    assert result.returncode != 0
    assert error_lines(result) == {f"judge-sft run: error: {missing}: no such model directory"}
    assert "skip_doctor" not in result.stdout and "Repo id must be" not in result.stdout
    assert not (tmp_path / "out").exists()


@pytest.mark.launch
def test_no_trainable_train_row_is_one_error_naming_the_reasons_even_with_skip_doctor(tmp_path, small_vocab_model_dir):
    train = write_messages(tmp_path / "train.parquet", [BOT_REPLY] * 3 + [NO_REPLY] * 2)
    recipe = tiny_recipe(tmp_path, small_vocab_model_dir, train, skip_doctor=True, report_to="none")
    result = launch(recipe, check=False, timeout=300)
    assert result.returncode != 0
    assert (
        f"{train}: 5 rows, 0 kept (loss on all assistant message(s), max_length 1024); dropped: no assistant message 5"
    ) in result.stdout
    assert error_lines(result) == {
        f"judge-sft run: error: {train}: no trainable row (all 5 dropped: no assistant message 5); "
        "see `judge-sft inspect-data`"
    }
    assert "StopIteration" not in result.stdout and "cut every trained token" not in result.stdout
    assert not (tmp_path / "out").exists()


@pytest.mark.launch
def test_no_trainable_val_row_warns_trains_without_val_loss_and_the_card_says_so(
    tmp_path, small_vocab_model_dir, small_data
):
    val = write_messages(tmp_path / "val.parquet", [NO_REPLY] * 8)
    recipe = tiny_recipe(
        tmp_path,
        small_vocab_model_dir,
        small_data[0],
        val,
        skip_doctor=True,  # the doctor would stop at the val rows' missing replies
        max_steps=1,
        eval_strategy="steps",
        eval_steps=1,
        save_strategy="no",
        report_to="none",
    )
    result = launch(recipe, timeout=600)
    assert (
        f"WARNING judge_sft: {val}: no trainable row (all 8 dropped: no assistant message 8); no val/loss will be "
        "logged"
    ) in result.stdout
    output = tmp_path / "out"
    log_history = json.loads((output / "trainer_state.json").read_text())["log_history"]
    assert any("loss" in entry for entry in log_history) and not any("eval_loss" in entry for entry in log_history)
    assert json.loads((output / "data_rows.json").read_text()) == {
        "train_file": {"rows": 40, "kept": 40, "dropped": {}},
        "val_file": {"rows": 8, "kept": 0, "dropped": {"no assistant message": 8}},
    }
    card = (output / "README.md").read_text().splitlines()
    assert f"- val_file: `{val}` (8 rows; 0 evaluated, dropped: no assistant message 8)" in card


def test_an_error_line_reaches_stderr_in_one_write_so_another_rank_cannot_split_it(monkeypatch):
    """The ranks of a launch share one unbuffered stderr: print() wrote the line and its newline apart, and another
    rank's log line once landed between them (the line no longer equalled the error)."""
    writes = []

    class Recorded:
        def write(self, text):
            writes.append(text)

        def flush(self):
            pass

    monkeypatch.setattr(sys, "stderr", Recorded())
    print("judge-sft run: error: x", file=sys.stderr)
    assert writes == ["judge-sft run: error: x", "\n"]  # how it was split
    writes.clear()
    print_error("judge-sft run: error: x")
    assert writes == ["judge-sft run: error: x\n"]
