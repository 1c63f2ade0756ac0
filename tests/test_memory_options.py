"""Where the model states live, in real 2-process ZeRO-3 launches on CPU: each `cpu_offload` mode trains and resumes
with its config, a recipe that disagrees with the launch's config is refused in one line before anything is written,
and `master_weights: bf16_kahan` resumes exactly after a kill, trains LoRA adapters, and keeps bf16 Adam states with a
Kahan buffer."""

import json

import pytest
import torch
import yaml
from conftest import CPU_CONFIG, tiny_recipe, write_small_data
from driver import config_environment, launch_driver, output_under
from safetensors.torch import load_file
from test_training import killed_at_checkpoint, read_state

pytestmark = pytest.mark.launch

SETTINGS = dict(report_to="none", eval_strategy="no", save_steps=2, max_length=256)
BF16 = dict(bf16=True, use_cpu=True, master_weights="bf16_kahan")  # use_cpu: transformers' bf16 check on CPU


def cpu_config(tmp_path, mixed_precision="no", offload="none"):
    """accelerate_configs/cpu_zero3_2proc.yaml with the offload devices of a cpu_offload mode."""
    config = yaml.safe_load(CPU_CONFIG.read_text())
    config["mixed_precision"] = mixed_precision
    config["deepspeed_config"]["offload_optimizer_device"] = "cpu" if offload in ("optimizer", "all") else "none"
    config["deepspeed_config"]["offload_param_device"] = "cpu" if offload == "all" else "none"
    path = tmp_path / f"cpu_{mixed_precision}_{offload}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def memory_runs(tmp_path_factory, small_vocab_model_dir):
    """Every driver job of this file in one launch (tests/driver.py), each with the environment
    of its config: per offload mode, two steps and the same recipe raised to three, which resumes from the first's
    checkpoint (the `all` jobs after a recipe that says `cpu_offload: optimizer`); then the bf16_kahan recipes, full
    fine-tuning for 4 steps (`uninterrupted`) and LoRA for 2 (`lora`), and the relaunch of `killed`: the uninterrupted
    recipe in its own directory, launched for real and killed after its first checkpoint before the driver launch.
    Returns name (the offload mode, or the bf16 run) -> (its directory, its jobs' output)."""
    directory = tmp_path_factory.mktemp("memory")
    train, _ = write_small_data(directory)
    jobs = []
    for mode in ("optimizer", "all"):
        mode_dir = directory / f"offload_{mode}"
        mode_dir.mkdir()
        environment = config_environment(cpu_config(mode_dir, offload=mode))
        recipe = tiny_recipe(mode_dir, small_vocab_model_dir, train, cpu_offload=mode, max_steps=2, **SETTINGS)
        raised = mode_dir / "raised.yaml"
        raised.write_text(yaml.safe_dump({**yaml.safe_load(recipe.read_text()), "max_steps": 3, "save_steps": 3}))
        if mode == "all":
            (mode_dir / "disagree").mkdir()
            disagree = tiny_recipe(
                mode_dir / "disagree", small_vocab_model_dir, train, cpu_offload="optimizer", max_steps=2, **SETTINGS
            )
            jobs.append((disagree, environment))
        jobs += [(recipe, environment), (raised, environment)]
    bf16_dir = directory / "bf16"
    bf16_dir.mkdir()
    config = cpu_config(bf16_dir, mixed_precision="bf16")
    lora = dict(use_peft=True, lora_r=4, lora_alpha=8, lora_target_modules=["q_proj", "v_proj"])
    runs = {
        "uninterrupted": dict(max_steps=4),
        "killed": dict(max_steps=4),
        "lora": dict(max_steps=2, **lora, save_strategy="no"),
    }
    recipes = {}
    for name, overrides in runs.items():
        (bf16_dir / name).mkdir()
        recipes[name] = tiny_recipe(bf16_dir / name, small_vocab_model_dir, train, **{**SETTINGS, **BF16, **overrides})
    killed_at_checkpoint(recipes["killed"], 2, config=config)
    jobs += [(recipes[name], config_environment(config)) for name in ("uninterrupted", "lora", "killed")]
    sections = launch_driver(jobs, directory, refused=[disagree])
    runs = {mode: directory / f"offload_{mode}" for mode in ("optimizer", "all")} | {
        name: recipe.parent for name, recipe in recipes.items()
    }
    return {name: (run_dir, output_under(sections, run_dir)) for name, run_dir in runs.items()}


