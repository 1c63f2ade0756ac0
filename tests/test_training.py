"""End-to-end training through the real launch command: 2 CPU processes, DeepSpeed ZeRO-3, the tiny Qwen3.

One reference run is shared by most assertions. A second run is killed after its first checkpoint and a third is
stopped twice (SIGUSR1 to one worker, then SIGTERM to the launcher of its relaunch); one launch of tests/driver.py
then relaunches both to the end and trains LoRA from a relative base path.
"""

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import (
    CPU_CONFIG,
    REPO,
    conversation,
    launch,
    launch_command,
    tiny_recipe,
    write_messages,
    write_small_data,
)
from driver import launch_driver
from hub_server import FakeHub
from safetensors.torch import load_file
from trl.chat_template_utils import qwen3_training_chat_template

from judge_sft.train.inference_template import inference_template

pytestmark = pytest.mark.launch  # every test here runs a real multi-process launch

HUB_TOKEN = "hf_judgesfttest_training"  # the loopback Hub's
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
def reference_run(tmp_path_factory, small_vocab_model_dir):
    directory = tmp_path_factory.mktemp("reference")
    train, val = make_data(directory)
    recipe = tiny_recipe(
        directory, small_vocab_model_dir, train, val, report_to=["wandb", "tensorboard"], **RUN_SETTINGS
    )
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


def test_ranks_train_on_disjoint_shards_covering_the_data_once(reference_run, small_vocab_model_dir):
    # TRL counts the tokens every rank computed (gathered over ranks). Padding-free batches compute exactly the rows'
    # tokens, so the epoch total equals the data's tokens only if each row was trained on by exactly one rank.
    directory, _ = reference_run
    rows, _ = tokenized_lengths(small_vocab_model_dir, directory / "train.parquet", 256)
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

    from judge_sft.train.inference_template import inference_template

    directory, _ = reference_run
    output_dir = directory / "out"
    assert sorted(path.name for path in output_dir.glob("*.safetensors")) == ["model.safetensors"]
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    # inference renders prompts as training did, without the generation tags servers reject
    assert tokenizer.chat_template == inference_template(qwen3_training_chat_template)
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


