"""`judge-sft plan RECIPE.yaml --num-gpus N [--num-nodes M] [--key value ...]`: will this recipe fit, and how long will it take?

The recipe is resolved as run.py resolves it (same parser, overrides and errors); the world size is the machines
named here. Memory comes from judge_sft.memory_model, steps and truncation from the train file tokenised as
training tokenises it. When the run does not fit, each of the cookbook's OOM knobs is tried and its new estimate shown.
"""

import argparse
import json
import math
import os
from dataclasses import dataclass, replace

from judge_sft.chat_templates import recipe_tokenizer
from judge_sft.configs import parse_recipe, plan_batch
from judge_sft.errors import JudgeSFTError
from judge_sft.memory_model import GB, HEADROOM, Setup, estimate, model_shape, training_flops
from judge_sft.token_profile import profile_file

# H100 / H200 SXM dense bf16 peak; the MFU is a stated assumption, not a measurement.
PEAK_TFLOPS = 989.0
MFU = 0.35
MAX_NODES_TRIED = 64
MAX_LENGTH_STEP = 256


def add_machine_options(parser, default=None):
    """`default=argparse.SUPPRESS` for the second pass over the arguments after the recipe."""
    parser.add_argument("--num-gpus", type=int, default=default, help="GPUs per node")
    parser.add_argument("--num-nodes", type=int, default=1 if default is None else default)
    parser.add_argument("--gpu-memory-gb", type=float, default=80.0 if default is None else default)
    parser.add_argument("--cpu-memory-gb", type=float, default=default, help="host RAM per node, checked when offloading")
    parser.add_argument("--mfu", type=float, default=MFU if default is None else default, help="model FLOPs utilisation")
    parser.add_argument("--peak-tflops", type=float, default=PEAK_TFLOPS if default is None else default,
                        help="per-GPU dense bf16 peak (H100/H200 SXM: 989)")
    parser.add_argument("--json", action="store_true", default=False if default is None else default,
                        help="print one JSON object")


def add_arguments(parser):
    parser.add_argument("recipe", help="the recipe YAML that run.py would train")
    add_machine_options(parser)
    parser.add_argument("overrides", nargs=argparse.REMAINDER, help="--key value recipe overrides, as run.py takes them")


