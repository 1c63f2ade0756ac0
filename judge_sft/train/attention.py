"""Which attention kernel a run uses, decided before tokenising or loading weights (run.py, `judge-sft doctor`).

`attn_implementation: auto` takes the first backend of `BACKENDS` that is installed, runs on this GPU, works with the
recipe's sp_size, and passes a probe (a padding-free forward and backward whose documents stay apart). A named
backend is checked the same way, without the probe. docs/gpu.md gives the facts behind the order.
"""

import logging
import os
from dataclasses import dataclass

from judge_sft.errors import JudgeSFTError
from judge_sft.patches import outside_zero3_init
from judge_sft.train import varlen_attention

logger = logging.getLogger("judge_sft")

AUTO = "auto"
SP_ACCEPTED = "flash_attention_2, flash_attention_3, sdpa and kernels-community/flash-attn* kernels"
GPU_INSTALL = "pip install 'judge-sft[gpu]'"


@dataclass(frozen=True)
class Device:
    name: str
    capability: tuple | None  # (major, minor); None: no CUDA GPU
    memory_bytes: int | None = None

    def describe(self):
        return (
            self.name
            if self.capability is None
            else f"{self.name} (compute capability {self.capability[0]}.{self.capability[1]})"
        )


def this_device():
    """The GPU's facts, from torch, or as stated by JUDGE_SFT_GPU (varlen_attention.STATED_GPU)."""
    import torch

    stated = os.environ.get(varlen_attention.STATED_GPU)
    if stated:
        return stated_device(stated)
    if not torch.cuda.is_available():
        return Device("no CUDA GPU", None)
    index = torch.cuda.current_device()
    memory = torch.cuda.get_device_properties(index).total_memory
    return Device(torch.cuda.get_device_name(index), torch.cuda.get_device_capability(index), memory)


def stated_device(stated):
    """'NVIDIA H100 80GB;80;9.0' -> Device(name, (9, 0), 80 GiB)."""
    try:
        name, memory_gib, capability = stated.split(";")
        major, minor = capability.split(".")
        return Device(name, (int(major), int(minor)), int(float(memory_gib) * 2**30))
    except ValueError:
        raise JudgeSFTError(
            f"{varlen_attention.STATED_GPU}: expected 'name;memory GiB;major.minor', as in 'NVIDIA H100 80GB;80;9.0', "
            f"not {stated!r}"
        )


def _transformers_check(name):
    def installed():
        import transformers.utils

        return getattr(transformers.utils, name)()

    return installed


def _kernels_installed():
    from transformers.utils import is_kernels_available

    return is_kernels_available()


@dataclass(frozen=True)
class Backend:
    name: str
    installed: object  # () -> bool
    install: object  # how to get it: a str, or () -> str
    min_capability: tuple | None = (8, 0)  # None: CPUs too
    max_capability: tuple | None = None
    sp_refusal: str | None = None  # why DeepSpeed-Ulysses (sp_size > 1) cannot use it

    def unusable(self, device, sp_size):
        """(why this backend cannot run this recipe here, what to change), or None when it can."""
        if sp_size > 1 and self.sp_refusal:
            return f"not with sp_size {sp_size}: {self.sp_refusal}", SP_FIX
        if self.min_capability and device.capability is None:
            return (
                "needs a CUDA GPU and this machine has none",
                "run this on the GPU machine, or set `attn_implementation: sdpa` to run on CPU",
            )
        if not self.installed():
            install = self.install() if callable(self.install) else self.install
            return f"not installed ({install})", "or set `attn_implementation: auto`"
        if self.min_capability and device.capability < self.min_capability:
            need = f"needs compute capability {_version(self.min_capability)} or newer"
            return f"{need}; this GPU is {device.describe()}", "set `attn_implementation: auto`"
        if self.max_capability and device.capability > self.max_capability:
            need = f"runs on compute capability {_version(self.max_capability)} (Hopper) only"
            return f"{need}; this GPU is {device.describe()}", "set `attn_implementation: auto`"
        return None


def _version(capability):
    return f"{capability[0]}.{capability[1]}"


NOT_SHARDABLE = f"accelerate's DeepSpeed-Ulysses accepts {SP_ACCEPTED} only"
SP_FIX = "set `attn_implementation: auto` on a GPU, or sdpa"


def hub_kernel_install():
    from transformers.utils.import_utils import KERNELS_MAX_VERSION, KERNELS_MIN_VERSION

    return (
        f"pip install 'kernels>={KERNELS_MIN_VERSION},<{KERNELS_MAX_VERSION}', the range this transformers accepts; "
        "the kernel downloads from the Hub at first use"
    )


# Fastest first: the order `auto` tries them in (docs/gpu.md#attention says why).
BACKENDS = (
    Backend(
        "flash_attention_3",
        _transformers_check("is_flash_attn_3_available"),
        "build flash-attn-3 from hopper/ in Dao-AILab/flash-attention; PyPI has no wheel",
        (9, 0),
        (9, 0),
    ),
    Backend("kernels-community/flash-attn3", _kernels_installed, hub_kernel_install, (9, 0), (9, 0)),
    Backend(
        "flash_attention_4",
        _transformers_check("is_flash_attn_4_available"),
        f"{GPU_INSTALL}, or pip install flash-attn-4",
        (9, 0),
        sp_refusal=NOT_SHARDABLE,
    ),
    Backend(
        "flash_attention_2",
        _transformers_check("is_flash_attn_2_available"),
        "pip install flash-attn --no-build-isolation: PyPI has its source only, a compile of hours",
    ),
    Backend("kernels-community/flash-attn2", _kernels_installed, hub_kernel_install),
    Backend(varlen_attention.NAME, varlen_attention.available, "torch >= 2.10", sp_refusal=NOT_SHARDABLE),
    Backend("sdpa", lambda: True, "ships with torch", None),
)
OTHERS = (
    Backend(
        "flex_attention",
        lambda: True,
        "ships with torch",
        None,
        sp_refusal=f"{NOT_SHARDABLE}, and DeepSpeed rebuilds a plain causal BlockMask that lets padding-free "
        "documents attend to each other",
    ),
    Backend(
        "eager",
        lambda: True,
        "ships with transformers",
        None,
        sp_refusal="Ulysses drops the model's attention mask, which eager attention needs",
    ),
)
KNOWN = {backend.name: backend for backend in BACKENDS + OTHERS}


