"""Recipe parsing: TRL's parser, plus misspelt keys named with a suggestion and the derived gradient accumulation."""

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


def test_cpu_offload_must_match_the_launched_deepspeed_config():
    from judge_sft.train.launch import check_cpu_offload

    offloaded = {
        "zero_optimization": {"stage": 3, "offload_optimizer": {"device": "cpu"}, "offload_param": {"device": "cpu"}}
    }
    on_gpu = {"zero_optimization": {"stage": 3, "offload_optimizer": {"device": "none"}}}
    check_cpu_offload(True, offloaded)
    check_cpu_offload(False, on_gpu)
    check_cpu_offload(False, None)  # no DeepSpeed (one process, plain python)
    with pytest.raises(JudgeSFTError, match="launch with --config_file accelerate_configs/zero3_offload.yaml"):
        check_cpu_offload(True, on_gpu)
    with pytest.raises(JudgeSFTError, match="cpu_offload is false but the launch's DeepSpeed config offloads"):
        check_cpu_offload(False, offloaded)


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
