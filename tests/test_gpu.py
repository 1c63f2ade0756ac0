"""On a CUDA GPU (`pytest -m gpu`; skipped without one): the attention `auto` chooses keeps padding-free rows exact in
bf16, a one-process ZeRO-3 run trains, saves and resumes, and its peak memory is what `judge-sft plan` predicts."""

import json
import re
import subprocess
import sys

import pytest
import yaml
from conftest import REPO, conversation, launch, write_messages

pytestmark = pytest.mark.gpu
ZERO3 = REPO / "accelerate_configs" / "zero3.yaml"
LOSS_TOLERANCE = 0.01  # bf16: the two batch layouts round differently, in the third digit of a loss near 12
PLAN_TOLERANCE = 0.15


@pytest.fixture(scope="module")
def bf16_model(tmp_path_factory):
    """A 4-layer random Qwen3 in bf16 on the GPU: 128-wide heads as the real ones, 2 query heads per kv head."""
    import torch

    from judge_sft.tiny_model import build_tiny_model

    directory = tmp_path_factory.mktemp("bf16_model")
    build_tiny_model(directory, 512, 4, 4, 2, head_dim=128, dtype=torch.bfloat16, device="cuda")
    return directory


@pytest.fixture(scope="module")
def chosen_attention():
    from judge_sft.train import attention

    choice = attention.choose("auto", 1)
    print(f"attention: {choice.reason}")
    if choice.name == "torch_varlen":
        attention.varlen_attention.register()
    return choice.name