@dataclass(frozen=True)
class Choice:
    name: str
    reason: str


def choose(requested, sp_size, device=None, probe=True):
    """The backend this run uses, and why; a JudgeSFTError naming the fix when the recipe's cannot run here."""
    device = device or this_device()
    if requested == AUTO:
        return _choose_automatically(sp_size, device, probe)
    name = requested or "sdpa"  # unset: transformers' default
    backend = KNOWN.get(name) or _hub_kernel(name)
    problem = backend.unusable(device, sp_size)
    if problem:
        raise JudgeSFTError(f"attn_implementation {name}: {problem[0]}; {problem[1]}")
    return Choice(name, f"{name} on {device.describe()}, sp_size {sp_size}{_under_ulysses(name, sp_size)}")


def _hub_kernel(name):
    if "/" not in name:
        choices = ", ".join([AUTO, *KNOWN])
        raise JudgeSFTError(f"attn_implementation {name}: unknown; one of {choices}, or a Hub kernel (org/name)")
    refusal = None if "flash-attn" in name else NOT_SHARDABLE
    return Backend(name, _kernels_installed, hub_kernel_install, None, sp_refusal=refusal)


def _choose_automatically(sp_size, device, probe):
    if device.capability is None:
        raise JudgeSFTError(
            "attn_implementation auto: this machine has no CUDA GPU, and auto chooses among GPU attention kernels; "
            "run this on the GPU machine, or set `attn_implementation: sdpa` to run on CPU"
        )
    passed_over = []
    for backend in BACKENDS:
        problem = (backend.unusable(device, sp_size) or [None])[0]
        if problem is None and probe and backend.name != "sdpa":
            problem = probe_backend(backend.name)
        if problem is None:
            skipped = f"; passed over: {'; '.join(passed_over)}" if passed_over else ""
            reason = f"auto -> {backend.name} on {device.describe()}, sp_size {sp_size}: the fastest usable{skipped}"
            return Choice(backend.name, reason + _under_ulysses(backend.name, sp_size))
        passed_over.append(f"{backend.name} ({problem})")
    raise AssertionError("sdpa is always usable")


def probe_backend(name, device=None):
    """None when `name` trains a padding-free row here with its documents apart, else what went wrong. A two-layer
    bf16 Qwen3 on the GPU (on CPU without one): the logits of a document packed after another equal its logits alone,
    and backward runs. No cache, as in training: transformers looks for packed documents only then. Outside zero.Init:
    in a ZeRO-3 launch only the main process probes, and DeepSpeed must not partition the probe's model."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen3Config

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")

    if name == varlen_attention.NAME:
        varlen_attention.register()
    config = Qwen3Config(
        vocab_size=128, hidden_size=256, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, head_dim=128,
    )  # fmt: skip
    try:
        torch.manual_seed(0)
        with torch.device(device), outside_zero3_init():
            model = AutoModelForCausalLM.from_config(config, attn_implementation=name, dtype=torch.bfloat16)
            first, second = torch.randint(0, 128, (1, 48)), torch.randint(0, 128, (1, 80))
            positions = torch.cat([torch.arange(48), torch.arange(80)])[None]
            packed = model(input_ids=torch.cat([first, second], dim=1), position_ids=positions, use_cache=False)
            alone = model(input_ids=second, position_ids=torch.arange(80)[None], use_cache=False)
            packed.logits.float().square().mean().backward()
            if device == "cuda":
                torch.cuda.synchronize()
    except Exception as error:  # any failure means: not usable here
        return f"fails here: {type(error).__name__}: {str(error).splitlines()[0][:160] if str(error) else ''}"
    gap = (packed.logits[0, 48:] - alone.logits[0]).abs().max().item()
    if gap > 0.05 * alone.logits.abs().max().item() + 1e-2:
        return f"its padding-free documents attend to each other here (logits differ by {gap:.3g})"
    return None


def _under_ulysses(name, sp_size):
    if name == "sdpa" and sp_size > 1 and varlen_attention.available():
        return "; under Ulysses on a GPU judge-sft runs sdpa document by document through torch's varlen flash kernel"
    return ""


def use(choice, model_args):
    """run.py's start-up, on every rank: load the model with the chosen backend, and log why it is that one."""
    if choice.name == varlen_attention.NAME:
        varlen_attention.register()
    model_args.attn_implementation = choice.name
    logger.info(f"attention: {choice.reason}")


def sp_problem(name, sp_size):
    """Why DeepSpeed-Ulysses cannot shard attention `name` over sp_size ranks (and the fix), or None when it can."""
    name = name or "sdpa"  # unset: transformers' default
    backend = KNOWN.get(name) or (_hub_kernel(name) if "/" in name else None)
    if sp_size > 1 and backend is not None and backend.sp_refusal:
        return f"attn_implementation {name}: not with sp_size {sp_size}: {backend.sp_refusal}; {SP_FIX}"
    return None
