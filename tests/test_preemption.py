"""Stopping on request (judge_sft/train/preemption.py): the `stop_after` format and the recipe checks, the callback in
this process with real signals, a LoRA run under sp_size 2 stopped by its deadline (a real launch) and relaunched beside
an uninterrupted reference, and a one-step run stopped after its last step and relaunched (one launch of
tests/driver.py). test_training.py stops full fine-tuning by signals (to one worker, to the launcher);
test_recipe_command.py runs launch.slurm's stop and requeue."""

import json
import os
import signal

import pytest
import torch
import yaml
from conftest import conversation, launch, tiny_recipe, write_messages, write_small_data
from driver import launch_driver
from safetensors.torch import load_file
from transformers import TrainerControl, TrainerState
from trl import SFTConfig

from judge_sft.errors import JudgeSFTError
from judge_sft.train.arguments import parse_recipe
from judge_sft.train.preemption import REQUEUE_STATUS, STOP_SIGNALS, StopOnRequest, parse_duration


@pytest.mark.parametrize(
    "value, seconds",
    [("3h50m", 13800), ("90m", 5400), ("45s", 45), ("1h30m15s", 5415), ("2h", 7200), (600, 600), ("600", 600)],
)
def test_stop_after_takes_hours_minutes_and_seconds(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["3x", "", "1.5h", "m", "50m3h", "-5"])
def test_a_malformed_stop_after_is_a_one_line_error(value):
    with pytest.raises(JudgeSFTError) as error:
        parse_duration(value)
    assert str(error.value) == f"recipe: stop_after `{value}` is not a duration such as 3h50m, 90m or 45s"


def write_recipe(tmp_path, **keys):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"train_file": "train.parquet", **keys}))
    return path


def test_recipe_checks_stop_after_before_anything_loads(tmp_path):
    judge_args, _, _ = parse_recipe([str(write_recipe(tmp_path, stop_after="3h50m"))], for_launch=False)
    assert judge_args.stop_after == "3h50m"
    with pytest.raises(JudgeSFTError, match="stop_after `soon` is not a duration"):
        parse_recipe([str(write_recipe(tmp_path, stop_after="soon"))], for_launch=False)


def test_transformers_jit_checkpoint_is_refused(tmp_path):
    # it saves on each rank as that rank hears SIGTERM: a collective save that hangs when only some ranks do
    with pytest.raises(JudgeSFTError, match="enable_jit_checkpoint replaces judge-sft's stop handling"):
        parse_recipe([str(write_recipe(tmp_path, enable_jit_checkpoint=True))], for_launch=False)


@pytest.fixture
def own_signal_handlers():
    """StopOnRequest installs process-wide handlers: give pytest its own back."""
    saved = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def step_end(stop, tmp_path, global_step=3):
    args = SFTConfig(output_dir=str(tmp_path), use_cpu=True, report_to=[])
    args.push_to_hub = True
    control = TrainerControl()
    stop.on_step_end(args, TrainerState(global_step=global_step), control)
    return args, control


@pytest.mark.parametrize("signum", STOP_SIGNALS, ids=lambda signum: signum.name)
def test_a_signal_is_only_noted_and_the_step_end_saves_and_stops(signum, tmp_path, own_signal_handlers):
    stop = StopOnRequest()
    _, control = step_end(stop, tmp_path)
    assert not (control.should_save or control.should_training_stop) and stop.stopped_at is None
    os.kill(os.getpid(), signum)  # the process lives on: the handler notes the request, nothing else
    assert stop.received == signum
    args, control = step_end(stop, tmp_path, global_step=3)
    assert control.should_save and control.should_training_stop and stop.stopped_at == 3
    assert not args.push_to_hub  # the stop's checkpoint is not uploaded


def test_the_deadline_stops_at_the_first_step_end_after_it(tmp_path, own_signal_handlers):
    _, control = step_end(StopOnRequest("1h"), tmp_path)
    assert not control.should_training_stop
    stop = StopOnRequest("0s")
    _, control = step_end(stop, tmp_path, global_step=7)
    assert control.should_save and control.should_training_stop and stop.stopped_at == 7


# ---------------------------------------------------------------------------------------------------- LoRA, sp_size 2

LORA_SP_SETTINGS = dict(
    sp_size=2,  # 2 processes, one SP group: dp 1, gradient accumulation 4
    total_batch_size=8,
    per_device_train_batch_size=2,
    max_length=256,
    learning_rate=1e-2,
    warmup_steps=0,  # both steps move the adapters
    eval_strategy="no",
    save_steps=1000,
    use_peft=True,
    lora_r=4,
    lora_alpha=8,
    lora_target_modules=["q_proj", "v_proj"],
    report_to="none",
)
LORA_SP_STEPS = 2  # 16 rows, 8 per step


LAST_STEP_SETTINGS = dict(max_steps=1, eval_strategy="no", report_to="none")