def killed_at_checkpoint(recipe, step, config=CPU_CONFIG):
    """`recipe` launched under `config` and SIGKILLed (launcher and workers) once checkpoint-STEP is complete, before
    the run saved its final model."""
    output_dir = Path(yaml.safe_load(recipe.read_text())["output_dir"])
    process = subprocess.Popen(
        launch_command(recipe, config=config),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(output_dir / f"checkpoint-{step}" / "trainer_state.json", process)
    finally:
        kill_tree(process)
    assert not (output_dir / "model.safetensors").exists()


def killed_after_its_first_checkpoint(directory, model_dir):
    """The reference recipe killed once checkpoint-2 is complete, then a crash mid-save faked: checkpoint-4's weights
    written, its trainer state not. Returns the recipe."""
    directory.mkdir()
    train, val = make_data(directory)
    recipe = tiny_recipe(directory, model_dir, train, val, report_to="none", **RUN_SETTINGS)
    killed_at_checkpoint(recipe, 2)
    partial = directory / "out" / "checkpoint-4"
    partial.mkdir(exist_ok=True)
    (partial / "model.safetensors").write_bytes(b"truncated")
    return recipe


def test_kill_after_first_checkpoint_then_relaunch_matches_an_uninterrupted_run(reference_run, interrupted_runs):
    reference_dir, _ = reference_run
    output_dir, relaunch_output = interrupted_runs["killed"]
    assert f"resuming from {output_dir / 'checkpoint-2'}" in relaunch_output
    resumed = load_file(output_dir / "model.safetensors")
    uninterrupted = load_file(reference_dir / "out" / "model.safetensors")
    assert resumed.keys() == uninterrupted.keys()
    for name in uninterrupted:
        torch.testing.assert_close(resumed[name], uninterrupted[name], atol=1e-6, rtol=0)


LORA_REPO_ID, LORA_BASE_MODEL_ID = "judge-org/tiny-lora", "Qwen/Qwen3-0.6B"


def lora_from_a_relative_base_path(directory, model_dir):
    """A LoRA recipe naming its base model relative to where the launch runs (as the cookbook's MODEL_PATH), pushed at
    the end under a base_model_id, with a chat_template_path that SFTTrainer must not set back on the tokenizer."""
    directory.mkdir()
    train, val = write_small_data(directory)
    marked_template = directory / "qwen3_training.jinja"
    marked_template.write_text(qwen3_training_chat_template)
    return tiny_recipe(
        directory,
        os.path.relpath(model_dir, REPO),
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
        base_model_id=LORA_BASE_MODEL_ID,
        push_to_hub=True,
        hub_model_id=LORA_REPO_ID,
        hub_strategy="end",
        chat_template_path=str(marked_template),
    )


def test_lora_from_a_relative_base_path_loads_from_anywhere_and_pushes_the_base_hub_id(
    interrupted_runs, small_vocab_model_dir, tmp_path, monkeypatch
):
    from huggingface_hub import ModelCard
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    output_dir, output, files = interrupted_runs["lora"]
    base_model_id = LORA_BASE_MODEL_ID
    assert (output_dir / "adapter_config.json").is_file() and not (output_dir / "model.safetensors").exists()
    adapters = load_file(output_dir / "adapter_model.safetensors")
    lora_b = [name for name in adapters if "lora_B" in name]
    assert len(lora_b) == 2 * 2  # q_proj and v_proj in each of the 2 layers, gathered whole from ZeRO-3 shards
    assert all(adapters[name].abs().sum() > 0 for name in lora_b)  # B starts at zero: non-zero means trained

    # locally, the adapter names the base model's absolute path: it loads from any working directory, and merges
    local_config = json.loads((output_dir / "adapter_config.json").read_text())
    assert local_config["base_model_name_or_path"] == str(small_vocab_model_dir)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    model = AutoPeftModelForCausalLM.from_pretrained(output_dir)
    assert model.peft_config["default"].r == 4
    tokens = torch.tensor(
        [AutoTokenizer.from_pretrained(output_dir)("<|im_start|>user\nWhat is 7?<|im_end|>").input_ids]
    )
    with torch.no_grad():
        adapted = model(tokens).logits
        merged = model.merge_and_unload()
        torch.testing.assert_close(merged(tokens).logits, adapted, atol=1e-5, rtol=1e-4)
    assert type(merged).__name__ == "Qwen3ForCausalLM"

    # what was pushed names the Hub id the recipe gave: the adapter config, and the card's metadata and text
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
    assert "by a local path" not in output


# ---------------------------------------------------------------------------------------------------- stop on request

STOP_SETTINGS = dict(
    RUN_SETTINGS,
    save_steps=1000,  # the stops save between save_steps
    report_to="tensorboard",
    push_to_hub=True,  # a stop pushes nothing; the last relaunch pushes as the recipe says
    hub_model_id="judge-org/stopped-judge",
    hub_strategy="every_save",
)
GRACE = 300  # torchrun's grace before SIGKILL (TORCH_ELASTIC_SHUTDOWN_TIMEOUT): a CPU step, an eval and a save on busy cores


class BackgroundLaunch:
    """The launch command in the background; its output (launcher and workers) collected as it comes."""

    def __init__(self, recipe, env):
        self.process = subprocess.Popen(
            launch_command(recipe),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **env},
            start_new_session=True,
        )
        self.lines = []
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def read(self):
        for line in self.process.stdout:
            self.lines.append(line)

    def output(self):
        return "".join(self.lines)

    def wait_for(self, text, timeout=600):
        """Until the launch's output holds `text`."""
        deadline = time.time() + timeout
        while text not in self.output():
            assert self.process.poll() is None, f"the launch ended before {text!r}:\n{self.output()[-4000:]}"
            assert time.time() < deadline, f"{text!r} never came"
            time.sleep(0.1)

    def worker(self, rank, timeout=300):
        """The pid of the worker of `rank`, waiting for it to start (a relaunch's workers start after its launcher)."""
        import psutil

        deadline = time.time() + timeout
        while True:
            pids = [
                child.pid
                for child in psutil.Process(self.process.pid).children()
                if child.environ().get("RANK") == str(rank)
            ]
            if pids:
                return pids[0]
            assert self.process.poll() is None and time.time() < deadline, f"no rank {rank}:\n{self.output()[-4000:]}"
            time.sleep(0.1)

    def kill(self):
        """After a failed wait, no processes left behind."""
        if self.process.poll() is None:
            kill_tree(self.process)

    def finish(self, timeout=600):
        self.process.wait(timeout)
        self.reader.join()
        return self.output()


def started_checkpoints(output_dir):
    return {int(path.name.split("-")[1]) for path in output_dir.glob("checkpoint-*")}


def complete_checkpoints(output_dir):
    return sorted(int(path.parent.name.split("-")[1]) for path in output_dir.glob("checkpoint-*/trainer_state.json"))


