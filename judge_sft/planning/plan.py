"""Will a recipe fit, and how long will it take (`judge-sft plan`)? The world size is the machines named; memory comes
from memory_model, steps and truncation from the train file tokenised as training tokenises it, advice from advice.py,
what a checkpoint writes and how early to ask for a stop from checkpoint_size.
"""

import math
import os
from dataclasses import dataclass

from judge_sft.data.token_profile import profile_file
from judge_sft.errors import JudgeSFTError
from judge_sft.planning.advice import Planner
from judge_sft.planning.checkpoint_size import checkpoint_size, stop_warning_seconds
from judge_sft.planning.memory_model import GB, Setup, model_shape, training_flops
from judge_sft.planning.placement import HOST_ADAM_GPARAMS_PER_S, PCIE_GB_PER_S
from judge_sft.planning.token_checks import positions_problem
from judge_sft.train.chat_templates import recipe_tokenizer
from judge_sft.train.launch import plan_batch
from judge_sft.train.model_config import load_model_config

# H100 / H200 SXM dense bf16 peak; the MFU is a stated assumption, not a measurement.
PEAK_TFLOPS = 989.0
MFU = 0.35


@dataclass
class Machines:
    """What plan is told about the machines (`judge-sft plan`'s options; run.py fills it from torch and the launch)."""

    num_gpus: int  # per node
    num_nodes: int = 1
    gpu_memory_gb: float = 80.0
    cpu_memory_gb: float | None = None  # per node; None: not checked
    mfu: float = MFU
    peak_tflops: float = PEAK_TFLOPS
    pcie_gb_per_s: float = PCIE_GB_PER_S
    host_adam_gparams_per_s: float = HOST_ADAM_GPARAMS_PER_S


def recipe_setup(judge_args, training_args, model_args, options):
    mixed = bool(training_args.bf16 or training_args.fp16)
    return Setup(
        num_gpus=options.num_gpus,
        num_nodes=options.num_nodes,
        micro_batch=training_args.per_device_train_batch_size,
        max_length=training_args.max_length,
        sp_size=judge_args.sp_size,
        checkpointing=bool(training_args.activation_checkpointing),
        cpu_offload=judge_args.cpu_offload,
        mixed_precision=mixed,
        activation_bytes=2 if mixed or model_args.dtype in ("bfloat16", "float16") else 4,
        master_weights=judge_args.master_weights,
    )


def data_profile(judge_args, training_args, model_args):
    """(profile, note): the train file tokenised as training does, or None and why not."""
    if not os.path.isfile(judge_args.train_file):
        return None, f"{judge_args.train_file}: not found here; steps per epoch and truncation unknown"
    try:
        tokenizer = recipe_tokenizer(model_args, training_args)
    except JudgeSFTError as error:
        return None, f"not tokenised: {error}"
    return profile_file(judge_args.train_file, judge_args, training_args, tokenizer), None


