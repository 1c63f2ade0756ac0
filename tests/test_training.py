"""End-to-end training through the real launch command: 2 CPU processes, DeepSpeed ZeRO-3, the tiny Qwen3.

One reference run is shared by most assertions; the resume test kills and relaunches a second run.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import CPU_CONFIG, REPO, conversation, free_port, launch, tiny_recipe, write_messages
from hub_server import FakeHub
from safetensors.torch import load_file
from trl.chat_template_utils import qwen3_training_chat_template

from judge_sft.train.inference_template import inference_template

pytestmark = pytest.mark.launch  # every test here runs a real multi-process launch

HUB_TOKEN = "hf_judgesfttest_training"
TRAIN_ROWS, VAL_ROWS = 40, 8
MICRO_BATCH, WORLD, TOTAL_BATCH = 2, 2, 8  # -> dp 2, gradient accumulation 2, 5 optimizer steps
STEPS = TRAIN_ROWS // TOTAL_BATCH
RUN_SETTINGS = dict(
    total_batch_size=TOTAL_BATCH,
    per_device_train_batch_size=MICRO_BATCH,
    per_device_eval_batch_size=4,
    eval_steps=2,
    save_steps=2,
    save_total_limit=2,
    max_length=256,
    learning_rate=1e-3,
)


def make_data(directory):
    rows = [conversation(i, 1 + i % 3) for i in range(TRAIN_ROWS + VAL_ROWS)]
    # one row whose answer lies entirely beyond max_length: dropped, never trained with zero loss tokens
    too_long = [{"role": "user", "content": "long " * 400}, {"role": "assistant", "content": "cut"}]
    metadata = {b"judge_sft.train_on": b"final"}
    train = write_messages(directory / "train.parquet", rows[:7] + [too_long] + rows[7:TRAIN_ROWS], metadata)
    val = write_messages(directory / "val.parquet", rows[TRAIN_ROWS:], metadata)
    return train, val


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, tiny_model_dir):
    directory = tmp_path_factory.mktemp("reference")
    train, val = make_data(directory)
    recipe = tiny_recipe(directory, tiny_model_dir, train, val, report_to=["wandb", "tensorboard"], **RUN_SETTINGS)
    result = launch(
        recipe, env={"WANDB_MODE": "offline", "WANDB_DIR": str(directory), "WANDB_PROJECT": "judge-sft-test"}
    )
    return directory, result


def read_state(output_dir):
    return json.loads((output_dir / "trainer_state.json").read_text())


def tokenized_lengths(model_dir, path, max_length):
    from datasets import Dataset
    from transformers import AutoTokenizer

    from judge_sft.data.tokenization import tokenize_dataset
    from judge_sft.train.chat_templates import training_chat_template

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    rows, dropped = tokenize_dataset(
        Dataset.from_parquet(str(path)), tokenizer, training_chat_template(tokenizer), max_length, "final"
    )
    return rows, dropped


def test_step_count_matches_the_batch_arithmetic(reference_run):
    directory, result = reference_run
    assert "dp=2; global batch 8 = micro batch 2 x dp 2 x gradient accumulation 2" in result.stdout
    assert (
        f"{directory / 'train.parquet'}: {TRAIN_ROWS + 1} rows, {TRAIN_ROWS} kept (loss on final assistant message(s), "
        "max_length 256); dropped: truncation 1"
    ) in result.stdout
    state = read_state(directory / "out" / f"checkpoint-{STEPS}")
    assert state["global_step"] == STEPS and state["max_steps"] == STEPS


def test_ranks_train_on_disjoint_shards_covering_the_data_once(reference_run, tiny_model_dir):
    # TRL counts the tokens every rank computed (gathered over ranks). Padding-free batches compute exactly the rows'
    # tokens, so the epoch total equals the data's tokens only if each row was trained on by exactly one rank.
    directory, _ = reference_run
    rows, _ = tokenized_lengths(tiny_model_dir, directory / "train.parquet", 256)
    logged = [entry["num_tokens"] for entry in read_state(directory / "out")["log_history"] if "loss" in entry]
    assert logged[-1] == sum(len(ids) for ids in rows["input_ids"])
    assert len(rows) == TRAIN_ROWS  # the over-long row was dropped


def test_loss_falls_and_validation_runs_every_eval_steps_and_at_the_end(reference_run):
    directory, _ = reference_run
    history = read_state(directory / "out")["log_history"]
    train = [entry for entry in history if "loss" in entry]
    evals = [entry for entry in history if "eval_loss" in entry]
    assert [entry["step"] for entry in train] == list(range(1, STEPS + 1))
    assert [entry["step"] for entry in evals] == [2, 4, 5]
    assert train[-1]["loss"] < train[0]["loss"]
    # trainer_state.json keeps transformers' names; the reporters get the cookbook's (patches.cookbook_metric_names)
    assert all("learning_rate" in entry for entry in train)


def test_wandb_offline_run_holds_the_cookbook_metric_names(reference_run):
    from wandb_records import history

    directory, _ = reference_run
    runs = list(Path(directory, "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(runs) == 1  # only the main process reports
    rows = history(runs[0])
    log_history = read_state(directory / "out")["log_history"]
    train = [(row["train/global_step"], row["train/loss"], row["train/lr"]) for row in rows if "train/loss" in row]
    val = [(row["train/global_step"], row["val/loss"]) for row in rows if "val/loss" in row]
    assert train == [(entry["step"], entry["loss"], entry["learning_rate"]) for entry in log_history if "loss" in entry]
    assert val == [(entry["step"], entry["eval_loss"]) for entry in log_history if "eval_loss" in entry]


def test_tensorboard_events_hold_the_cookbook_metric_names(reference_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    directory, _ = reference_run
    [events] = {path.parent for path in Path(directory, "out").rglob("events.out.tfevents.*")}
    tags = EventAccumulator(str(events)).Reload().Tags()["scalars"]
    assert {"train/loss", "train/lr", "val/loss"} <= set(tags)


def test_final_model_is_consolidated_and_reproduces_the_reported_val_loss(reference_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl.chat_template_utils import qwen3_training_chat_template

    directory, _ = reference_run
    output_dir = directory / "out"
    assert sorted(path.name for path in output_dir.glob("*.safetensors")) == ["model.safetensors"]
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    assert tokenizer.chat_template == qwen3_training_chat_template  # inference renders prompts as training did
    model = AutoModelForCausalLM.from_pretrained(output_dir, dtype=torch.float32).eval()

    rows, _ = tokenized_lengths(output_dir, directory / "val.parquet", 256)
    # Trainer's eval loss: the mean of per-batch token means; 8 rows, eval batch 4 on each of 2 ranks = 2 batches.
    batch_losses = []
    for start in (0, 4):
        total, count = 0.0, 0
        for input_ids, labels in zip(rows["input_ids"][start : start + 4], rows["labels"][start : start + 4]):
            with torch.no_grad():
                logits = model(torch.tensor([input_ids])).logits[0, :-1]
            targets = torch.tensor(labels[1:])
            total += torch.nn.functional.cross_entropy(logits, targets, ignore_index=-100, reduction="sum").item()
            count += int((targets != -100).sum())
        batch_losses.append(total / count)
    final_eval = [entry for entry in read_state(output_dir)["log_history"] if "eval_loss" in entry][-1]
    assert sum(batch_losses) / 2 == pytest.approx(final_eval["eval_loss"], abs=1e-4)


def test_checkpoints_are_rotated_and_hold_16bit_consolidated_weights(reference_run):
    directory, _ = reference_run
    checkpoints = sorted(path.name for path in (directory / "out").glob("checkpoint-*"))
    assert checkpoints == ["checkpoint-4", f"checkpoint-{STEPS}"]
    assert (directory / "out" / "checkpoint-4" / "model.safetensors").is_file()


def test_clean_exit(reference_run):
    _, result = reference_run
    assert result.returncode == 0 and "terminate called" not in result.stdout


def kill_tree(process):
    """SIGKILL the launcher and every worker it started (torch elastic puts workers in their own sessions)."""
    import psutil

    family = [process.pid, *(child.pid for child in psutil.Process(process.pid).children(recursive=True))]
    for pid in family:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()


def wait_for(path, process, timeout=400):
    deadline = time.time() + timeout
    while not path.exists():
        assert process.poll() is None, "the run ended before its first checkpoint"
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.2)


def test_kill_after_first_checkpoint_then_relaunch_matches_an_uninterrupted_run(
    reference_run, tmp_path, tiny_model_dir
):
    reference_dir, _ = reference_run
    train, val = make_data(tmp_path)
    recipe = tiny_recipe(tmp_path, tiny_model_dir, train, val, report_to="none", **RUN_SETTINGS)
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(CPU_CONFIG),
        "--main_process_port",
        str(free_port()),
        str(REPO / "judge_sft" / "run.py"),
        str(recipe),
    ]
    process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        wait_for(tmp_path / "out" / "checkpoint-2" / "trainer_state.json", process)
    finally:
        kill_tree(process)
    assert not (tmp_path / "out" / "model.safetensors").exists()

    # a crash in the middle of the next save: weights written, trainer state not
    partial = tmp_path / "out" / "checkpoint-4"
    partial.mkdir(exist_ok=True)
    (partial / "model.safetensors").write_bytes(b"truncated")

    result = launch(recipe)
    assert f"resuming from {tmp_path / 'out' / 'checkpoint-2'}" in result.stdout
    resumed = load_file(tmp_path / "out" / "model.safetensors")
    uninterrupted = load_file(reference_dir / "out" / "model.safetensors")
    assert resumed.keys() == uninterrupted.keys()
    for name in uninterrupted:
        torch.testing.assert_close(resumed[name], uninterrupted[name], atol=1e-6, rtol=0)


def test_lora_from_a_relative_base_path_loads_from_anywhere_and_pushes_the_base_hub_id(
    tmp_path, tiny_model_dir, small_data, monkeypatch
):
    from huggingface_hub import ModelCard
    from peft import AutoPeftModelForCausalLM

    train, val = small_data
    repo_id, base_model_id = "judge-org/tiny-lora", "Qwen/Qwen3-0.6B"
    marked_template = tmp_path / "qwen3_training.jinja"
    marked_template.write_text(qwen3_training_chat_template)
    recipe = tiny_recipe(
        tmp_path,
        os.path.relpath(tiny_model_dir, REPO),  # relative to where the launch runs, as the cookbook's MODEL_PATH
        train,
        val,
        report_to="none",
        save_strategy="no",
        eval_strategy="no",
        use_peft=True,
        lora_r=4,
        lora_alpha=8,
        lora_target_modules=["q_proj", "v_proj"],
        max_steps=2,
        base_model_id=base_model_id,
        push_to_hub=True,
        hub_model_id=repo_id,
        hub_strategy="end",
        chat_template_path=str(marked_template),  # SFTTrainer must not set it back on the tokenizer it saves
    )
    with FakeHub(HUB_TOKEN) as hub:
        result = launch(recipe, env={**hub.env(), "HF_HOME": str(tmp_path / "hf_home"), "HF_TOKEN": HUB_TOKEN})
    output_dir = tmp_path / "out"
    assert (output_dir / "adapter_config.json").is_file() and not (output_dir / "model.safetensors").exists()
    adapters = load_file(output_dir / "adapter_model.safetensors")
    lora_b = [name for name in adapters if "lora_B" in name]
    assert len(lora_b) == 2 * 2  # q_proj and v_proj in each of the 2 layers, gathered whole from ZeRO-3 shards
    assert all(adapters[name].abs().sum() > 0 for name in lora_b)  # B starts at zero: non-zero means trained

    # locally, the adapter names the base model's absolute path: it loads from any working directory, and merges
    local_config = json.loads((output_dir / "adapter_config.json").read_text())
    assert local_config["base_model_name_or_path"] == str(tiny_model_dir)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    model = AutoPeftModelForCausalLM.from_pretrained(output_dir)
    assert model.peft_config["default"].r == 4
    tokens = torch.tensor([[151644, 872, 198, 3838, 374, 220, 22, 30, 151645]])
    with torch.no_grad():
        adapted = model(tokens).logits
        merged = model.merge_and_unload()
        torch.testing.assert_close(merged(tokens).logits, adapted, atol=1e-5, rtol=1e-4)
    assert type(merged).__name__ == "Qwen3ForCausalLM"

    # what was pushed names the Hub id the recipe gave: the adapter config, and the card's metadata and text
    files = hub.files(repo_id)
    saved_template = inference_template(qwen3_training_chat_template)
    assert (output_dir / "chat_template.jinja").read_text() == saved_template
    assert files["chat_template.jinja"].decode() == saved_template
    assert json.loads(files["adapter_config.json"]) == {**local_config, "base_model_name_or_path": base_model_id}
    card = ModelCard(files["README.md"].decode())
    assert card.data.base_model == base_model_id and f"fine-tuned from `{base_model_id}`" in card.text
    assert (
        f"vllm serve {base_model_id} --enable-lora --max-lora-rank 4 --lora-modules judge=tiny-lora "
        "--chat-template tiny-lora/chat_template.jinja"
    ) in card.text
    assert "by a local path" not in result.stdout
