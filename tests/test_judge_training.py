"""A pairwise judge trains only its answer: the rationale and verdict, never the grading prompt (the real Qwen3
template); one 2-process CPU launch trains the bundled preference sample, then test_eval_judge.py's pairs with
`eval_judge: true` (their metrics checked here)."""

import json
from pathlib import Path

import matplotlib.image
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import tiny_recipe
from driver import launch_driver
from judge_files import write_pairwise
from test_eval_judge import STRENGTHS

from judge_sft.cli import main
from judge_sft.data.messages import read_conversations, resolve_train_on
from judge_sft.data.tokenization import IGNORE_INDEX, tokenize_messages
from judge_sft.judges.verdicts import parse_verdict
from judge_sft.train.chat_templates import training_chat_template
from judge_sft.train.loss_curve import plot_losses
from judge_sft.train.sample_files import read_samples

REPO = Path(__file__).resolve().parent.parent
PREFERENCE_SAMPLE = REPO / "judge_sft" / "data" / "helpsteer2_preference_sample.jsonl"
JUDGE_RECIPES = {task: REPO / "recipes" / f"qwen3_14b_{task}_judge.yaml" for task in ("pairwise", "pointwise")}


def test_the_judge_recipes_are_qwen3_14b_on_the_judge_files_and_launch_as_planned(tmp_path, monkeypatch, capsys):
    base = yaml.safe_load((REPO / "recipes" / "qwen3_14b.yaml").read_text())
    for task, path in JUDGE_RECIPES.items():
        recipe = yaml.safe_load(path.read_text())
        changed = {key for key in base if recipe[key] != base[key]}
        assert set(recipe) == set(base)
        assert changed == {"train_file", "val_file", "output_dir", "run_name"} | (
            {"max_length"} if task == "pairwise" else set()
        )
        assert (recipe["train_file"], recipe["val_file"]) == (
            f"data/helpsteer2_{task}/train.parquet",
            f"data/helpsteer2_{task}/val.parquet",
        )
    monkeypatch.chdir(tmp_path)  # the recipes' relative paths are not looked up by a dry run
    for path in JUDGE_RECIPES.values():
        assert main(["train", str(path), "--num-processes", "8", "--dry-run"]) == 0
    out = capsys.readouterr().out
    plan = "judge-sft train: world_size=8 sp_size=8 -> dp=1; global batch 96 = micro batch 12 x dp 1 x gradient accumulation 8"
    assert out.count(plan) == 2, out
    for path in JUDGE_RECIPES.values():
        assert f"--module judge_sft.run {path}" in out


@pytest.fixture(scope="module")
def pairwise_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("pairwise") / "data"
    assert (
        main(["prepare-data", "--task", "pairwise", "--input", str(PREFERENCE_SAMPLE), "--output-dir", str(out)]) == 0
    )
    return out


def test_every_pairwise_row_trains_exactly_its_answer_on_the_qwen3_template(pairwise_data, qwen3_tokenizer):
    template = training_chat_template(qwen3_tokenizer)
    for split in ("train", "val"):
        path = pairwise_data / f"{split}.parquet"
        train_on = resolve_train_on("auto", path)
        assert train_on == "final"
        for messages in read_conversations(path):
            row = tokenize_messages(messages, qwen3_tokenizer, template, max_length=None, train_on=train_on)
            trained = [label for label in row["labels"] if label != IGNORE_INDEX]
            answer = f"<think>\n\n</think>\n\n{messages[1]['content']}<|im_end|>\n"
            prompt = f"<|im_start|>user\n{messages[0]['content']}<|im_end|>\n<|im_start|>assistant\n"
            assert trained == qwen3_tokenizer(answer, add_special_tokens=False)["input_ids"]
            assert row["input_ids"] == qwen3_tokenizer(prompt + answer, add_special_tokens=False)["input_ids"]


