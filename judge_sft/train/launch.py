"""What the recipe and the launch decide together: the batch arithmetic, the world size, offload and SP head rules.
Light (no torch, no DeepSpeed), so that plan and recipe use the same rules as run.py."""

import hashlib
import os
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


def check_cpu_offload(cpu_offload, deepspeed_config):
    """The recipe's `cpu_offload` must match the DeepSpeed config accelerate launched with: the launch fixes it before
    run.py starts, so run.py can only refuse a mismatch (and name the config that matches)."""
    zero = (deepspeed_config or {}).get("zero_optimization", {})
    offloaded = zero.get("offload_optimizer", {}).get("device", "none") not in ("none", None)
    if cpu_offload and not offloaded:
        raise JudgeSFTError(
            "recipe: cpu_offload is true but the launch's DeepSpeed config keeps optimizer states on the "
            "GPU; launch with --config_file accelerate_configs/zero3_offload.yaml"
        )
    if offloaded and not cpu_offload:
        raise JudgeSFTError(
            "recipe: cpu_offload is false but the launch's DeepSpeed config offloads to CPU; set "
            "`cpu_offload: true` or launch with accelerate_configs/zero3.yaml"
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