def load(model_dir, attn_implementation):
    """The model as training runs it: no cache (transformers finds the documents of a padding-free row only then)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.bfloat16, attn_implementation=attn_implementation
    )
    return model.cuda().eval()


def training_rows(model_dir, count):
    from transformers import AutoTokenizer

    from judge_sft.data.tokenization import tokenize_messages
    from judge_sft.train.chat_templates import training_chat_template

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    template = training_chat_template(tokenizer)
    rows = [tokenize_messages(conversation(i, 1 + i % 3), tokenizer, template, None, "final") for i in range(count)]
    return [{"input_ids": row["input_ids"], "labels": row["labels"]} for row in rows], tokenizer.pad_token_id


def collate(rows, pad_token_id, padding_free):
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    batch = DataCollatorForLanguageModeling(pad_token_id=pad_token_id, padding_free=padding_free)(rows)
    return {key: value.cuda() if hasattr(value, "cuda") else value for key, value in batch.items()}


def trained_tokens(batch):
    return int((batch["labels"][:, 1:] != -100).sum())


def test_padding_free_loss_with_the_chosen_attention_equals_padded_sdpa(bf16_model, chosen_attention):
    import torch

    rows, pad_token_id = training_rows(bf16_model, 12)
    padded, padding_free = collate(rows, pad_token_id, False), collate(rows, pad_token_id, True)
    assert padding_free["input_ids"].shape[0] == 1 and padded["input_ids"].shape[0] == 12
    assert trained_tokens(padding_free) == trained_tokens(padded)
    with torch.no_grad():
        reference = load(bf16_model, "sdpa")(**padded, use_cache=False).loss.item()
        loss = load(bf16_model, chosen_attention)(**padding_free, use_cache=False).loss.item()
    assert loss == pytest.approx(reference, abs=LOSS_TOLERANCE)


def test_documents_in_a_padding_free_row_do_not_attend_to_each_other(bf16_model, chosen_attention):
    import torch

    model = load(bf16_model, chosen_attention)
    torch.manual_seed(0)
    first, second = torch.randint(0, 1000, (1, 200), device="cuda"), torch.randint(0, 1000, (1, 300), device="cuda")
    positions = torch.cat([torch.arange(200), torch.arange(300)])[None].cuda()
    with torch.no_grad():
        logits = model(input_ids=torch.cat([first, second], dim=1), position_ids=positions, use_cache=False).logits
        changed = model(input_ids=torch.cat([1000 + first, second], dim=1), position_ids=positions, use_cache=False)
    changed = changed.logits
    assert (changed[0, :200] - logits[0, :200]).abs().max() > 0.1  # the first document did change
    torch.testing.assert_close(changed[0, 200:], logits[0, 200:], rtol=0, atol=1e-2)


# ---- one process, ZeRO-3, on one GPU: train, save, resume; peak memory against the plan


def long_rows(tokenizer, max_length, count):
    """Conversations of max_length - 8 to max_length tokens, the final answer inside: every row as long as `plan`
    assumes (its prediction is for rows at max_length), none cut."""
    from judge_sft.data.tokenization import tokenize_messages
    from judge_sft.train.chat_templates import training_chat_template

    template, rows = training_chat_template(tokenizer), []
    for index in range(count):
        words = [f"w{index}x{n}" for n in range(max_length)]
        low, high = 0, len(words)
        while high - low > 1:  # the longest prompt that keeps the row within max_length
            middle = (low + high) // 2
            messages = [
                {"role": "user", "content": " ".join(words[:middle])},
                {"role": "assistant", "content": f"Score: {index % 10}"},
            ]
            fits = len(tokenize_messages(messages, tokenizer, template, None, "final")["input_ids"]) <= max_length
            low, high = (middle, high) if fits else (low, middle)
        rows.append([{"role": "user", "content": " ".join(words[:low])}, messages[1]])
    return rows


@pytest.fixture(scope="module")
def zero3_runs(tmp_path_factory):
    """A 0.26B Qwen3 (vocab and heads as Qwen3's) trained 2 steps and saved, then relaunched to 3 steps."""
    import torch
    from transformers import AutoTokenizer

    from judge_sft.tiny_model import build_tiny_model

    directory = tmp_path_factory.mktemp("zero3")
    model = build_tiny_model(
        directory / "model", 1024, 8, 8, 4, head_dim=128, intermediate_size=3072, dtype=torch.bfloat16, device="cuda"
    )
    rows = long_rows(AutoTokenizer.from_pretrained(model), 1024, 16)
    train = write_messages(directory / "train.parquet", rows, {b"judge_sft.train_on": b"final"})
    recipe = yaml.safe_load((REPO / "recipes" / "tiny_cpu.yaml").read_text())
    recipe.update(
        model_name_or_path=str(model), train_file=str(train), val_file=None, output_dir=str(directory / "out"),
        attn_implementation="auto", bf16=True, dtype="bfloat16", total_batch_size=4, per_device_train_batch_size=4,
        max_length=1024, max_steps=2, save_steps=2, eval_strategy="no", report_to="none",
    )  # fmt: skip
    path = directory / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    first = launch(path, config=ZERO3, num_processes=1)
    resumed = launch(path, "--max_steps", "3", config=ZERO3, num_processes=1)
    return path, directory / "out", first.stdout, resumed.stdout


def test_one_gpu_zero3_run_trains_and_saves_consolidated_safetensors(zero3_runs):
    from safetensors import safe_open

    _, out, output, _ = zero3_runs
    assert "attention: auto -> " in output
    assert (out / "checkpoint-2").is_dir()
    with safe_open(str(out / "model.safetensors"), "pt") as weights:
        layers = {int(name.split(".")[2]) for name in weights.keys() if name.startswith("model.layers.")}
        embedding = weights.get_tensor("model.embed_tokens.weight")
    assert layers == set(range(8))
    assert embedding.shape == (151669, 1024)  # whole, not a ZeRO-3 shard


def test_one_gpu_zero3_run_resumes_from_its_checkpoint(zero3_runs):
    _, out, _, resumed = zero3_runs
    assert f"resuming from {out / 'checkpoint-2'}" in resumed
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 3


def test_measured_peak_gpu_memory_is_within_15_percent_of_plan(zero3_runs):
    import torch

    recipe, _, output, _ = zero3_runs
    measured = float(re.findall(r"peak GPU memory: ([\d.]+) GB", output)[-1])
    memory_gb = torch.cuda.get_device_properties(0).total_memory / 2**30
    command = [sys.executable, "-m", "judge_sft.cli", "plan", str(recipe), "--num-gpus", "1", "--json"]
    plan = subprocess.run([*command, "--gpu-memory-gb", f"{memory_gb:g}"], capture_output=True, text=True, check=True)
    predicted = json.loads(plan.stdout)["total_gb_per_gpu"]
    print(f"peak GPU memory: measured {measured:.2f} GB, plan {predicted:.2f} GB")
    assert abs(predicted - measured) <= PLAN_TOLERANCE * measured
