"""A pairwise judge trains only its answer: the rationale and verdict, never the grading prompt (the real Qwen3
template), and one 2-process CPU training on the bundled preference sample."""

import json
from pathlib import Path

import pytest
import yaml
from conftest import launch, tiny_recipe

from judge_sft.cli import main
from judge_sft.data.messages import read_conversations, resolve_train_on
from judge_sft.data.tokenization import IGNORE_INDEX, tokenize_messages
from judge_sft.train.chat_templates import training_chat_template

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


@pytest.mark.launch
def test_a_two_process_training_on_the_pairwise_sample_runs_with_loss_on_the_answer_only(
    tmp_path, small_vocab_model_dir, pairwise_data
):
    """The masks are the test above's, on the real tokenizer; this launch trains the small-vocabulary model."""
    train, val = pairwise_data / "train.parquet", pairwise_data / "val.parquet"
    recipe = tiny_recipe(tmp_path, small_vocab_model_dir, train, val, max_steps=2)
    result = launch(recipe)
    assert f"{train}: 152 rows, 152 kept (loss on final assistant message(s), max_length 1024)" in result.stdout
    state = json.loads((tmp_path / "out" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    assert [entry["step"] for entry in state["log_history"] if "eval_loss" in entry] == [2]
