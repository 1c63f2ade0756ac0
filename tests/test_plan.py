"""`judge-sft plan`: model size from a config on the meta device, model states against DeepSpeed's own estimator,
activations against autograd's saved tensors, steps and truncation against training's tokenisation, and advice that
changes the verdict when applied."""

import json
import math
import re
import shutil

import pyarrow.parquet as pq
import pytest
import torch
import yaml
from conftest import REPO, conversation, tiny_recipe, write_messages
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


def write_model_dir(directory, **config):
    """A config.json (no weights) with the real Qwen3 tokenizer beside it."""
    from transformers import Qwen3Config

    from judge_sft.tiny_model import qwen3_tokenizer_dir

    directory.mkdir(parents=True, exist_ok=True)
    Qwen3Config(**config).save_pretrained(directory)
    for path in qwen3_tokenizer_dir().iterdir():
        if path.is_file():
            shutil.copy(path, directory / path.name)
    return directory


@pytest.fixture(scope="module")
def qwen3_32b_dir(tmp_path_factory):
    return write_model_dir(tmp_path_factory.mktemp("qwen3_32b"), **QWEN3_32B)


@pytest.fixture(scope="module")
def plan_data(tmp_path_factory):
    directory = tmp_path_factory.mktemp("plan_data")
    rows = [conversation(i, 1 + i % 3) for i in range(40)]
    # ~3,000 tokens: inside the recipes' max_length 4096, cut by any max_length that fits without checkpointing
    rows[5] = [{"role": "user", "content": "long " * 3000}, {"role": "assistant", "content": "the verdict " * 20}]
    return write_messages(directory / "train.parquet", rows, {b"judge_sft.train_on": b"final"})


def plan(capsys, recipe, *arguments):
    assert cli.main(["plan", str(recipe), *map(str, arguments), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def cookbook_recipe(tmp_path, model_dir, train_file, **changes):
    """recipes/qwen3_32b.yaml pointed at a local model directory and train file."""
    recipe = yaml.safe_load((REPO / "recipes" / "qwen3_32b.yaml").read_text())
    recipe.update(model_name_or_path=str(model_dir), train_file=str(train_file), val_file=None, **changes)
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
@pytest.mark.parametrize("cpu_offload", [False, True])
def test_qwen3_32b_model_states_agree_with_deepspeed(capsys, tmp_path, qwen3_32b_dir, num_gpus, num_nodes, cpu_offload):
    recipe = cookbook_recipe(tmp_path, qwen3_32b_dir, tmp_path / "absent.parquet", cpu_offload=cpu_offload, sp_size=4)
    result = plan(capsys, recipe, "--num-gpus", num_gpus, "--num-nodes", num_nodes)
    cpu_gb, gpu_gb = deepspeed_table(result["params"], result["largest_layer_params"], num_gpus, num_nodes, capsys)[
        (cpu_offload, cpu_offload)
    ]
    assert result["model_states_gb_per_gpu"] == pytest.approx(gpu_gb, rel=0.05)
    assert result["host_gb_per_node"] == pytest.approx(cpu_gb, rel=0.05)
    assert result["params"] == qwen3_32b_params()


def test_tiny_model_states_agree_with_deepspeed_live(capsys, tmp_path, tiny_model_dir, small_data):
    """DeepSpeed counts the real model's parameters (tied embeddings once); plan counts the meta-device copy."""
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs, model_to_params
    from transformers import AutoModelForCausalLM

    total_params, largest_layer_params = model_to_params(AutoModelForCausalLM.from_pretrained(tiny_model_dir))
    recipe = tiny_recipe(tmp_path, tiny_model_dir, small_data[0], bf16=True)
    for cpu_offload in (False, True):
        result = plan(capsys, recipe, "--num-gpus", 2, "--cpu_offload", cpu_offload)
        cpu_bytes, gpu_bytes, _ = estimate_zero3_model_states_mem_needs(
            total_params,
            largest_layer_params,
            num_gpus_per_node=2,
            cpu_offload=cpu_offload,
            cpu_offload_params=cpu_offload,
        )
        assert (result["params"], result["largest_layer_params"]) == (total_params, largest_layer_params)
        assert result["model_states_gb_per_gpu"] == pytest.approx(gpu_bytes / GB, rel=0.05)
        assert result["host_gb_per_node"] == pytest.approx(cpu_bytes / GB, rel=0.05)


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
    """The documented 32B defaults (ZeRO-3, no offload, micro batch 12 at 4096) on 8 x 80 GB: the model states alone
    leave too little. Each advice, applied, fits; each labelled 'not enough alone' does not."""
    recipe = cookbook_recipe(tmp_path, qwen3_32b_dir, plan_data, cpu_offload=False)
    result = plan(capsys, recipe, "--num-gpus", 8)
    assert not result["fits"]
    assert result["model_states_gb_per_gpu"] > 0.85 * result["usable_gb_per_gpu"]
    fitting = [item for item in result["advice_detail"] if item["fits"]]
    assert {key for item in fitting for key in item["overrides"]} >= {"cpu_offload", "num_nodes"}
    assert_advice_verdicts(capsys, recipe, result, ["--num-gpus", 8])


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


def test_compute_estimate_scales_with_gpus_and_checkpointing(capsys, tmp_path, tiny_model_dir, small_data):
    recipe = tiny_recipe(tmp_path, tiny_model_dir, small_data[0], activation_checkpointing=False)
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
    assert "DOES NOT FIT" in out and "- cpu_offload true" in out


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
    """recipes/qwen3_32b.yaml offloads ~824 GB per node: a 512 GB node does not hold it; two nodes halve it."""
    recipe = REPO / "recipes" / "qwen3_32b.yaml"
    result = plan(capsys, recipe, "--num-gpus", 8, "--model_name_or_path", qwen3_32b_dir, "--cpu-memory-gb", 512)
    assert not result["fits"] and result["total_gb_per_gpu"] < result["usable_gb_per_gpu"]
    nodes = next(item for item in result["advice_detail"] if "num_nodes" in item["overrides"])
    assert nodes["fits"] and nodes["overrides"]["num_nodes"] == 2
    assert_advice_verdicts(
        capsys, recipe, result, ["--num-gpus", 8, "--model_name_or_path", qwen3_32b_dir, "--cpu-memory-gb", 512]
    )


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
    # the numbers recipes/launch.slurm and docs/training.md quote for this recipe on one node
    assert cli.main(["plan", str(recipe), "--num-gpus", "8"]) == 0
    out = capsys.readouterr().out
    assert "427.2 GB per save" in out and "sbatch --signal=B:USR1@720," in out
    assert "TORCH_ELASTIC_SHUTDOWN_TIMEOUT=720" in out
