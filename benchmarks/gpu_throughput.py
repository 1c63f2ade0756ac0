"""Tokens/s/GPU, MFU, step time and peak memory on one GPU: judge-sft (padding-free, `attn_implementation: auto`)
against TRL's defaults (padded batches, sdpa), side by side in one run, next to `judge-sft plan`'s predicted peak.

    python benchmarks/gpu_throughput.py [--steps 12] [--micro-batch 12] [--max-length 4096] [--json FILE]
    python benchmarks/gpu_throughput.py --tiny --steps 4 --micro-batch 2 --max-length 512   # CPU check of the script

A random-weight Qwen3-4B-shaped model (hidden 2560, 36 layers, 32 heads of 128, 8 kv heads, intermediate 9728, tied
151936 vocab) built on the GPU in bf16, the real Qwen3 tokenizer, HelpSteer2-like conversations, micro batch 12,
max_length 4096, gradient checkpointing. Each side is one process under ZeRO-3 (accelerate_configs/zero3.yaml,
--num_processes 1) through its real entry point: judge_sft/run.py and benchmarks/plain_trl_sft.py. Both log every
step to TensorBoard; the rates come from the steps after the first `--warmup`, on the wall clock of those events:
real tokens/s = growth of TRL's `num_tokens` (tokens of the rows, no padding) over elapsed time, MFU = 6 x parameters x
real tokens/s over the GPU's dense bf16 peak (`--peak-tflops`, 989 for H100/H200 SXM). `--tiny`: a 2-layer fp32 model
on CPU, the same code path, numbers meaningless.
"""

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

from token_efficiency import conversation  # noqa: E402  (HelpSteer2-like lengths, 29% multi-turn)

QWEN3_4B = dict(
    hidden_size=2560,
    num_layers=36,
    num_heads=32,
    num_kv_heads=8,
    head_dim=128,
    intermediate_size=9728,
    vocab_size=151936,
)
TINY = dict(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2)
SIDES = {"judge-sft": REPO / "judge_sft" / "run.py", "trl-defaults": REPO / "benchmarks" / "plain_trl_sft.py"}
PEAK_MEMORY = re.compile(r"peak GPU memory: ([\d.]+) GB")


def build_model(directory, tiny):
    """The model directory and its parameter count (as `judge-sft plan` counts them)."""
    import torch
    from transformers import AutoConfig

    from judge_sft.planning.memory_model import model_shape
    from judge_sft.tiny_model import build_tiny_model

    if tiny:
        build_tiny_model(directory, **TINY)
    else:
        build_tiny_model(directory, **QWEN3_4B, dtype=torch.bfloat16, device="cuda")
        torch.cuda.empty_cache()
    return model_shape(AutoConfig.from_pretrained(directory)).params


def write_data(path, rows):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(0)
    pq.write_table(pa.table({"messages": [conversation(rng)[0] for _ in range(rows)]}), path)
    return path


def recipes(workdir, model, args):
    """(judge-sft's recipe, TRL's): the same data, batch, optimizer and steps; TRL keeps its padded batches and sdpa."""
    judge = yaml.safe_load((REPO / "recipes" / "tiny_cpu.yaml").read_text())
    judge.update(
        model_name_or_path=str(model),
        train_file=str(write_data(workdir / "train.parquet", args.steps * args.micro_batch)),
        val_file=None,
        total_batch_size=args.micro_batch,
        per_device_train_batch_size=args.micro_batch,
        max_steps=args.steps,
        max_length=args.max_length,
        bf16=not args.tiny,
        dtype="float32" if args.tiny else "bfloat16",
        attn_implementation="sdpa" if args.tiny else "auto",
        eval_strategy="no",
        save_strategy="no",
        report_to="tensorboard",
        logging_steps=1,
        learning_rate=1e-5,
        skip_doctor=True,
    )
    trl = {key: value for key, value in judge.items() if key not in ("total_batch_size", "sp_size", "cpu_offload")}
    trl.update(padding_free=False, attn_implementation=None)
    trl.update(per_device_train_batch_size=args.trl_micro_batch, gradient_accumulation_steps=args.trl_grad_accum)
    if args.tiny:
        trl["ddp_backend"] = "gloo"  # judge-sft sets it on CPU hosts itself
    return judge, trl


