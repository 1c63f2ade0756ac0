"""`judge-sft plan RECIPE.yaml --num-gpus N [--num-nodes M] [--key value ...]`: will this recipe fit, and how long will
it take? The recipe is resolved as run.py resolves it; the numbers come from judge_sft.planning.plan."""

import argparse
import json

from judge_sft.commands.argtypes import positive_int, positive_number, unit_fraction
from judge_sft.errors import JudgeSFTError
from judge_sft.planning.checkpoint_size import STOP_MARGIN, WRITE_GB_PER_S
from judge_sft.planning.memory_model import HEADROOM
from judge_sft.planning.placement import HOST_ADAM_GPARAMS_PER_S, PCIE_GB_PER_S
from judge_sft.planning.plan import MFU, PEAK_TFLOPS, make_plan
from judge_sft.train.arguments import parse_recipe

# The stated assumptions a user may replace: flag, type, default, help.
RATES = (
    ("--mfu", unit_fraction, MFU, "model FLOPs utilisation, in (0, 1]"),
    ("--peak-tflops", positive_number, PEAK_TFLOPS, "per-GPU dense bf16 peak (H100/H200 SXM: 989)"),
    (
        "--write-gb-per-s",
        positive_number,
        WRITE_GB_PER_S,
        "one node's write bandwidth to the checkpoint file system (GB/s), for the save time",
    ),
    (
        "--pcie-gb-per-s",
        positive_number,
        PCIE_GB_PER_S,
        "host<->GPU copy bandwidth per GPU, all GPUs copying at once (offload)",
    ),
    (
        "--host-adam-gparams-per-s",
        positive_number,
        HOST_ADAM_GPARAMS_PER_S,
        "DeepSpeed's CPU Adam throughput per node, in 1e9 parameters per second (offload)",
    ),
)


def add_machine_options(parser, default=None):
    """`default=argparse.SUPPRESS` for the second pass over the arguments after the recipe."""
    parser.add_argument("--num-gpus", type=positive_int, default=default, help="GPUs per node (required)")
    parser.add_argument(
        "--num-nodes", type=positive_int, default=1 if default is None else default, help="nodes (default: 1)"
    )
    parser.add_argument(
        "--gpu-memory-gb",
        type=positive_number,
        default=80.0 if default is None else default,
        help="memory of each GPU, GB (default: 80)",
    )
    parser.add_argument(
        "--cpu-memory-gb", type=positive_number, default=default, help="host RAM per node, checked when offloading"
    )
    for flag, convert, stated, help_text in RATES:
        parser.add_argument(flag, type=convert, default=stated if default is None else default, help=help_text)
    parser.add_argument(
        "--json", action="store_true", default=False if default is None else default, help="print one JSON object"
    )


def one_line_error(message):
    """plan's flags may come before or after the recipe: a bad one is one line, exit 1, in either place."""
    raise JudgeSFTError(message)


def add_arguments(parser):
    parser.error = one_line_error
    parser.add_argument("recipe", help="the recipe YAML that run.py would train")
    add_machine_options(parser)
    parser.add_argument(
        "overrides", nargs=argparse.REMAINDER, help="--key value recipe overrides, as run.py takes them"
    )


def split_options(args):
    """Options may follow the recipe, among the `--key value` overrides: pick them out of the remainder."""
    parser = argparse.ArgumentParser(prog="judge-sft plan", add_help=False, allow_abbrev=False)
    parser.error = one_line_error
    add_machine_options(parser, default=argparse.SUPPRESS)
    args, overrides = parser.parse_known_args(args.overrides, namespace=args)
    if args.num_gpus is None:
        raise JudgeSFTError("--num-gpus N (GPUs per node, N >= 1) is required")
    return args, overrides