def checkpoint_contents(output_dir, step):
    """What a relaunch needs from checkpoint-STEP: its recorded step, the weights, every rank's optimizer shard."""
    checkpoint = output_dir / f"checkpoint-{step}"
    return {
        "global_step": read_state(checkpoint)["global_step"],
        "weights": sorted(load_file(checkpoint / "model.safetensors")),
        "optimizer_shards": len(list(checkpoint.glob(f"global_step{step}/*_optim_states.pt"))),
    }


def signal_each(pids, signum):
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def stopped_twice(directory, model_dir, hub, hub_env):
    """The reference recipe stopped twice, launched again after the first stop with the same command: SIGUSR1 to rank
    1 only once training has started; then SIGTERM to the launcher once the relaunch resumes, and SIGTERM again to the
    workers while they save. A stop lands at the end of the step in progress: the small-vocabulary model's steps take
    a fraction of a second, so the signals come at points in the log that leave steps to spare, not after logged
    steps. Returns what the tests read, with the recipe for the relaunch that finishes it."""
    directory.mkdir()
    train, val = make_data(directory)
    recipe = tiny_recipe(directory, model_dir, train, val, **STOP_SETTINGS)
    output_dir = directory / "out"
    run = {"recipe": recipe, "output_dir": output_dir}
    env = {**hub_env, "TORCH_ELASTIC_SHUTDOWN_TIMEOUT": str(GRACE)}
    with contextlib.ExitStack() as cleanup:
        first = BackgroundLaunch(recipe, env)
        cleanup.callback(first.kill)
        first.wait_for(f"| 0/{STEPS} [")  # the progress bar: step 1 in progress
        os.kill(first.worker(rank=1), signal.SIGUSR1)
        run["first"] = first.finish()
        [run["first_stop"]] = complete_checkpoints(output_dir)
        run["first_checkpoint"] = checkpoint_contents(output_dir, run["first_stop"])
        run["first_events"] = sorted(output_dir.rglob("events.out.tfevents.*"))

        second = BackgroundLaunch(recipe, env)
        cleanup.callback(second.kill)
        workers = [second.worker(rank) for rank in (0, 1)]  # found while they run
        resumed_from = output_dir / f"checkpoint-{run['first_stop']}"
        second.wait_for(f"resuming from {resumed_from}")  # its stop handlers installed
        signalled = time.monotonic()
        os.kill(second.process.pid, signal.SIGTERM)
        while not started_checkpoints(output_dir) - {run["first_stop"]} and second.process.poll() is None:
            time.sleep(0.1)
        signal_each(workers, signal.SIGTERM)  # a second signal, during the save
        run["second"] = second.finish()
    run["stop_seconds"] = time.monotonic() - signalled
    run["complete_after_stops"] = complete_checkpoints(output_dir)
    run["checkpoints_after_stops"] = [checkpoint_contents(output_dir, step) for step in run["complete_after_stops"]]
    run["final_model_after_stops"] = (output_dir / "model.safetensors").exists()
    run["commits_after_stops"] = [commit.message for commit in hub.repos[STOP_SETTINGS["hub_model_id"]].commits]
    return run


@pytest.fixture(scope="module")
def interrupted_runs(tmp_path_factory, small_vocab_model_dir):
    """The real launches that are killed or stopped (`killed_after_its_first_checkpoint`, `stopped_twice`), then one
    driver launch (tests/driver.py's `launch_driver`: run.py's main, one job after the other) that relaunches
    both as the same command would and trains `lora_from_a_relative_base_path`; one loopback Hub for all."""
    directory = tmp_path_factory.mktemp("interrupted")
    with FakeHub(HUB_TOKEN) as hub:
        hub_env = {**hub.env(), "HF_HOME": str(directory / "hf_home"), "HF_TOKEN": HUB_TOKEN}
        killed = killed_after_its_first_checkpoint(directory / "killed", small_vocab_model_dir)
        stopped = stopped_twice(directory / "stopped", small_vocab_model_dir, hub, hub_env)
        lora = lora_from_a_relative_base_path(directory / "lora", small_vocab_model_dir)
        jobs = [killed, stopped["recipe"], lora]
        output = launch_driver(jobs, directory, env=hub_env)
        stopped["third"] = output[stopped["recipe"]]
        stopped["commits"] = [commit.message for commit in hub.repos[STOP_SETTINGS["hub_model_id"]].commits]
        lora_pushed = hub.files(LORA_REPO_ID)
    return {
        "killed": (killed.parent / "out", output[killed]),
        "stopped": stopped,
        "lora": (lora.parent / "out", output[lora], lora_pushed),
    }


@pytest.fixture(scope="module")
def stopped_run(interrupted_runs):
    return interrupted_runs["stopped"]


