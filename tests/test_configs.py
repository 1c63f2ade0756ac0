"""Recipe parsing: TRL's parser, plus misspelt keys named with a suggestion and the derived gradient accumulation."""

from pathlib import Path

import pytest
from conftest import REPO

from judge_sft.errors import JudgeSFTError
from judge_sft.train.arguments import parse_recipe
from judge_sft.train.launch import plan_batch


def write_recipe(tmp_path, text):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return str(path)


BASE = "model_name_or_path: some/model\ntrain_file: train.parquet\noutput_dir: {out}\nbf16: false\nreport_to: none\n"


def test_recipe_and_command_line_overrides(tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    recipe = write_recipe(tmp_path, BASE.format(out=tmp_path) + "learning_rate: 1.0e-5\nsp_size: 1\n")
    judge_args, training_args, model_args = parse_recipe(
        [recipe, "--learning_rate", "3e-4", "--total_batch_size", "16"]
    )
    assert training_args.learning_rate == 3e-4 and judge_args.total_batch_size == 16
    assert model_args.model_name_or_path == "some/model" and judge_args.train_file == "train.parquet"


def test_misspelt_recipe_key_is_named_with_the_closest_valid_key(tmp_path):
    recipe = write_recipe(tmp_path, BASE.format(out=tmp_path) + "learnig_rate: 1.0e-5\n")
    with pytest.raises(
        JudgeSFTError, match=r"recipe.yaml line 6: unknown recipe key `learnig_rate`; did you mean `learning_rate`\?"
    ):
        parse_recipe([recipe])


def test_misspelt_command_line_key_is_named_with_the_closest_valid_key(tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    recipe = write_recipe(tmp_path, BASE.format(out=tmp_path))
    with pytest.raises(
        JudgeSFTError, match=r"command line: unknown recipe key `total_batch_sise`; did you mean `total_batch_size`\?"
    ):
        parse_recipe([recipe, "--total_batch_sise", "8"])


def test_shipped_recipes_hold_only_valid_keys():
    from judge_sft.train.arguments import check_recipe_keys

    for recipe in sorted((REPO / "recipes").glob("*.yaml")):
        assert check_recipe_keys(recipe), recipe


def test_cookbook_batch_arithmetic():
    # 96 sequences per step, micro batch 12, 8 GPUs with SP 8: one data-parallel group, 8 accumulation steps
    plan = plan_batch(96, 12, world_size=8, sp_size=8)
    assert (plan.dp, plan.grad_accum) == (1, 8)
    assert plan_batch(96, 12, world_size=16, sp_size=8).grad_accum == 4
    assert plan_batch(96, 4, world_size=8, sp_size=1).grad_accum == 3


def test_batch_arithmetic_that_does_not_divide_shows_the_arithmetic():
    with pytest.raises(
        JudgeSFTError,
        match=r"total_batch_size 96 is not a multiple of .* 12 x dp 3 .* = 36; gradient accumulation would be 2.66667",
    ):
        plan_batch(96, 12, world_size=24, sp_size=8)
    with pytest.raises(JudgeSFTError, match="world size 12 is not divisible by sp_size 8"):
        plan_batch(96, 12, world_size=12, sp_size=8)


def deepspeed_config(offload_optimizer="none", offload_param="none", stage=3):
    zero = {
        "stage": stage,
        "offload_optimizer": {"device": offload_optimizer},
        "offload_param": {"device": offload_param},
    }
    return {"zero_optimization": zero}


LAUNCHED = {"none": deepspeed_config(), "optimizer": deepspeed_config("cpu"), "all": deepspeed_config("cpu", "cpu")}


@pytest.mark.parametrize("recipe_mode", ["none", "optimizer", "all"])
@pytest.mark.parametrize("launched_mode", ["none", "optimizer", "all"])
def test_each_cpu_offload_mode_runs_only_with_its_deepspeed_config(recipe_mode, launched_mode):
    from judge_sft.train.launch import check_cpu_offload

    if recipe_mode == launched_mode:
        check_cpu_offload(recipe_mode, LAUNCHED[launched_mode])
        return
    config = {"none": "zero3.yaml", "optimizer": "zero3_offload_optimizer.yaml", "all": "zero3_offload.yaml"}[
        recipe_mode
    ]
    offloads = {
        "none": "nothing (optimizer states and parameters on the GPU)",
        "optimizer": "the optimizer states only",
        "all": "the optimizer states and the parameters",
    }[launched_mode]
    with pytest.raises(JudgeSFTError) as error:
        check_cpu_offload(recipe_mode, LAUNCHED[launched_mode])
    assert str(error.value) == (
        f"recipe: cpu_offload is {recipe_mode} but the launch's DeepSpeed config offloads {offloads}; "
        f"set `cpu_offload: {launched_mode}` or launch with --config_file accelerate_configs/{config}"
    )


def test_no_deepspeed_config_means_no_offload():
    from judge_sft.train.launch import check_cpu_offload

    check_cpu_offload("none", None)  # one process, plain python
    with pytest.raises(JudgeSFTError, match="offloads nothing"):
        check_cpu_offload("all", None)


@pytest.mark.parametrize(
    "value,mode", [(True, "all"), (False, "none"), ("true", "all"), ("False", "none"), ("optimizer", "optimizer")]
)
def test_cpu_offload_takes_the_three_modes_and_the_old_yes_no(tmp_path, monkeypatch, value, mode):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    recipe = write_recipe(tmp_path, BASE.format(out=tmp_path) + f"cpu_offload: {value}\n")
    assert parse_recipe([recipe])[0].cpu_offload == mode
    assert parse_recipe([recipe, "--cpu_offload", str(value).lower()])[0].cpu_offload == mode


def test_unknown_cpu_offload_and_master_weights_values_are_named_with_file_and_line(tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    recipe = write_recipe(tmp_path, BASE.format(out=tmp_path) + "cpu_offload: params\n")
    line = len(Path(recipe).read_text().splitlines())
    with pytest.raises(JudgeSFTError) as error:
        parse_recipe([recipe])
    assert str(error.value) == (
        f"{recipe} line {line}: cpu_offload: expected one of none, optimizer, all, true, false, got 'params'"
    )
    recipe = write_recipe(tmp_path, BASE.format(out=tmp_path) + "master_weights: bf16\n")
    with pytest.raises(JudgeSFTError) as error:
        parse_recipe([recipe])
    assert str(error.value) == f"{recipe} line {line}: master_weights: expected one of fp32, bf16_kahan, got 'bf16'"
    recipe = write_recipe(tmp_path, BASE.format(out=tmp_path))
    with pytest.raises(JudgeSFTError) as error:
        parse_recipe([recipe, "--master_weights", "bf16"])
    assert str(error.value) == "command line: --master_weights: expected one of fp32, bf16_kahan, got 'bf16'"


@pytest.mark.parametrize(
    "change,message",
    [
        (
            {"bf16": False},
            "recipe: master_weights bf16_kahan keeps weights, gradients and Adam states in bf16: it needs `bf16: true`",
        ),
        (
            {"stage": 2},
            "recipe: master_weights bf16_kahan runs under DeepSpeed ZeRO-3 only; launch with --config_file "
            "accelerate_configs/zero3.yaml",
        ),
        (
            {"stage": None},
            "recipe: master_weights bf16_kahan runs under DeepSpeed ZeRO-3 only; launch with --config_file "
            "accelerate_configs/zero3.yaml",
        ),
        (
            {"cpu_offload": "optimizer"},
            "recipe: master_weights bf16_kahan keeps the optimizer on the GPU; with cpu_offload optimizer DeepSpeed's "
            "CPU Adam keeps fp32 states in host RAM instead: set `cpu_offload: none` or `master_weights: fp32`",
        ),
        (
            {"optim": "adafactor"},
            "recipe: master_weights bf16_kahan is AdamW with Kahan summation (torch-optimi); it cannot run "
            "`optim: adafactor`",
        ),
    ],
)
def test_bf16_kahan_is_refused_where_it_cannot_run(change, message):
    from types import SimpleNamespace

    from judge_sft.train.launch import check_master_weights

    settings = {"bf16": True, "stage": 3, "cpu_offload": "none", "optim": "adamw_torch_fused", **change}
    judge_args = SimpleNamespace(master_weights="bf16_kahan", cpu_offload=settings["cpu_offload"])
    offloaded = "cpu" if settings["cpu_offload"] != "none" else "none"
    config = None if settings["stage"] is None else deepspeed_config(offloaded, stage=settings["stage"])
    with pytest.raises(JudgeSFTError) as error:
        check_master_weights(judge_args, settings["bf16"], config, settings["optim"])
    assert str(error.value) == message
    check_master_weights(SimpleNamespace(master_weights="fp32", cpu_offload="none"), False, None)  # fp32: anywhere


def test_a_local_base_model_is_recorded_absolute_and_a_hub_id_as_written(tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    (tmp_path / "models" / "Qwen3-14B").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    recipe = write_recipe(tmp_path, BASE.format(out=tmp_path))
    _, _, model_args = parse_recipe([recipe, "--model_name_or_path", "./models/Qwen3-14B"])
    assert model_args.model_name_or_path == str(tmp_path / "models" / "Qwen3-14B")
    _, _, model_args = parse_recipe([recipe, "--model_name_or_path", "Qwen/Qwen3-14B"])
    assert model_args.model_name_or_path == "Qwen/Qwen3-14B"


def test_base_model_id_must_be_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    recipe = write_recipe(tmp_path, BASE.format(out=tmp_path))
    judge_args, _, _ = parse_recipe([recipe, "--base_model_id", "Qwen/Qwen3-14B"])
    assert judge_args.base_model_id == "Qwen/Qwen3-14B"
    with pytest.raises(JudgeSFTError) as error:
        parse_recipe([recipe, "--base_model_id", "./models/Qwen3-14B"])
    assert str(error.value) == "recipe: `base_model_id` is a Hub id ORG/NAME, not `./models/Qwen3-14B`"