@pytest.fixture(scope="module")
def judge_launch(tmp_path_factory, small_vocab_model_dir, pairwise_data):
    """One 2-process launch training two judge recipes one after the other (tests/driver.py): the
    bundled pairwise sample for 2 steps, and test_eval_judge.py's pairs with `eval_judge: true`. Returns name -> (the
    job's directory, its output)."""
    directory = tmp_path_factory.mktemp("judge_launch")
    for name in ("pairwise", "eval_judge"):
        (directory / name).mkdir()
    pairwise = tiny_recipe(
        directory / "pairwise", small_vocab_model_dir, pairwise_data / "train.parquet", pairwise_data / "val.parquet",
        max_steps=2,
    )  # fmt: skip
    train = write_pairwise(directory / "eval_judge" / "train.parquet", [-3, 2, 1, -2])
    val = write_pairwise(directory / "eval_judge" / "val.parquet", STRENGTHS)
    eval_judge = tiny_recipe(
        directory / "eval_judge", small_vocab_model_dir, train, val, total_batch_size=4, per_device_train_batch_size=1,
        per_device_eval_batch_size=1, max_length=256, max_steps=2, eval_steps=1, save_strategy="no",
        report_to="tensorboard", skip_doctor=True, eval_samples=5, eval_samples_max_new_tokens=8, eval_judge=True,
    )  # fmt: skip
    sections = launch_driver([pairwise, eval_judge], directory)
    return {
        name: (recipe.parent, sections[recipe]) for name, recipe in (("pairwise", pairwise), ("eval_judge", eval_judge))
    }


@pytest.mark.launch
def test_a_two_process_training_on_the_pairwise_sample_runs_with_loss_on_the_answer_only(judge_launch, pairwise_data):
    """The masks are the test above's, on the real tokenizer; this launch trains the small-vocabulary model."""
    job_dir, output = judge_launch["pairwise"]
    train, output_dir = pairwise_data / "train.parquet", job_dir / "out"
    assert f"{train}: 152 rows, 152 kept (loss on final assistant message(s), max_length 1024)" in output
    state = json.loads((output_dir / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    assert [entry["step"] for entry in state["log_history"] if "eval_loss" in entry] == [2]


@pytest.mark.launch
def test_a_training_with_eval_judge_logs_the_judge_metrics_of_every_evaluations_samples(judge_launch):
    """Moved from test_eval_judge.py to share this file's launch."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    job_dir, _ = judge_launch["eval_judge"]
    val, output_dir = job_dir / "val.parquet", job_dir / "out"
    labels = pq.read_table(val, columns=["label"])["label"].to_pylist()
    [events] = {path.parent for path in output_dir.rglob("events.out.tfevents.*")}
    scalars = EventAccumulator(str(events)).Reload()
    logged = json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
    for step in (1, 2):
        _, records = read_samples(output_dir, step)
        verdicts = [parse_verdict("pairwise", "openjudge", record["completion"]) for record in records]
        assert [record["row"] for record in records] == [0, 1, 2, 3, 4]
        expected = {
            "val/judge_accuracy": sum(v == labels[r["row"]] for v, r in zip(verdicts, records)) / len(records),
            "val/judge_parse_rate": sum(verdict is not None for verdict in verdicts) / len(records),
        }
        for name, value in expected.items():
            assert [event.value for event in scalars.Scalars(name) if event.step == step] == [pytest.approx(value)]
            [entry] = [entry for entry in logged if entry.get("step") == step and "eval_judge_accuracy" in entry]
            assert entry[name.replace("val/", "eval_")] == pytest.approx(value)
    card = (output_dir / "README.md").read_text()
    final = [entry for entry in logged if "eval_judge_parse_rate" in entry][-1]
    assert f"| final val/judge_parse_rate (eval samples) | {final['eval_judge_parse_rate']:.4f} | 2 |" in card
    # the loss curve with its companion panel of judge metrics: 8 x 7 inches at 110 dpi
    assert matplotlib.image.imread(plot_losses(output_dir)).shape[:2] == (770, 880)