def duration(seconds):
    if seconds < 10:
        return f"{seconds:.2g} s"  # a tiny model's step is milliseconds, not "0 s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def report(plan):
    """The plan as text."""
    gb = lambda value: f"{value:7.2f} GB"  # noqa: E731
    lines = [
        f"plan: {plan['recipe']} on {plan['num_nodes']} node(s) x {plan['num_gpus']} GPUs of {plan['gpu_memory_gb']:g} GB "
        "(GB = 2^30 bytes, as DeepSpeed prints)",
        "",
        f"model        {plan['model']}: {plan['params'] / 1e9:.2f}B parameters; largest layer {plan['largest_layer']} "
        f"({plan['largest_layer_params'] / 1e9:.2f}B)",
        f"parallelism  world size {plan['world_size']} = dp {plan['dp']} x sp {plan['sp']}; global batch "
        f"{plan['sequences_per_step']} = micro batch {plan['micro_batch']} x dp {plan['dp']} x gradient accumulation "
        f"{plan['grad_accum']}",
        f"per step     {plan['sequences_per_step']} sequences, at most {plan['tokens_per_step']:,} tokens "
        f"(max_length {plan['max_length']}); {plan['tokens_per_rank']:,} tokens per rank per micro step",
    ]
    if not plan["sp_heads_ok"]:
        lines.append(f"             warning: Ulysses needs the attention heads divisible by sp_size {plan['sp']}")
    if plan["train_rows"] is None:
        lines.append(f"data         {plan['data_note']}")
    else:
        lines += [
            f"data         {plan['train_file']}: {plan['rows_in_file']:,} rows (train_on {plan['train_on']}); at max_length "
            f"{plan['max_length']}: {plan['rows_truncated']:,} truncated, {plan['targets_cut']:,} lose trained tokens, "
            f"{plan['rows_dropped'] + plan['rows_without_target']:,} dropped; {plan['train_rows']:,} train",
            f"             mean {plan['mean_tokens_per_row']:,.0f} tokens per row ({plan['tokens_per_step_mean']:,.0f} per step); "
            f"{plan['steps_per_epoch']:,} optimizer steps per epoch, {plan['total_steps']:,} in all",
        ]
    offload = (
        f"ZeRO-3 over {plan['world_size']} GPUs, cpu_offload {plan['cpu_offload']}, master_weights "
        f"{plan['master_weights']}: {plan['model_states_bytes_per_param']} bytes/param sharded, "
        f"{plan['optimizer_step_gb_per_gpu']:.2f} GB of gradients at the step, the largest layer gathered"
    )
    checkpointing = "on" if plan["gradient_checkpointing"] else "off"
    recompute = " (x 4/3: checkpointing recomputes the forward)" if plan["gradient_checkpointing"] else ""
    verdict = "fits" if plan["fits"] else "DOES NOT FIT"
    host_check = "" if plan["cpu_memory_gb"] is None else f" (of {plan['cpu_memory_gb']:g} GB)"
    lines += [
        "",
        "memory per GPU",
        f"  model states  {gb(plan['model_states_gb_per_gpu'])}   {offload}",
        f"  host RAM      {gb(plan['host_gb_per_node'])}   per node{host_check}"
        + (
            f": {plan['host_bytes_per_param']} bytes/param x 1.5 for pinned buffers"
            if plan["host_bytes_per_param"]
            else ", DeepSpeed's estimate (loading)"
        ),
        f"  activations   {gb(plan['activations_gb_per_gpu'])}   gradient checkpointing {checkpointing}: with "
        f"{plan['activations_gb_with_checkpointing']:.2f} GB, without {plan['activations_gb_without_checkpointing']:.2f} GB",
        f"  loss          {gb(plan['loss_gb_per_gpu'])}   TRL's tiled log-probs: LM head fp32 gradient + one logits tile",
        f"  total         {gb(plan['total_gb_per_gpu'])}   of {plan['usable_gb_per_gpu']:.2f} GB usable "
        f"({plan['gpu_memory_gb']:g} GB less {HEADROOM:.0%} headroom): {verdict}",
        "",
        f"compute      6 x params x tokens + attention{recompute}, "
        f"at {plan['mfu']:.0%} MFU of {plan['peak_tflops']:g} TFLOPS per GPU (H100/H200 SXM bf16)",
        f"             {duration(plan['step_seconds_at_max_length'])} per optimizer step with every row at max_length"
        + (
            ""
            if plan["epoch_hours_estimate"] is None
            else f", {duration(plan['step_seconds_mean'])} with the data's rows: {duration(plan['epoch_hours_estimate'] * 3600)} "
            f"per epoch of {plan['steps_per_epoch']:,} steps ({plan['epoch_flops']:.2e} FLOPs)"
        ),
    ]
    if plan["cpu_offload"] != "none":
        lines.append(
            f"             + {plan['pcie_gb_per_gpu_per_step']:.1f} GB of PCIe copies per GPU at "
            f"{plan['pcie_gb_per_s']:g} GB/s and {plan['host_adam_seconds_per_step']:.1f} s of host Adam at "
            f"{plan['host_adam_gparams_per_s']:g}e9 params/s: {plan['step_seconds']:.1f} s per step"
        )
    lines += checkpoint_lines(plan)
    lines += ["", *options_table(plan)]
    lines += [f"note         {note}" for note in plan["notes"]]
    if plan["advice"]:
        lines += ["", "does not fit; each change, with its new estimate:"]
        lines += [f"  - {text}" for text in plan["advice"]]
    return "\n".join(lines)


