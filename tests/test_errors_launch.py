"""Failures that are about the launch, through one real `accelerate launch` on 2 CPU processes running each recipe
with judge_sft/run.py's main (tests/driver.py): a missing model stops in one line before anything
is written (recipe.yaml included), no trainable train row is an error instead of TRL's StopIteration on every rank,
no trainable val row is a warning: training goes on, and the card says none was evaluated; a doctor failure stops
every rank before the model loads, unless `skip_doctor`."""

import json
import sys

import pytest
from conftest import tiny_recipe, write_messages, write_small_data
from driver import launch_driver
from test_doctor import long_answers

from judge_sft.errors import print_error

BOT_REPLY = [{"role": "user", "content": "Is 7 prime?"}, {"role": "bot", "content": "Yes."}]
NO_REPLY = [{"role": "user", "content": "Is 9 prime?"}]
TRUNCATING = dict(max_length=96, max_steps=1, eval_strategy="no", save_strategy="no", report_to="none")


@pytest.fixture(scope="module")
def failed_launch(tmp_path_factory, small_vocab_model_dir):
    """One launch running five recipes one after the other (tests/driver.py): a missing model, a
    train file without a trainable row, a val file without one, rows the doctor fails (6 of 40 lose trained tokens at
    max_length 96; the small-vocabulary model), and the same with `skip_doctor`. Returns name -> (its directory, the
    job's output); a refused recipe's error is in its directory's error.txt (a launch prints it once: see
    test_train_command.py's failed child)."""
    directory = tmp_path_factory.mktemp("errors_launch")
    train, _ = write_small_data(directory)
    recipes = {
        "missing_model": lambda job: tiny_recipe(job, job / "no-such-model", train, report_to="none"),
        "no_train_row": lambda job: tiny_recipe(
            job, small_vocab_model_dir, write_messages(job / "train.parquet", [BOT_REPLY] * 3 + [NO_REPLY] * 2),
            skip_doctor=True, report_to="none",
        ),
        "no_val_row": lambda job: tiny_recipe(
            job, small_vocab_model_dir, train, write_messages(job / "val.parquet", [NO_REPLY] * 8),
            skip_doctor=True,  # the doctor would stop at the val rows' missing replies
            max_steps=1, eval_strategy="steps", eval_steps=1, save_strategy="no", report_to="none",
        ),
        "doctor_fails": lambda job: tiny_recipe(job, small_vocab_model_dir, long_answers(job, 6), **TRUNCATING),
        "doctor_skipped": lambda job: tiny_recipe(
            job, small_vocab_model_dir, long_answers(job, 6), **TRUNCATING, skip_doctor=True
        ),
    }  # fmt: skip
    jobs = []
    for name, recipe in recipes.items():
        (directory / name).mkdir()
        jobs.append(recipe(directory / name))
    refused = [directory / name / "recipe.yaml" for name in ("missing_model", "no_train_row", "doctor_fails")]
    sections = launch_driver(jobs, directory, refused=refused)
    return {name: (directory / name, sections[directory / name / "recipe.yaml"]) for name in recipes}


@pytest.mark.launch
def test_a_missing_model_directory_stops_the_launch_in_one_line_and_writes_nothing(failed_launch):
    """Once the doctor's tokenizer check failed on huggingface_hub's repo-id message, suggested `skip_doctor` (which
    cannot help), and left OUTPUT_DIR/recipe.yaml behind."""
    directory, output = failed_launch["missing_model"]
    missing = directory / "no-such-model"
    assert (directory / "error.txt").read_text() == f"{missing}: no such model directory"
    assert "skip_doctor" not in output and "Repo id must be" not in output
    assert not (directory / "out").exists()


@pytest.mark.launch
def test_no_trainable_train_row_is_one_error_naming_the_reasons_even_with_skip_doctor(failed_launch):
    directory, output = failed_launch["no_train_row"]
    train = directory / "train.parquet"
    assert (
        f"{train}: 5 rows, 0 kept (loss on all assistant message(s), max_length 1024); dropped: no assistant message 5"
    ) in output
    assert (directory / "error.txt").read_text() == (
        f"{train}: no trainable row (all 5 dropped: no assistant message 5); see `judge-sft inspect-data`"
    )
    assert "StopIteration" not in output and "cut every trained token" not in output
    assert not (directory / "out").exists()


@pytest.mark.launch
def test_no_trainable_val_row_warns_trains_without_val_loss_and_the_card_says_so(failed_launch):
    directory, output = failed_launch["no_val_row"]
    val = directory / "val.parquet"
    assert (
        f"WARNING judge_sft: {val}: no trainable row (all 8 dropped: no assistant message 8); no val/loss will be "
        "logged"
    ) in output
    output_dir = directory / "out"
    log_history = json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
    assert any("loss" in entry for entry in log_history) and not any("eval_loss" in entry for entry in log_history)
    assert json.loads((output_dir / "data_rows.json").read_text()) == {
        "train_file": {"rows": 40, "kept": 40, "dropped": {}},
        "val_file": {"rows": 8, "kept": 0, "dropped": {"no assistant message": 8}},
    }
    card = (output_dir / "README.md").read_text().splitlines()
    assert f"- val_file: `{val}` (8 rows; 0 evaluated, dropped: no assistant message 8)" in card


@pytest.mark.launch
def test_run_stops_at_start_up_on_a_doctor_failure(failed_launch):
    """Both ranks stop (rank 0 fails inside main_process_first; nothing hangs), before loading the model."""
    directory, output = failed_launch["doctor_fails"]
    assert "doctor: FAIL  truncation train.parquet: 6 of 40 rows" in output
    error = (directory / "error.txt").read_text()
    assert error.startswith("doctor: truncation train.parquet: 6 of 40 rows") and "skip_doctor: true" in error
    assert not (directory / "out" / "model.safetensors").exists()


@pytest.mark.launch
def test_run_trains_anyway_with_skip_doctor(failed_launch):
    directory, output = failed_launch["doctor_skipped"]
    assert "doctor:" not in output
    assert not (directory / "error.txt").exists() and (directory / "out" / "model.safetensors").exists()


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