def run(name, recipe, workdir, tiny, logs):
    """Launch one side; its output text and output directory. Its log goes to `logs`."""
    output_dir = workdir / name
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**recipe, "output_dir": str(output_dir)}))
    config = REPO / "accelerate_configs" / ("cpu_zero3_2proc.yaml" if tiny else "zero3.yaml")
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config), "--num_processes", "1"]
    result = subprocess.run(
        [*command, str(SIDES[name]), str(path)], cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    (Path(logs) / f"{name}.log").write_text(result.stdout)
    if result.returncode:
        sys.exit(f"{name} failed ({result.returncode}):\n{result.stdout[-4000:]}")
    return result.stdout, output_dir


def step_events(output_dir):
    """[(step, wall time, cumulative real tokens)] from the run's TensorBoard events, one per optimizer step (the
    summary logged after training repeats the last step: its first event is the step's)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    first_of_step = {}
    for folder in sorted({path.parent for path in output_dir.glob("runs/**/events.out.tfevents.*")}):
        accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        accumulator.Reload()
        if "train/num_tokens" in accumulator.Tags()["scalars"]:
            for event in accumulator.Scalars("train/num_tokens"):
                first_of_step.setdefault(event.step, (event.step, event.wall_time, event.value))
    return sorted(first_of_step.values())


def measure(output, output_dir, params, peak_tflops, warmup):
    events = step_events(output_dir)
    window = events[min(warmup, len(events) - 2) :]
    (_, start, tokens_before), (_, end, tokens_after) = window[0], window[-1]
    tokens_per_second = (tokens_after - tokens_before) / (end - start)
    peak = PEAK_MEMORY.findall(output)
    return {
        "steps_measured": len(window) - 1,
        "tokens_per_second": tokens_per_second,
        "mfu": 6 * params * tokens_per_second / (peak_tflops * 1e12),
        "step_seconds": statistics.median(b[1] - a[1] for a, b in zip(window, window[1:])),
        "peak_gb": float(peak[-1]) if peak else None,
    }


def planned_peak(recipe_path, gpu_memory_gb):
    """`judge-sft plan`'s total per GPU for this recipe on one GPU (every row at max_length: a worst case)."""
    command = [sys.executable, "-m", "judge_sft.cli", "plan", str(recipe_path), "--num-gpus", "1"]
    command += ["--gpu-memory-gb", f"{gpu_memory_gb:g}", "--json"]
    result = subprocess.run(command, cwd=REPO, text=True, capture_output=True, check=True)
    return json.loads(result.stdout)["total_gb_per_gpu"]


def gpu_description():
    """(name, memory GiB) of this GPU, or of the GPU stated in JUDGE_SFT_GPU; ("CPU", 80) without either."""
    from judge_sft.train.attention import this_device

    device = this_device()
    if device.memory_bytes is None:
        return "CPU", 80.0
    return device.name, device.memory_bytes / 2**30


def trl_micro_batch(recipe_path, micro_batch, gpu_memory_gb):
    """TRL's side pads every micro batch to its longest row. (micro batch, longest row, plan's GB at micro_batch):
    the largest divisor of `micro_batch` (gradient accumulation keeps the global batch) at which plan fits every row
    padded to the data's longest on a GPU of `gpu_memory_gb`; 1 if none does."""
    from judge_sft.planning.advice import Planner
    from judge_sft.planning.memory_model import GB, model_shape
    from judge_sft.planning.plan import Machines, data_profile, recipe_setup
    from judge_sft.train.arguments import parse_recipe
    from judge_sft.train.model_config import load_model_config

    judge_args, training_args, model_args = parse_recipe([str(recipe_path)], for_launch=False)
    profile, _ = data_profile(judge_args, training_args, model_args)
    training_args.max_length = longest = int(profile.at(training_args.max_length).lengths.max())
    shape, machines = model_shape(load_model_config(model_args)), Machines(num_gpus=1, gpu_memory_gb=gpu_memory_gb)
    planned = {}
    for micro in sorted((size for size in range(1, micro_batch + 1) if micro_batch % size == 0), reverse=True):
        training_args.per_device_train_batch_size = micro
        setup = recipe_setup(judge_args, training_args, model_args, machines)
        planner = Planner(shape, setup, judge_args.total_batch_size, machines)
        memory = planner.estimate()
        planned[micro] = memory.total / GB
        if planner.fits(memory):
            return micro, longest, planned[micro_batch]
    return 1, longest, planned[micro_batch]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2, help="first steps left out of the rates")
    parser.add_argument("--micro-batch", type=int, default=12, help="judge-sft's; TRL's is sized from plan")
    parser.add_argument("--max-length", type=int, default=4096)
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak per GPU (H100/H200 SXM)")
    parser.add_argument("--tiny", action="store_true", help="2-layer fp32 model on CPU: checks the script, not the GPU")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--logs", help="keep each side's log in this directory")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    gpu, gpu_memory_gb = gpu_description()
    results = {"gpu": gpu, "steps": args.steps, "micro_batch": args.micro_batch, "max_length": args.max_length}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        results["params"] = build_model(workdir / "model", args.tiny)
        args.trl_micro_batch, args.trl_grad_accum = args.micro_batch, 1
        judge, _ = recipes(workdir, workdir / "model", args)
        (workdir / "sizing.yaml").write_text(yaml.safe_dump({**judge, "output_dir": str(workdir / "sizing")}))
        args.trl_micro_batch, longest, padded_gb = trl_micro_batch(
            workdir / "sizing.yaml", args.micro_batch, gpu_memory_gb
        )
        args.trl_grad_accum = args.micro_batch // args.trl_micro_batch
        results["trl_batch"] = {
            "micro_batch": args.trl_micro_batch,
            "gradient_accumulation": args.trl_grad_accum,
            "longest_row": longest,
            "plan_gb_at_full_micro_batch": padded_gb,
            "gpu_memory_gb": gpu_memory_gb,
        }
        for name, recipe in zip(SIDES, recipes(workdir, workdir / "model", args)):
            output, output_dir = run(name, recipe, workdir, args.tiny, args.logs or workdir)
            results[name] = measure(output, output_dir, results["params"], args.peak_tflops, args.warmup)
            if name == "judge-sft":
                chosen = re.findall(r"attention: (.*)", output)
                results["attention"] = chosen[-1] if chosen else None
        results["plan_peak_gb"] = planned_peak(workdir / "judge-sft.yaml", gpu_memory_gb)
    results["speedup"] = results["judge-sft"]["tokens_per_second"] / results["trl-defaults"]["tokens_per_second"]
    print(report(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def report(results):
    gb = lambda value: "n/a" if value is None else f"{value:.1f}"  # noqa: E731
    lines = [
        f"{results['gpu']}: {results['params'] / 1e9:.2f}B parameters; {results['steps']} steps x micro batch "
        f"{results['micro_batch']}, max_length {results['max_length']}",
        f"judge-sft attention: {results['attention']}",
        trl_batch_line(results["trl_batch"]),
        f"{'':14}{'real tok/s/GPU':>15}{'MFU':>8}{'step s':>8}{'peak GB':>9}{'plan GB':>9}",
    ]
    for name in SIDES:
        side = results[name]
        lines.append(
            f"{name:14}{side['tokens_per_second']:15.0f}{side['mfu']:8.1%}{side['step_seconds']:8.2f}"
            f"{gb(side['peak_gb']):>9}{gb(results['plan_peak_gb']) if name == 'judge-sft' else '':>9}"
        )
    lines.append(f"speed-up judge-sft / trl-defaults: {results['speedup']:.2f}x")
    return "\n".join(lines)


def trl_batch_line(batch):
    line = (
        f"trl-defaults: micro batch {batch['micro_batch']} x gradient accumulation {batch['gradient_accumulation']}: "
        f"plan puts the full micro batch, padded to the longest row ({batch['longest_row']} tokens), at "
        f"{batch['plan_gb_at_full_micro_batch']:.1f} GB"
    )
    if batch["gradient_accumulation"] > 1:
        line += f", over this GPU's {batch['gpu_memory_gb']:.0f} GB: both sides at one micro batch need a larger GPU"
    return line


if __name__ == "__main__":
    main()
