"""What the recipe and the launch decide together: the batch arithmetic, the world size, offload and SP head rules.
Light (no torch, no DeepSpeed), so that plan and recipe use the same rules as run.py."""

import hashlib
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from judge_sft.errors import JudgeSFTError


@dataclass
class BatchPlan:
    world_size: int
    sp_size: int
    dp: int
    per_device_batch: int
    grad_accum: int
    total_batch_size: int

    def describe(self):
        return (
            f"world_size={self.world_size} sp_size={self.sp_size} -> dp={self.dp}; global batch {self.total_batch_size} "
            f"= micro batch {self.per_device_batch} x dp {self.dp} x gradient accumulation {self.grad_accum}"
        )


def plan_batch(total_batch_size, per_device_batch, world_size, sp_size):
    """dp = world_size / sp_size; accumulation = total / (micro x dp), which must come out whole."""
    if sp_size < 1 or world_size % sp_size:
        raise JudgeSFTError(f"recipe: world size {world_size} is not divisible by sp_size {sp_size}")
    dp = world_size // sp_size
    sequences_per_micro_step = per_device_batch * dp
    if total_batch_size % sequences_per_micro_step:
        raise JudgeSFTError(
            f"recipe: total_batch_size {total_batch_size} is not a multiple of per_device_train_batch_size "
            f"{per_device_batch} x dp {dp} (= world_size {world_size} / sp_size {sp_size}) = {sequences_per_micro_step}; "
            f"gradient accumulation would be {total_batch_size / sequences_per_micro_step:g}"
        )
    return BatchPlan(
        world_size, sp_size, dp, per_device_batch, total_batch_size // sequences_per_micro_step, total_batch_size
    )


def check_gradient_accumulation(given, batch):
    """gradient_accumulation_steps is derived from total_batch_size; a recipe may name it (OUTPUT_DIR/recipe.yaml
    records it) only with the value it derives to."""
    if given != batch.grad_accum:
        micro_step = batch.per_device_batch * batch.dp
        raise JudgeSFTError(
            f"recipe: gradient_accumulation_steps {given} is derived from total_batch_size, not set: total_batch_size "
            f"{batch.total_batch_size} / (per_device_train_batch_size {batch.per_device_batch} x dp {batch.dp}) = "
            f"{batch.grad_accum}; remove the key, or set total_batch_size {micro_step * given} for {given}"
        )


def launched_world_size():
    """Processes in this launch, as accelerate / torchrun tell every rank."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def decided_by_main_process(training_args, decide):
    """`decide()` on the main process only, its result (or its JudgeSFTError, raised) on every rank: every rank would
    find the same, and the others must not wait on a main process that stopped."""
    result = [None]
    if training_args.process_index == 0:
        try:
            result[0] = decide()
        except JudgeSFTError as error:
            result[0] = error
    if training_args.world_size > 1:
        from accelerate.utils import broadcast_object_list

        broadcast_object_list(result)
    if isinstance(result[0], JudgeSFTError):
        raise result[0]
    return result[0]


CPU_OFFLOAD_MODES = ("none", "optimizer", "all")
# The bundled accelerate config (one node) that launches each cpu_offload mode.
OFFLOAD_CONFIGS = {"none": "zero3.yaml", "optimizer": "zero3_offload_optimizer.yaml", "all": "zero3_offload.yaml"}
OFFLOADED = {
    "none": "nothing (optimizer states and parameters on the GPU)",
    "optimizer": "the optimizer states only",
    "all": "the optimizer states and the parameters",
    "parameters": "the parameters only",
}
MASTER_WEIGHTS = ("fp32", "bf16_kahan")
OFFLOAD_KEYS = ("offload_optimizer", "offload_param")


def cpu_offload_mode(value):
    """The recipe's `cpu_offload` as one of CPU_OFFLOAD_MODES; true and false (its old yes/no) mean all and none."""
    text = str(value).strip().lower()
    mode = {"true": "all", "false": "none"}.get(text, text)
    if mode not in CPU_OFFLOAD_MODES:
        raise JudgeSFTError(
            f"recipe: cpu_offload `{value}`: expected none, optimizer or all (true = all, false = none)"
        )
    return mode


def launched_offload(deepspeed_config):
    """What the launch's DeepSpeed config offloads to host RAM: a CPU_OFFLOAD_MODES value, or "parameters"."""
    zero = (deepspeed_config or {}).get("zero_optimization", {})
    optimizer, parameters = (zero.get(key, {}).get("device", "none") not in ("none", None) for key in OFFLOAD_KEYS)
    if parameters:
        return "all" if optimizer else "parameters"
    return "optimizer" if optimizer else "none"


