"""`judge-sft plan`: model size from a config on the meta device, model states against DeepSpeed's own estimator,
activations against autograd's saved tensors, steps and truncation against training's tokenisation, and advice that
changes the verdict when applied."""

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
import yaml
from conftest import REPO, conversation, free_port, tiny_recipe, write_messages
from datasets import Dataset

from judge_sft import cli
from judge_sft.planning.memory_model import GB, layer_activation_bytes_per_token, model_shape

# Qwen3-32B's config.json, as released.
QWEN3_32B = dict(
    hidden_size=5120,
    num_hidden_layers=64,
    num_attention_heads=64,
    num_key_value_heads=8,
    head_dim=128,
    intermediate_size=25600,
    vocab_size=151936,
    tie_word_embeddings=False,
    max_position_embeddings=40960,
)
QWEN3_14B = dict(QWEN3_32B, num_hidden_layers=40, num_attention_heads=40, intermediate_size=17408)


def qwen3_32b_params():
    """Counted by hand from the architecture: embeddings and LM head, then per layer q/k/v/o, MLP and norms."""
    h, q, kv, inter, vocab, layers = 5120, 64 * 128, 8 * 128, 25600, 151936, 64
    per_layer = h * q + 2 * h * kv + q * h + 3 * h * inter + 2 * h + 2 * 128
    return 2 * vocab * h + layers * per_layer + h


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "vocab.json", "merges.txt")


def write_model_dir(directory, tokenizer_dir=None, **config):
    """A config.json (no weights) with a tokenizer beside it: the real Qwen3 one, or `tokenizer_dir`'s."""
    from transformers import Qwen3Config

    from judge_sft.tiny_model import qwen3_tokenizer_dir

    directory.mkdir(parents=True, exist_ok=True)
    Qwen3Config(**config).save_pretrained(directory)
    for name in TOKENIZER_FILES:
        path = Path(tokenizer_dir or qwen3_tokenizer_dir()) / name
        if path.is_file():
            shutil.copy(path, directory / name)
    return directory


@pytest.fixture(scope="module")
def qwen3_32b_dir(tmp_path_factory, small_vocab_model_dir):
    """Qwen3-32B's config with the small-vocabulary tokenizer: plan loads the tokenizer once per call to tokenise the
    train file (steps, truncation), the real one in ~0.5 s (transformers parses its tokenizer.json in Python), and the
    advice tests plan dozens of times; plan's token counts against the real tokenizer are
    test_steps_and_truncation_match_training_tokenisation's."""
    return write_model_dir(tmp_path_factory.mktemp("qwen3_32b"), tokenizer_dir=small_vocab_model_dir, **QWEN3_32B)


@pytest.fixture(scope="module")
def plan_data(tmp_path_factory):
    directory = tmp_path_factory.mktemp("plan_data")
    rows = [conversation(i, 1 + i % 3) for i in range(40)]
    # ~3,000 tokens (" the" is one token in both tokenizers): inside the recipes' max_length 4096, cut by any
    # max_length that fits without checkpointing
    rows[5] = [{"role": "user", "content": "the " * 3000}, {"role": "assistant", "content": "the verdict " * 20}]
    return write_messages(directory / "train.parquet", rows, {b"judge_sft.train_on": b"final"})