def test_sigusr1_to_one_worker_stops_every_rank_after_a_checkpoint_of_that_step(stopped_run):
    from judge_sft.train.preemption import REQUEUE_STATUS

    first, stop = stopped_run["first"], stopped_run["first_stop"]
    assert "rank 1: SIGUSR1 received" in first and "rank 0: SIGUSR1 received" not in first
    assert 1 <= stop < STEPS  # the step in progress when the signal came, not a multiple of save_steps 1000
    assert f"a stop signal reached a training process: saving checkpoint-{stop}" in first
    assert first.count(f"exitcode  : {REQUEUE_STATUS}") == 2  # torchrun's report of each rank's exit status
    assert stopped_run["first_checkpoint"]["global_step"] == stop


def test_sigterm_to_the_launcher_stops_within_torchruns_grace(stopped_run):
    second, output_dir, first_stop = stopped_run["second"], stopped_run["output_dir"], stopped_run["first_stop"]
    assert f"resuming from {output_dir / f'checkpoint-{first_stop}'}" in second
    assert "Received 15 death signal, shutting down workers" in second  # torchrun passes SIGTERM on
    assert "forcefully exiting" not in second and stopped_run["stop_seconds"] < GRACE
    assert stopped_run["complete_after_stops"][0] == first_stop
    [second_stop] = stopped_run["complete_after_stops"][1:]
    assert first_stop < second_stop < STEPS  # the step in progress when the signal came
    assert stopped_run["checkpoints_after_stops"][1]["global_step"] == second_stop


def test_a_second_signal_during_the_save_leaves_every_checkpoint_complete(stopped_run):
    # both: the previous checkpoint, and the one being saved when the second signal came
    first, second = stopped_run["checkpoints_after_stops"]
    assert first == stopped_run["first_checkpoint"]
    assert second["weights"] == first["weights"] and second["optimizer_shards"] == WORLD


def test_stops_flush_the_reporters_and_push_nothing(stopped_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    [events] = stopped_run["first_events"]
    losses = EventAccumulator(str(events)).Reload().Scalars("train/loss")
    assert [event.step for event in losses] == list(range(1, stopped_run["first_stop"] + 1))
    assert not stopped_run["final_model_after_stops"]  # no final save either: the relaunch makes it
    assert stopped_run["commits_after_stops"] == ["initial commit"]
    assert len(stopped_run["commits"]) > 1  # the finishing relaunch pushes


def test_relaunch_after_stops_matches_an_uninterrupted_run(stopped_run, reference_run):
    reference_dir, _ = reference_run
    output_dir = stopped_run["output_dir"]
    resumed, uninterrupted = (
        load_file(output_dir / "model.safetensors"),
        load_file(reference_dir / "out" / "model.safetensors"),
    )
    assert resumed.keys() == uninterrupted.keys()
    for name in uninterrupted:
        torch.testing.assert_close(resumed[name], uninterrupted[name], atol=1e-6, rtol=0)
    # one log: every step once, with the reference's loss (the same rows, in the same order)
    history, expected = (
        [(entry["step"], entry["loss"]) for entry in read_state(directory)["log_history"] if "loss" in entry]
        for directory in (output_dir, reference_dir / "out")
    )
    assert [step for step, _ in history] == [step for step, _ in expected] == list(range(1, STEPS + 1))
    assert [loss for _, loss in history] == pytest.approx([loss for _, loss in expected], abs=1e-6)
    # save_total_limit 2 rotates the stops' checkpoints as any others
    assert complete_checkpoints(output_dir) == [stopped_run["complete_after_stops"][-1], STEPS]


def test_checkpoint_size_is_what_plan_predicts(reference_run, capsys):
    from judge_sft import cli
    from judge_sft.planning.memory_model import GB

    directory, _ = reference_run
    checkpoint = directory / "out" / "checkpoint-4"
    assert cli.main(["plan", str(directory / "recipe.yaml"), "--num-gpus", str(WORLD), "--json"]) == 0
    out = capsys.readouterr().out
    plan = json.loads(out[out.index("{") :])  # after transformers' "[INFO] Running in WANDB offline mode", once
    optimizer_bytes = sum(path.stat().st_size for path in checkpoint.glob("global_step4/*_optim_states.pt"))
    weights_bytes = (checkpoint / "model.safetensors").stat().st_size
    assert plan["checkpoint_weights_gb"] == pytest.approx(weights_bytes / GB, rel=0.01)
    assert plan["checkpoint_optimizer_gb"] == pytest.approx(optimizer_bytes / GB, rel=0.01)