def split_options(args):
    """Options may follow the recipe, among the `--key value` overrides: pick them out of the remainder."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    add_machine_options(parser, default=argparse.SUPPRESS)
    args, overrides = parser.parse_known_args(args.overrides, namespace=args)
    if not args.num_gpus or args.num_gpus < 1 or args.num_nodes < 1:
        raise JudgeSFTError("plan: --num-gpus N (per node, N >= 1) is required; --num-nodes M >= 1")
    return args, overrides


@dataclass
class Advice:
    text: str
    overrides: dict  # recipe keys, and num_gpus / num_nodes for the machines
    estimate: object
    fits: bool


class Planner:
    def __init__(self, shape, setup, total_batch_size, options, profile=None):
        self.shape, self.setup, self.total_batch_size = shape, setup, total_batch_size
        self.options, self.profile = options, profile

    def estimate(self, setup=None):
        return estimate(self.shape, setup or self.setup)

    def fits(self, memory):
        return memory.fits(self.options.gpu_memory_gb, self.options.cpu_memory_gb)

    def usable_gb(self):
        return self.options.gpu_memory_gb * (1 - HEADROOM)

    def accumulation(self, setup):
        """Gradient accumulation for `setup`, or None when the global batch does not divide."""
        if setup.world_size % setup.sp_size:
            return None
        dp = setup.world_size // setup.sp_size
        per_micro_step = setup.micro_batch * dp
        return None if self.total_batch_size % per_micro_step else self.total_batch_size // per_micro_step

    def sp_allowed(self, sp_size):
        """Ulysses splits attention heads over the sp ranks (DeepSpeed's UlyssesSPAttentionHF checks the same)."""
        kv = self.shape.num_kv_heads
        return self.shape.num_heads % sp_size == 0 and (kv % sp_size == 0 or sp_size % kv == 0)

    def advice(self):
        found = [self.micro_batch_advice(), self.checkpointing_advice(), self.max_length_advice(),
                 self.offload_advice(), self.sp_advice(), self.more_gpus_advice()]
        found = [item for item in found if item is not None]
        if not any(item.fits for item in found):
            combined = self.combined_advice()
            if combined is not None:
                found.append(combined)
        return sorted(found, key=lambda item: not item.fits)  # what fits first, in the cookbook's order

    def describe(self, memory, what):
        verdict = "fits" if self.fits(memory) else "not enough alone"
        if not memory.fits_host(self.options.cpu_memory_gb):
            verdict = f"host RAM {memory.model_states.host_bytes_per_node / GB:.3g} GB > {self.options.cpu_memory_gb:g} GB"
        return f"{what}: {memory.total / GB:.3g} GB per GPU -> {verdict}"

    def make(self, what, overrides, setup):
        memory = self.estimate(setup)
        return Advice(self.describe(memory, what), overrides, memory, self.fits(memory))

    def first_that_fits(self, candidates, field):
        """The first candidate value of `field` whose plan fits, else the last one tried (the nearest to fitting)."""
        return next((value for value in candidates if self.fits(self.estimate(replace(self.setup, **{field: value})))),
                    candidates[-1])

    def micro_batch_advice(self):
        candidates = [b for b in range(self.setup.micro_batch - 1, 0, -1)
                      if self.accumulation(replace(self.setup, micro_batch=b))]
        if not candidates:
            return None
        chosen = self.first_that_fits(candidates, "micro_batch")
        setup = replace(self.setup, micro_batch=chosen)
        return self.make(f"per_device_train_batch_size {chosen} (gradient accumulation {self.accumulation(setup)} keeps "
                         f"the global batch of {self.total_batch_size})", {"per_device_train_batch_size": chosen}, setup)

    def checkpointing_advice(self):
        if self.setup.checkpointing:
            return None
        return self.make("activation_checkpointing true (~1/3 more compute)", {"activation_checkpointing": True},
                         replace(self.setup, checkpointing=True))

    def max_length_advice(self):
        step = MAX_LENGTH_STEP * self.setup.sp_size // math.gcd(MAX_LENGTH_STEP, self.setup.sp_size)
        candidates = list(range((self.setup.max_length - 1) // step * step, 0, -step))
        if not candidates:
            return None
        chosen = self.first_that_fits(candidates, "max_length")
        what = f"max_length {chosen}"
        if self.profile is not None:
            cut = self.profile.at(chosen)
            trainable = len(self.profile.num_tokens)
            what += (f" (truncates {cut.rows_truncated} of {trainable} rows: {cut.targets_cut} lose trained tokens, "
                     f"{cut.rows_dropped} lose all and are dropped)")
        return self.make(what, {"max_length": chosen}, replace(self.setup, max_length=chosen))

    def offload_advice(self):
        if self.setup.cpu_offload:
            return None
        setup = replace(self.setup, cpu_offload=True)
        advice = self.make("cpu_offload true (launch with accelerate_configs/zero3_offload.yaml: optimizer states and "
                           "parameters in host RAM)", {"cpu_offload": True}, setup)
        advice.text += f"; needs {advice.estimate.model_states.host_bytes_per_node / GB:.3g} GB host RAM per node"
        return advice

    def sp_advice(self):
        candidates = [sp for sp in range(self.setup.sp_size + 1, self.setup.world_size + 1)
                      if self.sp_allowed(sp) and self.accumulation(replace(self.setup, sp_size=sp))]
        if not candidates:
            return None
        chosen = self.first_that_fits(candidates, "sp_size")
        setup = replace(self.setup, sp_size=chosen)
        return self.make(f"sp_size {chosen} ({setup.tokens_per_rank} tokens per rank, dp {setup.world_size // chosen}, "
                         f"gradient accumulation {self.accumulation(setup)})", {"sp_size": chosen}, setup)

    def more_gpus_advice(self):
        candidates = [nodes for nodes in range(self.setup.num_nodes + 1, MAX_NODES_TRIED + 1)
                      if self.accumulation(replace(self.setup, num_nodes=nodes))]
        if not candidates:
            return None
        chosen = self.first_that_fits(candidates, "num_nodes")
        setup = replace(self.setup, num_nodes=chosen)
        return self.make(f"{chosen} nodes x {self.setup.num_gpus} GPUs (world size {setup.world_size}, dp "
                         f"{setup.world_size // setup.sp_size}, gradient accumulation {self.accumulation(setup)})",
                         {"num_nodes": chosen}, setup)

    def combined_advice(self):
        """Nothing fits alone: apply the memory savers one after another until it fits."""
        setup, overrides = self.setup, {}
        steps = [("activation_checkpointing", "checkpointing", True), ("cpu_offload", "cpu_offload", True)]
        for key, field, value in steps:
            if getattr(setup, field) != value:
                setup, overrides[key] = replace(setup, **{field: value}), value
            if self.fits(self.estimate(setup)):
                break
        else:
            for micro_batch in range(setup.micro_batch - 1, 0, -1):
                candidate = replace(setup, micro_batch=micro_batch)
                if self.accumulation(candidate):
                    setup, overrides["per_device_train_batch_size"] = candidate, micro_batch
                    if self.fits(self.estimate(setup)):
                        break
        if not overrides or not self.fits(self.estimate(setup)):
            return None
        changes = ", ".join(f"{key} {str(value).lower()}" for key, value in overrides.items())
        return self.make(f"together: {changes}", overrides, setup)


def load_model_config(model_args):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(model_args.model_name_or_path, revision=model_args.model_revision)
    except (OSError, ValueError) as error:
        reason = str(error).splitlines()[0]
        raise JudgeSFTError(f"{model_args.model_name_or_path}: cannot read the model's config.json ({reason})")


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
    shape = model_shape(load_model_config(model_args))
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
        "mixed_precision": setup.mixed_precision,
        "model_states_gb_per_gpu": memory.model_states.gpu_bytes / GB,
        "model_states_bytes_per_param": memory.model_states.sharded_bytes_per_param,
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
        "data_note": data_note,
        "notes": unmodelled(judge_args, model_args),
    }
    plan.update(data_numbers(profile, setup, batch, judge_args, training_args))
    plan.update(compute_numbers(shape, setup, profile, judge_args, options))
    advice = [] if fits else planner.advice()
    plan["advice"] = [item.text for item in advice]
    plan["advice_detail"] = [
        {"text": item.text, "overrides": item.overrides, "fits": item.fits, "total_gb_per_gpu": item.estimate.total / GB}
        for item in advice
    ]
    return plan


def unmodelled(judge_args, model_args):
    """Recipe settings the memory model does not cover: its numbers are for full fine-tuning of a dense model."""
    notes = []
    if model_args.use_peft:
        notes.append("use_peft: the memory above is full fine-tuning's; LoRA keeps optimizer states for the adapters only")
    if getattr(judge_args, "tiled_mlp", False):
        notes.append("tiled_mlp: not modelled; the activations above are without it (an upper bound)")
    return notes


def data_numbers(profile, setup, batch, judge_args, training_args):
    if profile is None:
        return {"train_rows": None, "steps_per_epoch": None, "total_steps": None}
    kept = profile.at(setup.max_length)
    micro_batches_per_rank = math.ceil(kept.rows / (setup.micro_batch * batch.dp))
    steps_per_epoch = max(math.ceil(micro_batches_per_rank / batch.grad_accum), 1)  # as transformers' Trainer counts
    total_steps = (training_args.max_steps if training_args.max_steps > 0
                   else math.ceil(training_args.num_train_epochs * steps_per_epoch))
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


def duration(seconds):
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
    states = ("bf16 params, fp32 grads, fp32 master weights, Adam m and v" if plan["mixed_precision"]
              else "fp32 params, grads, Adam m and v")
    offload = ("cpu_offload: params and optimizer states in host RAM; on GPU the largest layer gathered"
               if plan["cpu_offload"] else
               f"ZeRO-3 over {plan['world_size']} GPUs: {plan['model_states_bytes_per_param']} bytes/param sharded "
               f"({states}) + the largest layer gathered")
    checkpointing = "on" if plan["gradient_checkpointing"] else "off"
    recompute = " (x 4/3: checkpointing recomputes the forward)" if plan["gradient_checkpointing"] else ""
    verdict = "fits" if plan["fits"] else "DOES NOT FIT"
    host_check = "" if plan["cpu_memory_gb"] is None else f" (of {plan['cpu_memory_gb']:g} GB)"
    lines += [
        "",
        "memory per GPU",
        f"  model states  {gb(plan['model_states_gb_per_gpu'])}   {offload}",
        f"  host RAM      {gb(plan['host_gb_per_node'])}   per node{host_check}, DeepSpeed's estimate"
        + (" (the offloaded states x 1.5 for pinned buffers)" if plan["cpu_offload"] else " (loading)"),
        f"  activations   {gb(plan['activations_gb_per_gpu'])}   gradient checkpointing {checkpointing}: with "
        f"{plan['activations_gb_with_checkpointing']:.2f} GB, without {plan['activations_gb_without_checkpointing']:.2f} GB",
        f"  loss          {gb(plan['loss_gb_per_gpu'])}   TRL's tiled log-probs: LM head fp32 gradient + one logits tile",
        f"  total         {gb(plan['total_gb_per_gpu'])}   of {plan['usable_gb_per_gpu']:.2f} GB usable "
        f"({plan['gpu_memory_gb']:g} GB less {HEADROOM:.0%} headroom): {verdict}",
        "",
        f"compute      6 x params x tokens + attention{recompute}, "
        f"at {plan['mfu']:.0%} MFU of {plan['peak_tflops']:g} TFLOPS per GPU (H100/H200 SXM bf16)",
        f"             {plan['step_seconds_at_max_length']:.1f} s per optimizer step with every row at max_length"
        + ("" if plan["epoch_hours_estimate"] is None else
           f"; {duration(plan['epoch_hours_estimate'] * 3600)} per epoch ({plan['epoch_flops']:.2e} FLOPs)"),
    ]
    if plan["cpu_offload"]:
        lines.append("             cpu_offload: host Adam steps and PCIe transfers usually keep MFU well below that")
    lines += [f"note         {note}" for note in plan["notes"]]
    if plan["advice"]:
        lines += ["", "does not fit; each change, with its new estimate:"]
        lines += [f"  - {text}" for text in plan["advice"]]
    return "\n".join(lines)


def main(args):
    options, overrides = split_options(args)
    judge_args, training_args, model_args = parse_recipe([args.recipe, *overrides], for_launch=False)
    plan = make_plan(args.recipe, judge_args, training_args, model_args, options)
    print(json.dumps(plan, indent=2) if options.json else report(plan))
    return 0