def plan(capsys, recipe, *arguments):
    assert cli.main(["plan", str(recipe), *map(str, arguments), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def cookbook_recipe(tmp_path, model_dir, train_file, **changes):
    """recipes/qwen3_32b.yaml pointed at a local model directory and train file, with the cookbook's fp32 master
    weights unless `changes` say otherwise."""
    recipe = yaml.safe_load((REPO / "recipes" / "qwen3_32b.yaml").read_text())
    recipe.update(model_name_or_path=str(model_dir), train_file=str(train_file), val_file=None, master_weights="fp32")
    recipe.update(changes)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def deepspeed_table(total_params, largest_layer_params, num_gpus, num_nodes, capsys):
    """DeepSpeed's printed ZeRO-3 estimate -> {(offload_param, offload_optimizer): (cpu GB, gpu GB)} for zero_init=1."""
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs_all_cold

    capsys.readouterr()
    estimate_zero3_model_states_mem_needs_all_cold(total_params, largest_layer_params, num_gpus, num_nodes)
    table = {}
    for cpu, gpu, param, optimizer in re.findall(
        r"([\d.]+)GB \|\s+([\d.]+)GB \| offload_param=(\S+)\s*, offload_optimizer=(\S+)\s*, zero_init=1",
        capsys.readouterr().out,
    ):
        table[("cpu" in param, "cpu" in optimizer)] = (float(cpu), float(gpu))
    return table


def test_qwen3_32b_size_from_config_on_meta_device(qwen3_32b_dir):
    from transformers import AutoConfig

    shape = model_shape(AutoConfig.from_pretrained(qwen3_32b_dir))
    assert shape.params == qwen3_32b_params() == 32_762_123_264
    assert (shape.largest_layer, shape.largest_layer_params) == ("model.embed_tokens", 151936 * 5120)
    assert shape.qk_norm and shape.input_embedding_params == 151936 * 5120


@pytest.mark.parametrize("num_gpus,num_nodes", [(8, 1), (8, 2), (4, 1)])
@pytest.mark.parametrize("cpu_offload", ["none", "optimizer", "all"])
def test_qwen3_32b_model_states_against_deepspeeds_estimator(
    capsys, tmp_path, qwen3_32b_dir, num_gpus, num_nodes, cpu_offload
):
    """Where plan and DeepSpeed's estimator count the same tensors they agree; where not, they differ by what the
    estimator leaves out (plan's bytes per parameter are DeepSpeed's measured allocations: the test below)."""
    recipe = cookbook_recipe(tmp_path, qwen3_32b_dir, tmp_path / "absent.parquet", cpu_offload=cpu_offload, sp_size=4)
    result = plan(capsys, recipe, "--num-gpus", num_gpus, "--num-nodes", num_nodes)
    table = deepspeed_table(result["params"], result["largest_layer_params"], num_gpus, num_nodes, capsys)
    cpu_gb, gpu_gb = table[(cpu_offload == "all", cpu_offload != "none")]
    assert result["params"] == qwen3_32b_params()
    if cpu_offload == "none":
        # the estimator: 18 bytes/param, fp32 gradients for every parameter; DeepSpeed 0.19.8 allocates 16 and casts
        # one sub-group (1e9 elements) of gradients to fp32 at the step
        assert result["model_states_gb_per_gpu"] == pytest.approx(gpu_gb, rel=0.10)
        assert result["host_gb_per_node"] == pytest.approx(cpu_gb, rel=0.01)
    else:  # host: the pinned bf16 gradient partitions (and offloaded bf16 parameters) are not in the estimator
        assert result["model_states_gb_per_gpu"] == pytest.approx(gpu_gb, rel=0.01)
        expected = cpu_gb * (18 / 16 if cpu_offload == "optimizer" else 20 / 18)
        assert result["host_gb_per_node"] == pytest.approx(expected, rel=0.001)  # the estimator prints 2 decimals


@pytest.mark.launch  # four real DeepSpeed engines in a subprocess; the small-vocabulary model: seconds, not minutes
def test_bytes_per_param_of_each_placement_are_what_deepspeed_allocates(
    capsys, tmp_path, small_vocab_model_dir, small_data
):
    """tests/deepspeed_states.py builds a bf16 ZeRO-3 engine per placement, takes one optimizer step, and sums the
    bytes of its weight, gradient, master-weight and optimizer-state tensors per parameter, GPU side and host side."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, str(REPO / "tests" / "deepspeed_states.py"), str(small_vocab_model_dir)],
        capture_output=True,
        text=True,
        env={**env, "MASTER_PORT": str(free_port())},
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    recipe = tiny_recipe(tmp_path, small_vocab_model_dir, small_data[0], bf16=True)
    options = plan(capsys, recipe, "--num-gpus", 1)["options"]
    assert len(options) == len(measured) == 4
    for row in options:
        allocated = measured[f"{row['cpu_offload']},{row['master_weights']}"]
        assert allocated["gpu_bytes_per_param"] == pytest.approx(row["gpu_bytes_per_param"], rel=0.05), row
        assert allocated["host_bytes_per_param"] == pytest.approx(row["host_bytes_per_param"], rel=0.05), row
    kahan = measured["none,bf16_kahan"]
    assert kahan["master_dtype"] == "torch.bfloat16" and kahan["optimizer_state_dtypes"] == ["torch.bfloat16"]
    assert measured["none,fp32"]["master_dtype"] == "torch.float32"


def saved_activation_bytes(layer, hidden_size, tokens, rotary, parameters):
    """Bytes autograd keeps for backward through one decoder layer, each storage once, weights and cos/sin excluded."""
    hidden = torch.randn(2, tokens // 2, hidden_size, dtype=torch.bfloat16, requires_grad=True)
    position_ids = torch.arange(tokens // 2).expand(2, -1)
    cos, sin = rotary(hidden, position_ids)
    excluded = {tensor.untyped_storage().data_ptr() for tensor in [*parameters, cos, sin]}
    saved = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in excluded:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        layer(hidden, attention_mask=None, position_ids=position_ids, position_embeddings=(cos, sin))
    return sum(saved.values())


@pytest.mark.parametrize("architecture", ["qwen3", "llama"])
def test_layer_activations_match_autograd_saved_tensors(architecture):
    """The per-layer count (bf16, attention that keeps q, k, v, out and the log-sum-exp, as flash attention does):
    on CPU, sdpa's flash kernel saves the same tensors."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen3Config, Qwen3ForCausalLM

    config_class, model_class = (
        (Qwen3Config, Qwen3ForCausalLM) if architecture == "qwen3" else (LlamaConfig, LlamaForCausalLM)
    )
    config = config_class(
        vocab_size=512,
        hidden_size=96,
        intermediate_size=224,
        num_hidden_layers=2,
        num_attention_heads=6,
        num_key_value_heads=2,
        head_dim=16,
        attn_implementation="sdpa",
    )
    model = model_class(config).to(torch.bfloat16).train()
    shape = model_shape(config)
    assert shape.qk_norm == (architecture == "qwen3")
    tokens = 128
    measured = saved_activation_bytes(
        model.model.layers[0], config.hidden_size, tokens, model.model.rotary_emb, list(model.parameters())
    )
    assert measured == pytest.approx(layer_activation_bytes_per_token(shape, 2) * tokens, rel=0.02)


def test_checkpointing_keeps_layer_inputs_plus_one_layer(tmp_path, qwen3_32b_dir, capsys):
    result = plan(capsys, cookbook_recipe(tmp_path, qwen3_32b_dir, tmp_path / "absent.parquet"), "--num-gpus", 8)
    tokens = result["tokens_per_rank"]
    assert tokens == 12 * 4096 // 8
    layer_gb = layer_activation_bytes_per_token(model_shape_of(qwen3_32b_dir), 2) * tokens / GB
    checkpoints_gb = 64 * 5120 * 2 * tokens / GB
    extra_gb = result["activations_gb_with_checkpointing"] - checkpoints_gb - layer_gb
    assert 0 < extra_gb < 0.05 * result["activations_gb_with_checkpointing"]  # final norm and cos/sin only
    assert result["activations_gb_without_checkpointing"] == pytest.approx(64 * layer_gb, rel=0.01)


def model_shape_of(model_dir):
    from transformers import AutoConfig

    return model_shape(AutoConfig.from_pretrained(model_dir))


def test_cookbook_defaults_do_not_fit_and_each_advice_changes_the_verdict(capsys, tmp_path, qwen3_32b_dir, plan_data):
    """The documented 32B defaults (ZeRO-3, no offload, fp32 master weights, micro batch 12 at 4096) on 8 x 80 GB: the
    model states alone leave too little. Each advice, applied, fits; each labelled 'not enough alone' does not."""
    recipe = cookbook_recipe(tmp_path, qwen3_32b_dir, plan_data, cpu_offload=False)
    result = plan(capsys, recipe, "--num-gpus", 8)
    assert not result["fits"]
    assert result["model_states_gb_per_gpu"] > 0.85 * result["usable_gb_per_gpu"]
    fitting = [item for item in result["advice_detail"] if item["fits"]]
    assert {key for item in fitting for key in item["overrides"]} >= {"cpu_offload", "master_weights", "num_nodes"}
    assert_advice_verdicts(capsys, recipe, result, ["--num-gpus", 8])


def test_advice_lists_the_cheapest_fit_first(capsys, tmp_path, qwen3_32b_dir, plan_data):
    """Fits first, then the fewest GPU-seconds per optimizer step: bf16_kahan on one node (38.8 s x 8 GPUs), a second
    node (19.4 s x 16, the same GPU time on more GPUs), optimizer offload, full offload; then what does not fit."""
    result = plan(capsys, cookbook_recipe(tmp_path, qwen3_32b_dir, plan_data, cpu_offload=False), "--num-gpus", 8)
    advice = result["advice_detail"]
    assert [item["overrides"] for item in advice[:4]] == [
        {"cpu_offload": "none", "master_weights": "bf16_kahan"},
        {"num_nodes": 2},
        {"cpu_offload": "optimizer", "master_weights": "fp32"},
        {"cpu_offload": "all", "master_weights": "fp32"},
    ]
    assert [item["fits"] for item in advice] == [True] * 4 + [False] * (len(advice) - 4)
    assert advice[0]["step_seconds"] == pytest.approx(result["step_seconds"])  # no copies, no host Adam
    assert advice[1]["step_seconds"] == pytest.approx(result["step_seconds"] / 2)
    assert advice[0]["step_seconds"] < advice[2]["step_seconds"] < advice[3]["step_seconds"]
    assert "needs 824 GB host RAM per node, 2.7 s of PCIe copies and 16.4 s of host Adam per step" in advice[2]["text"]


def test_every_placement_is_modelled_for_qwen3_32b_on_8_gpus(capsys, tmp_path, qwen3_32b_dir):
    """Bytes per parameter, host RAM, PCIe bytes per step and host Adam time, by hand: 32.76B parameters over 8 GPUs,
    gradient accumulation 8, checkpointing on, 25 GB/s per GPU, host Adam at 2e9 parameters per second."""
    result = plan(capsys, cookbook_recipe(tmp_path, qwen3_32b_dir, tmp_path / "absent.parquet"), "--num-gpus", 8)
    partition = qwen3_32b_params() / 8
    rows = {(row["cpu_offload"], row["master_weights"]): row for row in result["options"]}
    expected = {  # GPU and host bytes/param, PCIe bytes per GPU per step, fits 8 x 80 GB
        ("none", "fp32"): (16, 0, 0, False),
        ("none", "bf16_kahan"): (12, 0, 0, True),
        ("optimizer", "fp32"): (2, 18, (8 * 2 + 2) * partition, True),  # gradients out each micro step, params back
        ("all", "fp32"): (0, 20, 8 * (3 * 2 + 2) * partition, True),  # + params in for forward, recompute, backward
    }
    for option, (gpu_bytes, host_bytes, pcie_bytes, fits) in expected.items():
        row = rows[option]
        assert (row["gpu_bytes_per_param"], row["host_bytes_per_param"], row["fits"]) == (gpu_bytes, host_bytes, fits)
        assert row["pcie_gb_per_gpu_per_step"] == pytest.approx(pcie_bytes / GB)
        assert row["host_gb_per_node"] == pytest.approx(
            (host_bytes * qwen3_32b_params() if host_bytes else 151936 * 5120 * 4 * 8) * 1.5 / GB
        )
        offloaded = option[0] != "none"
        assert row["host_adam_seconds_per_step"] == pytest.approx(qwen3_32b_params() / 2e9 if offloaded else 0)
        assert row["step_seconds"] == pytest.approx(
            result["step_seconds_at_max_length"] + pcie_bytes / (25 * GB) + row["host_adam_seconds_per_step"]
        )
    assert rows[("none", "bf16_kahan")]["relative_step_time"] == 1
    assert 1.4 < rows[("optimizer", "fp32")]["relative_step_time"] < rows[("all", "fp32")]["relative_step_time"] < 1.8


def test_gpu_start_up_verdict_refuses_in_one_line_with_plans_first_advice(tmp_path, qwen3_32b_dir):
    """What run.py checks on GPUs before loading weights, for given GPU sizes."""
    from judge_sft.planning.plan import Machines, memory_verdict
    from judge_sft.train.arguments import parse_recipe

    recipe = REPO / "recipes" / "qwen3_32b.yaml"
    parsed = parse_recipe([str(recipe), "--model_name_or_path", str(qwen3_32b_dir)], for_launch=False)
    assert memory_verdict(*parsed, Machines(num_gpus=8, gpu_memory_gb=80)) is None
    assert memory_verdict(*parsed, Machines(num_gpus=8, gpu_memory_gb=141)) is None
    refused = memory_verdict(*parsed, Machines(num_gpus=8, gpu_memory_gb=40))
    assert refused.startswith("plan: this run needs 61.5 GB per GPU of 36.0 GB usable on 40.0 GB: it will not fit; ")
    # the fewest GPU-seconds that fit: 4 nodes (9.7 s x 32 GPUs) before optimizer offload (57.9 s x 8 GPUs)
    assert "plan's first advice: 4 nodes x 8 GPUs (world size 32, dp 4, gradient accumulation 2)" in refused
    assert "\n" not in refused
    lora = parse_recipe(
        [str(recipe), "--model_name_or_path", str(qwen3_32b_dir), "--use_peft", "true"], for_launch=False
    )
    assert memory_verdict(*lora, Machines(num_gpus=8, gpu_memory_gb=40)) is None  # not modelled: not refused
    offloaded = parse_recipe(
        [str(recipe), "--model_name_or_path", str(qwen3_32b_dir), "--cpu_offload", "all", "--master_weights", "fp32"],
        for_launch=False,
    )
    assert memory_verdict(*offloaded, Machines(num_gpus=8, cpu_memory_gb=512)).startswith(
        "plan: this run needs 915 GB of host RAM of 512 GB: it will not fit"
    )


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_run_refuses_on_this_gpu_a_model_that_cannot_fit(tmp_path, qwen3_32b_dir, monkeypatch):
    from judge_sft.errors import JudgeSFTError
    from judge_sft.run import check_gpu_memory
    from judge_sft.train.arguments import parse_recipe

    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    monkeypatch.setenv("WORLD_SIZE", "1")
    recipe = cookbook_recipe(tmp_path, qwen3_32b_dir, tmp_path / "absent.parquet", sp_size=1)
    parsed = parse_recipe([str(recipe)], for_launch=False)
    with pytest.raises(JudgeSFTError, match=r"^plan: this run needs .* GB per GPU .*: it will not fit; "):
        check_gpu_memory(*parsed)  # 32.8B parameters with fp32 master weights on one GPU: over 500 GB


def test_advice_without_checkpointing(capsys, tmp_path, qwen3_32b_dir, plan_data):
    """Offloaded, but without gradient checkpointing: checkpointing, a smaller micro batch and a shorter max_length
    each fit (with the accumulation that keeps the global batch, and the rows the shorter max_length would cut)."""
    recipe = cookbook_recipe(tmp_path, qwen3_32b_dir, plan_data, cpu_offload=True, activation_checkpointing=False)
    result = plan(capsys, recipe, "--num-gpus", 8)
    assert not result["fits"]
    by_key = {key: item for item in result["advice_detail"] for key in item["overrides"]}
    assert all(by_key[key]["fits"] for key in ("activation_checkpointing", "per_device_train_batch_size", "max_length"))
    micro_batch = by_key["per_device_train_batch_size"]["overrides"]["per_device_train_batch_size"]
    assert (
        f"gradient accumulation {96 // micro_batch} keeps the global batch of 96"
        in by_key["per_device_train_batch_size"]["text"]
    )
    assert "truncates 1 of 40 rows: 1 lose trained tokens, 1 lose all" in by_key["max_length"]["text"]  # the long row
    assert_advice_verdicts(capsys, recipe, result, ["--num-gpus", 8])


def test_advice_larger_sp_size(capsys, tmp_path, qwen3_32b_dir, plan_data):
    recipe = cookbook_recipe(tmp_path, qwen3_32b_dir, plan_data, cpu_offload=True, sp_size=1, max_length=8192)
    result = plan(capsys, recipe, "--num-gpus", 8)
    assert not result["fits"]
    sp = next(item for item in result["advice_detail"] if "sp_size" in item["overrides"])
    assert sp["fits"] and sp["overrides"]["sp_size"] in (2, 4, 8)
    assert_advice_verdicts(capsys, recipe, result, ["--num-gpus", 8])


def assert_advice_verdicts(capsys, recipe, result, machine):
    for item in result["advice_detail"]:
        arguments = list(machine)
        for key, value in item["overrides"].items():
            arguments += [f"--{key.replace('_', '-')}" if key == "num_nodes" else f"--{key}", value]
        applied = plan(capsys, recipe, *arguments)
        assert applied["fits"] == item["fits"], item["text"]
        assert applied["total_gb_per_gpu"] == pytest.approx(item["total_gb_per_gpu"])


def test_recipes_fit_on_8_gpus_of_80_gb(capsys, tmp_path, qwen3_32b_dir):
    """recipes/qwen3_32b.yaml and qwen3_14b.yaml as shipped, on the machine they document."""
    qwen3_14b_dir = write_model_dir(tmp_path / "qwen3_14b", **QWEN3_14B)
    for name, model_dir in (("qwen3_32b", qwen3_32b_dir), ("qwen3_14b", qwen3_14b_dir)):
        result = plan(
            capsys,
            REPO / "recipes" / f"{name}.yaml",
            "--num-gpus",
            8,
            "--gpu-memory-gb",
            80,
            "--model_name_or_path",
            model_dir,
        )
        assert result["fits"], name
        assert result["advice"] == []
    assert plan(
        capsys,
        REPO / "recipes" / "qwen3_32b.yaml",
        "--num-gpus",
        8,
        "--model_name_or_path",
        qwen3_32b_dir,
        "--cpu-memory-gb",
        1024,
    )["fits"]


def test_the_readme_memory_table_holds_plans_numbers(capsys, qwen3_32b_dir):
    """README's table of placements for recipes/qwen3_32b.yaml on 8 x 80 GB: GB per GPU, host GB and step times as
    plan computes them today, the recipe's own placement the fastest that fits."""
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Memory: Qwen3-32B on 8 x 80 GB") :]
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| `") or line.startswith("| **`")]
    table = {tuple(re.findall(r"`(\w+)`", row[0])[:2]): row for row in rows}
    result = plan(capsys, REPO / "recipes" / "qwen3_32b.yaml", "--num-gpus", 8, "--model_name_or_path", qwen3_32b_dir)
    for option in result["options"]:
        row = table[(option["cpu_offload"], option["master_weights"])]
        assert row[2].startswith(f"{option['gpu_bytes_per_param']}")
        assert row[3].startswith(f"{option['host_bytes_per_param']}")
        assert row[4].startswith(f"{option['total_gb_per_gpu']:.1f}: " + ("fits" if option["fits"] else "does not fit"))
        assert row[5].startswith(f"{option['host_gb_per_node']:.0f}")
        assert re.sub(r"\*", "", row[8]) == f"{option['step_seconds']:.1f} s ({option['relative_step_time']:.2f})"
    fastest = min((option for option in result["options"] if option["fits"]), key=lambda option: option["step_seconds"])
    assert (fastest["cpu_offload"], fastest["master_weights"]) == (result["cpu_offload"], result["master_weights"])


def test_json_has_the_documented_keys(capsys, tmp_path, qwen3_32b_dir):
    result = plan(capsys, cookbook_recipe(tmp_path, qwen3_32b_dir, tmp_path / "absent.parquet"), "--num-gpus", 8)
    for key in (
        "world_size",
        "dp",
        "sp",
        "grad_accum",
        "params",
        "model_states_gb_per_gpu",
        "activations_gb_per_gpu",
        "total_gb_per_gpu",
        "fits",
        "advice",
        "tokens_per_step",
        "epoch_hours_estimate",
        "step_seconds",
        "options",
    ):
        assert key in result
    assert (result["world_size"], result["dp"], result["sp"], result["grad_accum"]) == (8, 1, 8, 8)
    assert result["tokens_per_step"] == 96 * 4096
    assert result["epoch_hours_estimate"] is None and result["steps_per_epoch"] is None  # no train file here
    parts = result["model_states_gb_per_gpu"] + result["activations_gb_per_gpu"] + result["loss_gb_per_gpu"]
    assert result["total_gb_per_gpu"] == pytest.approx(parts)


def long_row_data(directory):
    rows = [conversation(i, 1 + i % 3) for i in range(40)]
    rows[3] = [{"role": "user", "content": "long " * 200}, {"role": "assistant", "content": "cut"}]  # answer past 128
    rows[9] = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "answer " * 150}]  # answer cut at 128
    return write_messages(directory / "train.parquet", rows, {b"judge_sft.train_on": b"final"})