@pytest.fixture(params=["optimizer", "all"])
def offload_run(request, memory_runs):
    return memory_runs[request.param]


# `none` with fp32 master weights is every other launch's (cpu_zero3_2proc.yaml), resumed by
# tests/test_training.py::test_kill_after_first_checkpoint_then_relaunch_matches_an_uninterrupted_run; with bf16_kahan,
# by test_bf16_kahan_resumed_after_a_kill_matches_an_uninterrupted_run below.
def test_each_offload_mode_trains_two_steps_and_resumes(offload_run):
    directory, output = offload_run
    mode = directory.name.removeprefix("offload_")
    assert json.loads((directory / "trained_under.json").read_text()) == {
        "zero_stage": 3,
        "offload_optimizer_device": "cpu",
        "offload_param_device": "cpu" if mode == "all" else "none",
        "mixed_precision": "no",
    }
    assert read_state(directory / "out" / "checkpoint-2")["global_step"] == 2
    assert f"resuming from {directory / 'out' / 'checkpoint-2'}" in output
    state = read_state(directory / "out")
    assert state["global_step"] == 3 and [entry["step"] for entry in state["log_history"] if "loss" in entry] == [
        1,
        2,
        3,
    ]


def test_a_recipe_and_a_launch_that_disagree_on_cpu_offload_stop_in_one_line(memory_runs):
    directory, _ = memory_runs["all"]
    assert (directory / "disagree" / "error.txt").read_text() == (
        "recipe: cpu_offload is optimizer but the launch's DeepSpeed config offloads the optimizer states and the "
        "parameters; set `cpu_offload: all` or launch with --config_file accelerate_configs/zero3_offload_optimizer.yaml"
    )
    assert not (directory / "disagree" / "out").exists()  # refused before anything was written


def test_bf16_kahan_resumed_after_a_kill_matches_an_uninterrupted_run(memory_runs):
    killed_dir, relaunch_output = memory_runs["killed"]
    killed, uninterrupted_dir = killed_dir / "out", memory_runs["uninterrupted"][0] / "out"
    assert json.loads((killed_dir / "trained_under.json").read_text())["mixed_precision"] == "bf16"
    assert f"resuming from {killed / 'checkpoint-2'}" in relaunch_output

    uninterrupted = load_file(uninterrupted_dir / "model.safetensors")
    resumed_weights = load_file(killed / "model.safetensors")
    assert resumed_weights.keys() == uninterrupted.keys()
    for name, weight in uninterrupted.items():
        assert weight.dtype == torch.bfloat16
        assert torch.equal(resumed_weights[name], weight), name
    assert_bf16_states_with_kahan_buffer(uninterrupted_dir / "checkpoint-4")


def assert_bf16_states_with_kahan_buffer(checkpoint):
    """The optimizer state DeepSpeed saved: bf16 master weights, torch-optimi's bf16 moments and Kahan buffer."""
    [shard] = (checkpoint / "global_step4").glob("*zero_pp_rank_0_*optim_states.pt")
    saved = torch.load(shard, map_location="cpu", weights_only=False)["optimizer_state_dict"]
    assert all(tensor.dtype == torch.bfloat16 for tensor in saved["fp32_flat_groups"])  # DeepSpeed's name for master
    states = saved["optimizer_state_dict"]["state"].values()
    assert states and all(
        {key: state[key].dtype for key in ("exp_avg", "exp_avg_sq", "kahan_comp")}
        == dict.fromkeys(("exp_avg", "exp_avg_sq", "kahan_comp"), torch.bfloat16)
        for state in states
    )


def test_bf16_kahan_trains_lora_adapters(memory_runs):
    lora_dir, _ = memory_runs["lora"]
    trained_under = json.loads((lora_dir / "trained_under.json").read_text())
    assert (trained_under["mixed_precision"], trained_under["offload_optimizer_device"]) == ("bf16", "none")
    adapters = load_file(lora_dir / "out" / "adapter_model.safetensors")
    lora_b = [name for name in adapters if "lora_B" in name]
    assert len(lora_b) == 2 * 2 and all(adapters[name].abs().sum() > 0 for name in lora_b)  # B starts at zero
