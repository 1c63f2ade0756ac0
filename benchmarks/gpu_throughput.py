"""Tokens/s/GPU and MFU on one GPU: judge-sft (padding-free) against TRL's defaults (padded batches), side by side.

    python benchmarks/gpu_throughput.py [--steps 20] [--micro-batch 12] [--max-length 4096]

A random-weight Qwen3-0.6B-shaped model (no download) in bf16, the real Qwen3 tokenizer, HelpSteer2-like
conversations. Both sides run as a single process through their real entry points (judge_sft/run.py and
benchmarks/plain_trl_sft.py). `--tiny` runs a 2-layer model in fp32 on CPU to check the script itself.
MFU = 6 x parameters x trained-on tokens per second / the GPU's dense bf16 peak (989 TFLOP/s for an H100 SXM).
"""

import argparse
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

from token_efficiency import conversation  # noqa: E402  (HelpSteer2-like lengths, 29% multi-turn)

PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def qwen3_0_6b_shape(tiny):
    if tiny:
        return dict(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2)
    return dict(hidden_size=1024, num_layers=28, num_heads=16, num_kv_heads=8)


def build_model(directory, tiny):
    import torch
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    from judge_sft.tiny_model import qwen3_tokenizer_dir

    shape = qwen3_0_6b_shape(tiny)
    tokenizer = AutoTokenizer.from_pretrained(qwen3_tokenizer_dir())
    config = Qwen3Config(
        vocab_size=151936,
        hidden_size=shape["hidden_size"],
        intermediate_size=3 * shape["hidden_size"],
        num_hidden_layers=shape["num_layers"],
        num_attention_heads=shape["num_heads"],
        num_key_value_heads=shape["num_kv_heads"],
        head_dim=128 if not tiny else 16,
        tie_word_embeddings=True,
        max_position_embeddings=40960,
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(config).to(torch.float32 if tiny else torch.bfloat16)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return sum(p.numel() for p in model.parameters())


def write_data(directory, rows):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(0)
    messages = [conversation(rng)[0] for _ in range(rows)]
    pq.write_table(pa.table({"messages": messages}), directory / "train.parquet")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--micro-batch", type=int, default=12)
    parser.add_argument("--max-length", type=int, default=4096)
    parser.add_argument("--gpu", default="H100", choices=sorted(PEAK_FLOPS))
    parser.add_argument("--attn", default="flash_attention_2", help="attention implementation on the GPU (or sdpa)")
    parser.add_argument("--tiny", action="store_true", help="2-layer fp32 model on CPU: checks the script, not the GPU")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        params = build_model(workdir / "model", args.tiny)
        write_data(workdir, rows=args.steps * args.micro_batch)
        recipe = yaml.safe_load((REPO / "recipes" / "tiny_cpu.yaml").read_text())
        recipe.update(
            model_name_or_path=str(workdir / "model"),
            train_file=str(workdir / "train.parquet"),
            val_file=None,
            total_batch_size=args.micro_batch,
            per_device_train_batch_size=args.micro_batch,
            max_steps=args.steps,
            max_length=args.max_length,
            bf16=not args.tiny,
            eval_strategy="no",
            save_strategy="no",
            report_to="none",
            logging_steps=args.steps,
            learning_rate=1e-5,
            skip_doctor=True,
            attn_implementation="sdpa" if args.tiny else args.attn,
        )
        results = {}
        for name, script in (
            ("judge-sft", REPO / "judge_sft" / "run.py"),
            ("trl-defaults", REPO / "benchmarks" / "plain_trl_sft.py"),
        ):
            results[name] = run_and_measure(name, script, recipe, workdir)
    peak = PEAK_FLOPS[args.gpu]
    print(
        f"model: {params / 1e6:.0f}M parameters; {args.steps} steps x micro batch {args.micro_batch}, max_length {args.max_length}"
    )
    print(f"{'':14}{'real tok/s':>12}{'MFU':>8}")
    for name, (seconds, real_tokens) in results.items():
        rate = real_tokens / seconds
        print(f"{name:14}{rate:12.0f}{6 * params * rate / peak:8.1%}")
    print(f"speed-up judge-sft / trl-defaults: {results['trl-defaults'][0] / results['judge-sft'][0]:.2f}x")


def run_and_measure(name, script, recipe, workdir):
    """(seconds in the training loop as the Trainer reports it, real tokens trained on)."""
    recipe = {**recipe, "output_dir": str(workdir / name)}
    if name == "trl-defaults":
        recipe = {
            k: v for k, v in recipe.items() if k not in ("total_batch_size", "sp_size", "cpu_offload", "skip_doctor")
        }
        recipe["padding_free"] = False
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, str(script), str(path)],
        cwd=REPO,
        text=True,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    if result.returncode:
        sys.exit(f"{name} failed:\n{result.stdout[-4000:]}")
    return parse_metric(result.stdout, "train_runtime"), real_token_count(recipe)


def parse_metric(stdout, key):
    line = [line for line in stdout.splitlines() if f"'{key}'" in line][-1]
    return float(line.split(f"'{key}': '")[1].split("'")[0])


def real_token_count(recipe):
    """Tokens of the rows trained on (the same for both sides): what a padded batch wastes is not counted."""
    from datasets import Dataset
    from transformers import AutoTokenizer

    from judge_sft.data.tokenization import tokenize_dataset
    from judge_sft.train.chat_templates import training_chat_template

    tokenizer = AutoTokenizer.from_pretrained(recipe["model_name_or_path"])
    rows, _ = tokenize_dataset(
        Dataset.from_parquet(recipe["train_file"]),
        tokenizer,
        training_chat_template(tokenizer),
        recipe["max_length"],
        "final",
    )
    return sum(len(ids) for ids in rows["input_ids"])  # the data is exactly steps x micro batch rows: all are used


if __name__ == "__main__":
    main()