def test_steps_and_truncation_match_training_tokenisation(capsys, tmp_path, tiny_model_dir):
    """Rows kept, dropped and cut at several max_lengths, and the optimizer steps per epoch, from the same
    tokenisation training runs (tokenize_dataset at the recipe's max_length)."""
    from transformers import AutoTokenizer

    from judge_sft.data.tokenization import tokenize_dataset, tokenize_messages
    from judge_sft.train.chat_templates import training_chat_template

    train = long_row_data(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    for max_length in (128, 1024):
        recipe = tiny_recipe(tmp_path, tiny_model_dir, train, max_length=max_length)
        result = plan(capsys, recipe, "--num-gpus", 2)
        kept, dropped = tokenize_dataset(
            Dataset.from_parquet(str(train)), tokenizer, training_chat_template(tokenizer), max_length, "final"
        )
        assert result["train_rows"] == len(kept) and result["rows_dropped"] == dropped.get("truncation", 0)
        assert result["rows_truncated"] == sum(kept["truncated"]) + dropped.get("truncation", 0)
        assert result["mean_tokens_per_row"] == pytest.approx(sum(kept["num_tokens"]) / len(kept))
        micro_batches_per_rank = math.ceil(len(kept) / (2 * 2))  # micro batch 2 x dp 2
        assert result["steps_per_epoch"] == math.ceil(micro_batches_per_rank / 2)  # gradient accumulation 2
    assert (result["rows_truncated"], result["rows_dropped"]) == (0, 0)
    template = training_chat_template(tokenizer)

    def loss_tokens(messages, max_length):
        return tokenize_messages(messages, tokenizer, template, max_length, "final")["num_loss_tokens"]

    cut = sum(
        loss_tokens(messages, 128) < loss_tokens(messages, None)
        for messages in pq.read_table(train)["messages"].to_pylist()
    )
    assert (
        plan(capsys, tiny_recipe(tmp_path, tiny_model_dir, train, max_length=128), "--num-gpus", 2)["targets_cut"]
        == cut
        > 2
    )


def test_compute_estimate_scales_with_gpus_and_checkpointing(capsys, tmp_path, small_vocab_model_dir, small_data):
    recipe = tiny_recipe(tmp_path, small_vocab_model_dir, small_data[0], activation_checkpointing=False)
    base = plan(capsys, recipe, "--num-gpus", 2)
    assert base["epoch_hours_estimate"] > 0
    assert plan(capsys, recipe, "--num-gpus", 4, "--total_batch_size", 16)["epoch_hours_estimate"] == pytest.approx(
        base["epoch_hours_estimate"] / 2
    )
    assert plan(capsys, recipe, "--num-gpus", 2, "--activation_checkpointing", "true")[
        "epoch_hours_estimate"
    ] == pytest.approx(base["epoch_hours_estimate"] * 4 / 3)
    assert plan(capsys, recipe, "--num-gpus", 2, "--mfu", 0.7)["epoch_hours_estimate"] == pytest.approx(
        base["epoch_hours_estimate"] / 2
    )


def test_text_report_and_options_after_overrides(capsys, tmp_path, qwen3_32b_dir):
    recipe = cookbook_recipe(tmp_path, qwen3_32b_dir, tmp_path / "absent.parquet", cpu_offload=False)
    assert cli.main(["plan", "--gpu-memory-gb", "80", str(recipe), "--max_length", "2048", "--num-gpus", "8"]) == 0
    out = capsys.readouterr().out
    assert "world size 8 = dp 1 x sp 8" in out and "max_length 2048" in out
    assert "DOES NOT FIT" in out and "  - cpu_offload none, master_weights bf16_kahan (bf16 master weights" in out
    assert "* none         fp32                     16             0" in out  # the recipe's row of the options table


@pytest.mark.parametrize(
    "arguments,message",
    [
        (["--num-gpus", "8", "--max_lenght", "2048"], "unknown recipe key `max_lenght`; did you mean `max_length`?"),
        (["--num-gpus", "5"], "world size 5 is not divisible by sp_size 8"),
        (["--max_length", "2048"], "--num-gpus N"),
        (
            ["--num-gpus", "8", "--model_name_or_path", "/nonexistent/model"],
            "/nonexistent/model: no such model directory",
        ),
    ],
)
def test_errors_are_one_line(capsys, tmp_path, qwen3_32b_dir, arguments, message):
    recipe = cookbook_recipe(tmp_path, qwen3_32b_dir, tmp_path / "absent.parquet")
    assert cli.main(["plan", str(recipe), *arguments]) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("judge-sft plan: error:") and message in error


def test_unmodelled_settings_are_named(capsys, tmp_path, qwen3_32b_dir):
    recipe = cookbook_recipe(tmp_path, qwen3_32b_dir, tmp_path / "absent.parquet")
    assert plan(capsys, recipe, "--num-gpus", 8)["notes"] == []
    notes = plan(capsys, recipe, "--num-gpus", 8, "--use_peft", "true")["notes"]
    assert len(notes) == 1 and notes[0].startswith("use_peft: the memory above is full fine-tuning's")


def test_host_ram_decides_the_offload_verdict(capsys, tmp_path, qwen3_32b_dir):
    """recipes/qwen3_32b.yaml with full offload needs ~915 GB of host RAM per node: a 512 GB node does not hold it; two
    nodes halve it, and the placement without offload needs none."""
    recipe = REPO / "recipes" / "qwen3_32b.yaml"
    machine = ["--num-gpus", 8, "--model_name_or_path", qwen3_32b_dir, "--cpu-memory-gb", 512]
    machine += ["--cpu_offload", "all", "--master_weights", "fp32"]
    result = plan(capsys, recipe, *machine)
    assert not result["fits"] and result["total_gb_per_gpu"] < result["usable_gb_per_gpu"]
    nodes = next(item for item in result["advice_detail"] if "num_nodes" in item["overrides"])
    assert nodes["fits"] and nodes["overrides"]["num_nodes"] == 2
    assert result["advice_detail"][0]["overrides"] == {"cpu_offload": "none", "master_weights": "bf16_kahan"}
    assert_advice_verdicts(capsys, recipe, result, machine)


def test_checkpoint_size_save_time_and_stop_warning(capsys, tmp_path, qwen3_32b_dir):
    recipe = cookbook_recipe(tmp_path, qwen3_32b_dir, tmp_path / "absent.parquet")
    two_nodes = plan(capsys, recipe, "--num-gpus", 8, "--num-nodes", 2)
    params = qwen3_32b_params()
    assert two_nodes["checkpoint_weights_gb"] == pytest.approx(params * 2 / GB)  # bf16, whole, from rank 0
    assert two_nodes["checkpoint_optimizer_gb"] == pytest.approx(params * 12 / GB)  # fp32 master, Adam m and v
    assert two_nodes["checkpoint_gb_first_node"] == pytest.approx((params * 2 + params * 12 / 2) / GB)
    faster = plan(capsys, recipe, "--num-gpus", 8, "--num-nodes", 2, "--write-gb-per-s", 4)
    assert faster["save_seconds"] == pytest.approx(two_nodes["save_seconds"] / 4)
    for result in (two_nodes, faster):
        needed = 1.5 * (result["step_seconds_at_max_length"] + result["save_seconds"])
        assert result["stop_warning_seconds"] % 60 == 0 and needed <= result["stop_warning_seconds"] < needed + 60
    kahan = plan(capsys, recipe, "--num-gpus", 8, "--num-nodes", 2, "--master_weights", "bf16_kahan")
    assert kahan["checkpoint_optimizer_gb"] == pytest.approx(params * 8 / GB)  # bf16 master, m, v, Kahan buffer
    # the numbers recipes/launch.slurm and docs/training.md quote for recipes/qwen3_32b.yaml on one node (bf16_kahan),
    # and with fp32 master weights
    for master_weights, size, seconds in (("bf16_kahan", 305.1, 540), ("fp32", 427.2, 720)):
        assert cli.main(["plan", str(recipe), "--num-gpus", "8", "--master_weights", master_weights]) == 0
        out = capsys.readouterr().out
        assert f"{size} GB per save" in out and f"sbatch --signal=B:USR1@{seconds}," in out
        assert f"TORCH_ELASTIC_SHUTDOWN_TIMEOUT={seconds}" in out


def test_the_throughput_benchmarks_trl_side_is_sized_from_plan_for_the_stated_gpu(tmp_path, capsys, monkeypatch):
    """benchmarks/gpu_throughput.py on a stated H100: TRL's padded micro batch of 12 rows would not fit, so it takes
    the largest divisor of 12 that plan fits (gradient accumulation keeps the 12 rows per step), as `judge-sft plan`
    says for every row padded to the longest."""
    import argparse

    sys.path.insert(0, str(REPO / "benchmarks"))
    import gpu_throughput

    monkeypatch.setenv("JUDGE_SFT_GPU", "NVIDIA H100 80GB;80;9.0")
    assert gpu_throughput.gpu_description() == ("NVIDIA H100 80GB", 80.0)
    shape = gpu_throughput.QWEN3_4B
    model = write_model_dir(
        tmp_path / "qwen3_4b",
        **{key: value for key, value in shape.items() if key not in ("num_layers", "num_heads", "num_kv_heads")},
        num_hidden_layers=shape["num_layers"],
        num_attention_heads=shape["num_heads"],
        num_key_value_heads=shape["num_kv_heads"],
        tie_word_embeddings=True,
    )
    args = argparse.Namespace(
        steps=12, micro_batch=12, max_length=4096, tiny=False, trl_micro_batch=12, trl_grad_accum=1
    )
    judge, _ = gpu_throughput.recipes(tmp_path, model, args)
    recipe = tmp_path / "judge.yaml"
    recipe.write_text(yaml.safe_dump({**judge, "output_dir": str(tmp_path / "out")}))
    micro, longest, full_gb = gpu_throughput.trl_micro_batch(recipe, 12, 80.0)

    def planned(micro_batch):
        overrides = ["--per_device_train_batch_size", micro_batch, "--max_length", longest]
        return plan(capsys, recipe, "--num-gpus", 1, "--gpu-memory-gb", 80, *overrides)

    larger = min(size for size in (2, 3, 4, 6, 12) if size > micro)
    assert 1 <= micro < 12 and planned(micro)["fits"] and not planned(larger)["fits"]
    assert full_gb == pytest.approx(planned(12)["total_gb_per_gpu"]) and full_gb > 80
    assert 3000 < longest <= 4096  # the benchmark's HelpSteer2-like rows: the longest set the padded batch