def make_plan(recipe, judge_args, training_args, model_args, options):
    if training_args.max_length is None:
        raise JudgeSFTError("recipe: plan needs `max_length` (the longest sequence decides the peak memory)")
    setup = recipe_setup(judge_args, training_args, model_args, options)
    batch = plan_batch(judge_args.total_batch_size, setup.micro_batch, setup.world_size, setup.sp_size)
    model_config = load_model_config(model_args)
    shape = model_shape(model_config)
    profile, data_note = data_profile(judge_args, training_args, model_args)
    planner = Planner(shape, setup, judge_args.total_batch_size, options, profile)
    memory = planner.estimate()
    fits = planner.fits(memory)
    plan = {
        "recipe": str(recipe),
        "model": model_args.model_name_or_path,
        "num_gpus": setup.num_gpus,
        "num_nodes": setup.num_nodes,
        "gpu_memory_gb": options.gpu_memory_gb,
        "cpu_memory_gb": options.cpu_memory_gb,
        "world_size": setup.world_size,
        "dp": batch.dp,
        "sp": setup.sp_size,
        "micro_batch": setup.micro_batch,
        "grad_accum": batch.grad_accum,
        "sequences_per_step": judge_args.total_batch_size,
        "tokens_per_step": judge_args.total_batch_size * setup.max_length,
        "tokens_per_rank": setup.tokens_per_rank,
        "max_length": setup.max_length,
        "params": shape.params,
        "largest_layer": shape.largest_layer,
        "largest_layer_params": shape.largest_layer_params,
        "gradient_checkpointing": setup.checkpointing,
        "cpu_offload": setup.cpu_offload,
        "master_weights": setup.master_weights,
        "mixed_precision": setup.mixed_precision,
        "model_states_gb_per_gpu": memory.model_states.gpu_bytes / GB,
        "model_states_bytes_per_param": memory.model_states.sharded_bytes_per_param,
        "host_bytes_per_param": memory.model_states.host_bytes_per_param,
        "optimizer_step_gb_per_gpu": memory.model_states.step_bytes / GB,
        "host_gb_per_node": memory.model_states.host_bytes_per_node / GB,
        "activations_gb_per_gpu": memory.activations / GB,
        "activations_gb_with_checkpointing": memory.activations_with_checkpointing / GB,
        "activations_gb_without_checkpointing": memory.activations_without_checkpointing / GB,
        "loss_gb_per_gpu": memory.loss / GB,
        "total_gb_per_gpu": memory.total / GB,
        "usable_gb_per_gpu": planner.usable_gb(),
        "fits": fits,
        "sp_heads_ok": planner.sp_allowed(setup.sp_size),
        "mfu": options.mfu,
        "peak_tflops": options.peak_tflops,
        "pcie_gb_per_s": options.pcie_gb_per_s,
        "host_adam_gparams_per_s": options.host_adam_gparams_per_s,
        "pcie_gb_per_gpu_per_step": planner.pcie_seconds(setup) * options.pcie_gb_per_s,
        "host_adam_seconds_per_step": planner.host_adam_seconds(setup),
        "step_seconds": planner.step_seconds(),
        "options": placement_options(planner),
        "data_note": data_note,
        "notes": unmodelled(judge_args, training_args, model_args)
        + [note for note in [positions_problem(model_config, training_args.max_length)] if note],
    }
    plan.update(data_numbers(profile, setup, batch, judge_args, training_args))
    plan.update(compute_numbers(shape, setup, profile, judge_args, options))
    epoch_hours, steps = plan["epoch_hours_estimate"], plan["steps_per_epoch"]
    plan["step_seconds_mean"] = None if epoch_hours is None else epoch_hours * 3600 / steps
    plan.update(checkpoint_numbers(shape, setup, options, plan["step_seconds_at_max_length"]))
    advice = [] if fits else planner.advice()
    plan["advice"] = [item.text for item in advice]
    plan["advice_detail"] = [
        {
            "text": item.text,
            "overrides": item.overrides,
            "fits": item.fits,
            "total_gb_per_gpu": item.estimate.total / GB,
            "step_seconds": item.step_seconds,
        }
        for item in advice
    ]
    return plan


def placement_options(planner):
    """Every placement of the model states for this recipe on these machines, with its memory and step time; the
    relative step time is against the step without offload."""
    fastest = planner.compute_seconds(planner.setup)
    rows = []
    for setup in planner.placements():
        memory = planner.estimate(setup)
        step = planner.step_seconds(setup)
        rows.append(
            {
                "cpu_offload": setup.cpu_offload,
                "master_weights": setup.master_weights,
                "gpu_bytes_per_param": memory.model_states.sharded_bytes_per_param,
                "host_bytes_per_param": memory.model_states.host_bytes_per_param,
                "model_states_gb_per_gpu": memory.model_states.gpu_bytes / GB,
                "total_gb_per_gpu": memory.total / GB,
                "host_gb_per_node": memory.model_states.host_bytes_per_node / GB,
                "pcie_gb_per_gpu_per_step": planner.pcie_seconds(setup) * planner.options.pcie_gb_per_s,
                "host_adam_seconds_per_step": planner.host_adam_seconds(setup),
                "step_seconds": step,
                "relative_step_time": step / fastest,
                "fits": planner.fits(memory),
            }
        )
    return rows