@pytest.fixture(scope="module")
def deadline_runs(tmp_path_factory, small_vocab_model_dir):
    """A LoRA recipe launched with `--stop_after 1s` (a real launch: what each rank exits with); then one driver launch
    (tests/driver.py's `launch_driver`) that relaunches it without, trains it uninterrupted for reference,
    and stops a one-step run at its deadline after its last step (`stop_after: 0s`) and relaunches that."""
    directory = tmp_path_factory.mktemp("lora_sp")
    rows = [conversation(i, 1 + i % 3) for i in range(16)]
    train = write_messages(directory / "train.parquet", rows, {b"judge_sft.train_on": b"final"})
    recipes = {}
    for name in ("uninterrupted", "stopped"):
        (directory / name).mkdir()
        recipes[name] = tiny_recipe(directory / name, small_vocab_model_dir, train, **LORA_SP_SETTINGS)
    stopped = launch(recipes["stopped"], "--stop_after", "1s", check=False)
    output_dir = directory / "stopped" / "out"
    after_stop = sorted(path.name for path in output_dir.iterdir())

    last_step = directory / "last_step"
    last_step.mkdir()
    small_data = write_small_data(last_step)
    stop = tiny_recipe(last_step, small_vocab_model_dir, *small_data, **LAST_STEP_SETTINGS, stop_after="0s")
    stop = stop.rename(last_step / "stop.yaml")
    relaunch = tiny_recipe(last_step, small_vocab_model_dir, *small_data, **LAST_STEP_SETTINGS)
    jobs = [recipes["stopped"], recipes["uninterrupted"], stop, relaunch]
    output = launch_driver(jobs, directory)
    return {
        "reference": directory / "uninterrupted" / "out",
        "output_dir": output_dir,
        "stopped": stopped,
        "after_stop": after_stop,
        "resumed": output[recipes["stopped"]],
        "last_step_dir": last_step / "out",
        "last_step_stop": output[stop],
        "last_step_relaunch": output[relaunch],
    }


@pytest.mark.launch
def test_stop_after_saves_a_checkpoint_and_exits_with_the_requeue_status(deadline_runs):
    stopped, output_dir = deadline_runs["stopped"], deadline_runs["output_dir"]
    assert "stop_after 1s reached: saving checkpoint-1" in stopped.stdout
    assert stopped.stdout.count(f"exitcode  : {REQUEUE_STATUS}") == 2  # every rank; torchrun itself exits 1
    assert stopped.returncode == 1
    assert (
        "checkpoint-1" in deadline_runs["after_stop"] and "adapter_model.safetensors" not in deadline_runs["after_stop"]
    )
    state = json.loads((output_dir / "checkpoint-1" / "trainer_state.json").read_text())
    assert state["global_step"] == 1 and (output_dir / "checkpoint-1" / "adapter_model.safetensors").is_file()


@pytest.mark.launch
def test_lora_under_sp2_resumes_to_the_adapters_of_an_uninterrupted_run(deadline_runs):
    output_dir, reference = deadline_runs["output_dir"], deadline_runs["reference"]
    assert f"resuming from {output_dir / 'checkpoint-1'}" in deadline_runs["resumed"]
    resumed = load_file(output_dir / "adapter_model.safetensors")
    uninterrupted = load_file(reference / "adapter_model.safetensors")
    assert resumed.keys() == uninterrupted.keys()
    assert all(uninterrupted[name].abs().max() > 1e-3 for name in uninterrupted if "lora_B" in name)  # trained
    for name in uninterrupted:
        torch.testing.assert_close(resumed[name], uninterrupted[name], atol=1e-6, rtol=0)
    losses = [
        [(entry["step"], entry["loss"]) for entry in json.loads(path.read_text())["log_history"] if "loss" in entry]
        for path in (output_dir / "trainer_state.json", reference / "trainer_state.json")
    ]
    assert [step for step, _ in losses[0]] == [step for step, _ in losses[1]] == list(range(1, LORA_SP_STEPS + 1))
    assert [loss for _, loss in losses[0]] == pytest.approx([loss for _, loss in losses[1]], abs=1e-6)


@pytest.mark.launch
def test_num_tokens_counts_on_after_the_resume_as_in_the_uninterrupted_run(deadline_runs):
    logged = [
        {entry["step"]: entry["num_tokens"] for entry in json.loads(path.read_text())["log_history"] if "loss" in entry}
        for path in (
            deadline_runs["output_dir"] / "trainer_state.json",
            deadline_runs["reference"] / "trainer_state.json",
        )
    ]
    assert logged[0] == logged[1] and sorted(logged[0]) == list(range(1, LORA_SP_STEPS + 1))


@pytest.mark.launch
def test_a_stop_at_the_last_step_is_finished_by_the_relaunch_without_another_step(deadline_runs):
    output_dir = deadline_runs["last_step_dir"]
    assert "stop_after 0s reached: saving checkpoint-1" in deadline_runs["last_step_stop"]  # past at the end of step 1
    # the stop saved no final model: the relaunch resumed instead of finding a finished run
    assert f"resuming from {output_dir / 'checkpoint-1'}" in deadline_runs["last_step_relaunch"]
    state = json.loads((output_dir / "trainer_state.json").read_text())
    assert state["global_step"] == 1 and [entry["step"] for entry in state["log_history"] if "loss" in entry] == [1]
    assert sorted(path.parent.name for path in output_dir.glob("checkpoint-*/trainer_state.json")) == ["checkpoint-1"]
    final, checkpoint = (
        load_file(output_dir / "model.safetensors"),
        load_file(output_dir / "checkpoint-1" / "model.safetensors"),
    )
    assert final.keys() == checkpoint.keys() and all(torch.equal(final[name], checkpoint[name]) for name in final)
    assert (output_dir / "README.md").is_file()