STATES = {"fp32": "fp32 master weights, Adam m and v", "bf16_kahan": "bf16 master weights, Adam m and v, Kahan buffer"}


def checkpoint_lines(plan):
    warning = plan["stop_warning_seconds"]
    return [
        "",
        f"checkpoint   {plan['checkpoint_gb']:.1f} GB per save = model.safetensors {plan['checkpoint_weights_gb']:.1f} GB "
        f"(gathered in rank 0's host RAM) + optimizer shards {plan['checkpoint_optimizer_gb']:.1f} GB",
        f"             ({STATES[plan['master_weights']]}); node 0 writes {plan['checkpoint_gb_first_node']:.1f} GB: "
        f"{duration(plan['save_seconds'])} at {plan['write_gb_per_s']:g} GB/s per node",
        f"stop         the step in progress + the save, x {STOP_MARGIN:g} = {duration(warning)} before the hard kill: "
        f"sbatch --signal=B:USR1@{warning},",
        f"             TORCH_ELASTIC_SHUTDOWN_TIMEOUT={warning} (recipes/launch.slurm, docs/training.md)",
    ]


def options_table(plan):
    """Every placement of the model states, for this recipe on these machines."""
    lines = [
        "where the model states live (GPU and host bytes per parameter sharded; PCIe and host Adam per step; step "
        "time relative to no offload)",
        "  cpu_offload  master_weights  GPU B/param  host B/param   GB/GPU  host GB/node  PCIe GB/GPU  host Adam  "
        "step s  relative",
    ]
    for row in plan["options"]:
        mark = (
            "*" if (row["cpu_offload"], row["master_weights"]) == (plan["cpu_offload"], plan["master_weights"]) else " "
        )
        lines.append(
            f"{mark} {row['cpu_offload']:<11}  {row['master_weights']:<14}  {row['gpu_bytes_per_param']:>11}  "
            f"{row['host_bytes_per_param']:>12}  {row['total_gb_per_gpu']:>7.1f}  {row['host_gb_per_node']:>12.0f}  "
            f"{row['pcie_gb_per_gpu_per_step']:>11.1f}  {row['host_adam_seconds_per_step']:>8.1f}s  "
            f"{row['step_seconds']:>6.1f}  {row['relative_step_time']:>7.2f}x  "
            + ("fits" if row["fits"] else "does not fit")
        )
    faster = [row for row in plan["options"] if row["fits"] and row["step_seconds"] < plan["step_seconds"] * 0.99]
    if plan["fits"] and faster:
        best = min(faster, key=lambda row: row["step_seconds"])
        lines.append(
            f"  faster and fits: cpu_offload {best['cpu_offload']}, master_weights {best['master_weights']} "
            f"({best['step_seconds']:.1f} s per step instead of {plan['step_seconds']:.1f})"
        )
    return lines


def main(args):
    options, overrides = split_options(args)
    judge_args, training_args, model_args = parse_recipe([args.recipe, *overrides], for_launch=False)
    plan = make_plan(args.recipe, judge_args, training_args, model_args, options)
    print(json.dumps(plan, indent=2) if options.json else report(plan))
    return 0