def memory_verdict(judge_args, training_args, model_args, machines):
    """None when the recipe fits `machines`, else one line: the estimate against the memory, and plan's first advice.
    None too for LoRA and the tiled MLP, which the model does not cover: its estimate would be an upper bound."""
    if model_args.use_peft or judge_args.tiled_mlp:
        return None
    setup = recipe_setup(judge_args, training_args, model_args, machines)
    planner = Planner(model_shape(load_model_config(model_args)), setup, judge_args.total_batch_size, machines)
    memory = planner.estimate()
    if planner.fits(memory):
        return None
    need = (
        f"{memory.total / GB:.1f} GB per GPU of {planner.usable_gb():.1f} GB usable on {machines.gpu_memory_gb:.1f} GB"
    )
    if not memory.fits_host(machines.cpu_memory_gb):
        need = f"{memory.model_states.host_bytes_per_node / GB:.0f} GB of host RAM of {machines.cpu_memory_gb:.0f} GB"
    advice = planner.advice()
    first = f"; plan's first advice: {advice[0].text}" if advice else ""
    return f"plan: this run needs {need}: it will not fit{first}"


def unmodelled(judge_args, training_args, model_args):
    """Recipe settings the memory model does not cover: its numbers are for full fine-tuning of a dense model with a
    varlen (flash-type) attention kernel."""
    notes = []
    dense_mask = model_args.attn_implementation in (None, "sdpa", "eager")
    if dense_mask and training_args.padding_free and judge_args.sp_size == 1:
        notes.append(
            f"attn_implementation {model_args.attn_implementation or 'sdpa'}: padding-free rows get a [tokens x tokens] "
            "block-causal mask, not counted above; on GPUs `auto` takes a varlen kernel (docs/gpu.md)"
        )
    if model_args.use_peft:
        notes.append(
            "use_peft: the memory above is full fine-tuning's, and so is the checkpoint size; LoRA keeps (and "
            "saves) optimizer states for the adapters only"
        )
    if getattr(judge_args, "tiled_mlp", False):
        notes.append("tiled_mlp: not modelled; the activations above are without it (an upper bound)")
    return notes


def data_numbers(profile, setup, batch, judge_args, training_args):
    if profile is None:
        return {"train_rows": None, "steps_per_epoch": None, "total_steps": None}
    kept = profile.at(setup.max_length)
    micro_batches_per_rank = math.ceil(kept.rows / (setup.micro_batch * batch.dp))
    steps_per_epoch = max(math.ceil(micro_batches_per_rank / batch.grad_accum), 1)  # as transformers' Trainer counts
    total_steps = (
        training_args.max_steps
        if training_args.max_steps > 0
        else math.ceil(training_args.num_train_epochs * steps_per_epoch)
    )
    mean_tokens = float(kept.lengths.mean()) if kept.rows else 0.0
    return {
        "train_file": profile.path,
        "train_on": profile.train_on,
        "train_rows": kept.rows,
        "rows_in_file": profile.rows_in_file,
        "rows_without_target": profile.rows_without_target,
        "rows_truncated": kept.rows_truncated,
        "targets_cut": kept.targets_cut,
        "rows_dropped": kept.rows_dropped,
        "mean_tokens_per_row": mean_tokens,
        "tokens_per_step_mean": mean_tokens * judge_args.total_batch_size,
        "trained_tokens_fraction": kept.trained_tokens / max(int(kept.lengths.sum()), 1),
        "steps_per_epoch": steps_per_epoch,
        "total_steps": total_steps,
    }


def compute_numbers(shape, setup, profile, judge_args, options):
    throughput = setup.world_size * options.peak_tflops * 1e12 * options.mfu
    full_step = [setup.max_length] * judge_args.total_batch_size
    numbers = {"step_seconds_at_max_length": training_flops(shape, full_step, setup.checkpointing) / throughput}
    if profile is None:
        numbers.update(epoch_flops=None, epoch_hours_estimate=None)
    else:
        flops = training_flops(shape, profile.at(setup.max_length).lengths, setup.checkpointing)
        numbers.update(epoch_flops=flops, epoch_hours_estimate=flops / throughput / 3600)
    return numbers


def checkpoint_numbers(shape, setup, options, step_seconds):
    size = checkpoint_size(shape, setup)
    save_seconds = size.save_seconds(options.write_gb_per_s)
    return {
        "checkpoint_gb": size.total_bytes / GB,
        "checkpoint_weights_gb": size.weights_bytes / GB,
        "checkpoint_optimizer_gb": size.optimizer_bytes / GB,
        "checkpoint_gb_first_node": size.first_node_bytes / GB,
        "write_gb_per_s": options.write_gb_per_s,
        "save_seconds": save_seconds,
        "stop_warning_seconds": stop_warning_seconds(step_seconds, save_seconds),
    }