def check_cpu_offload(cpu_offload, deepspeed_config):
    """The recipe's `cpu_offload` must match the DeepSpeed config accelerate launched with: the launch fixes it before
    run.py starts, so run.py can only refuse a mismatch (and name the config that matches)."""
    launched = launched_offload(deepspeed_config)
    if launched != cpu_offload:
        setting = f"set `cpu_offload: {launched}` or " if launched in CPU_OFFLOAD_MODES else ""
        raise JudgeSFTError(
            f"recipe: cpu_offload is {cpu_offload} but the launch's DeepSpeed config offloads {OFFLOADED[launched]}; "
            f"{setting}launch with --config_file accelerate_configs/{OFFLOAD_CONFIGS[cpu_offload]}"
        )


def check_master_weights(judge_args, bf16, deepspeed_config, optim="adamw_torch"):
    """`master_weights: bf16_kahan` (bf16 weights, gradients and Adam states, Kahan-compensated updates) runs where it
    was built and measured: bf16 under DeepSpeed ZeRO-3, optimizer on the GPU, AdamW. Anything else is refused."""
    if judge_args.master_weights == "fp32":
        return
    where = "recipe: master_weights bf16_kahan"
    stage = (deepspeed_config or {}).get("zero_optimization", {}).get("stage")
    if not bf16:
        raise JudgeSFTError(f"{where} keeps weights, gradients and Adam states in bf16: it needs `bf16: true`")
    if stage != 3:
        raise JudgeSFTError(
            f"{where} runs under DeepSpeed ZeRO-3 only; launch with --config_file accelerate_configs/zero3.yaml"
        )
    if judge_args.cpu_offload != "none":
        raise JudgeSFTError(
            f"{where} keeps the optimizer on the GPU; with cpu_offload {judge_args.cpu_offload} DeepSpeed's CPU Adam "
            "keeps fp32 states in host RAM instead: set `cpu_offload: none` or `master_weights: fp32`"
        )
    if optim not in ("adamw_torch", "adamw_torch_fused"):
        raise JudgeSFTError(
            f"{where} is AdamW with Kahan summation (torch-optimi); it cannot run `optim: {getattr(optim, 'value', optim)}`"
        )


def sp_heads_problem(num_heads, num_kv_heads, sp_size):
    """Why Ulysses cannot split these attention heads over sp_size ranks, or None when it can: the query heads are
    divided over the SP ranks, and the kv heads divided or replicated (DeepSpeed's UlyssesSPAttentionHF checks the same)."""
    if num_heads % sp_size:
        return f"{num_heads} attention heads are not divisible by sp_size {sp_size}"
    if num_kv_heads % sp_size and sp_size % num_kv_heads:
        return (
            f"{num_kv_heads} key/value heads and sp_size {sp_size}: one must divide the other (Ulysses splits the kv "
            "heads over the SP ranks, or replicates them)"
        )
    return None


def first_to_report(message):
    """Whether this process is the first of its launch on this machine to report `message`: every rank hits the same
    recipe error, and one line is enough. The launch is told apart by the launcher process (the ranks' common parent)
    and its start time, so a later launch reports again."""
    if launched_world_size() == 1:
        return True
    parent = os.getppid()
    try:
        started = Path(f"/proc/{parent}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return True
    key = hashlib.sha256(f"{parent}:{started}:{message}".encode()).hexdigest()[:24]
    folder = Path(tempfile.gettempdir()) / "judge-sft-reported"
    folder.mkdir(exist_ok=True)
    try:
        os.close(os.open(folder / key, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def put_this_venv_first_on_path():
    """This interpreter's bin directory first on PATH, as an activated venv has it, in every process that may build
    DeepSpeed's ops (run.py's main, before DeepSpeed loads any): DeepSpeed JIT-builds them with the `ninja` on PATH
    (its own pip dependency lives in the venv), and ninja 1.11 and 1.13 hash their build logs differently, so an op
    built by one was rebuilt by the other (`make setup` builds with the venv's)."""
    bin_dir = os.path.dirname(sys.executable)
    paths = os.environ.get("PATH", "").split(os.pathsep)
    if paths[0] != bin_dir:
        os.environ["PATH"] = os.pathsep.join([bin_dir, *paths])
