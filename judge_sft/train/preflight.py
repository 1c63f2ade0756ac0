"""What `judge-sft train` checks in the parent that a launch would otherwise find only after starting its processes:
recipe settings this machine cannot run (all of them, in one line), an output_dir that is a file, and wandb without
credentials. Light: the machine's facts come in as a Machine, so each check runs anywhere."""

import os
from dataclasses import dataclass
from pathlib import Path

from judge_sft.errors import JudgeSFTError
from judge_sft.train import attention

CPU_CONFIG = "cpu_zero3_2proc"  # the bundled accelerate config for CPUs
WANDB_HOST = "https://api.wandb.ai"
WANDB_NO_KEY_MODES = ("offline", "disabled", "dryrun")  # WANDB_MODE values that never ask for an API key


@dataclass(frozen=True)
class Machine:
    cuda: bool  # a CUDA GPU
    bf16: bool  # a CUDA GPU with bf16


def this_machine():
    import torch

    cuda = torch.cuda.is_available()
    return Machine(cuda=cuda, bf16=cuda and torch.cuda.is_bf16_supported())


def machine_conflicts(judge_args, training_args, model_args, machine, launch_config=None):
    """[(what this machine cannot run, the override that fixes it)] for the recipe and the accelerate config, all of
    them at once."""
    conflicts = []
    if launch_config is not None and not machine.cuda and not launch_config.get("use_cpu"):
        conflicts.append(("the accelerate config launches on GPUs", f"--accelerate-config {CPU_CONFIG}"))
    if training_args.bf16 and not machine.bf16:
        conflicts.append(("bf16: true needs a GPU with bf16", "--bf16 false"))
        if judge_args.master_weights == "bf16_kahan":
            conflicts.append(("master_weights bf16_kahan needs bf16", "--master_weights fp32"))
    if training_args.fp16 and not machine.cuda:
        conflicts.append(("fp16: true needs a CUDA GPU", "--fp16 false"))
    name = model_args.attn_implementation
    backend = attention.KNOWN.get(name)
    if not machine.cuda and (name == attention.AUTO or (backend is not None and backend.min_capability)):
        conflicts.append((f"attn_implementation {name} needs a CUDA GPU", "--attn_implementation sdpa"))
    return conflicts


def check_machine(judge_args, training_args, model_args, machine, launch_config=None):
    conflicts = machine_conflicts(judge_args, training_args, model_args, machine, launch_config)
    if conflicts:
        here = "this machine has no CUDA GPU" if not machine.cuda else "this machine's GPU has no bf16"
        raise JudgeSFTError(
            f"recipe: this recipe is for GPUs and {here}: {'; '.join(problem for problem, _ in conflicts)}; to run "
            f"it here add {' '.join(fix for _, fix in conflicts)} (recipes/tiny_cpu.yaml is a CPU recipe)"
        )


def check_output_dir(output_dir):
    path = Path(output_dir)
    if path.exists() and not path.is_dir():
        raise JudgeSFTError(f"recipe: output_dir {output_dir} is a file, not a directory; set --output_dir to a folder")


def wandb_has_credentials(environ):
    """wandb's own sources of an API key: WANDB_API_KEY, an identity token file, the .netrc entry of its host."""
    if environ.get("WANDB_API_KEY") or environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    from wandb.sdk.lib.wbauth import read_netrc_auth

    return read_netrc_auth(host=environ.get("WANDB_BASE_URL", WANDB_HOST)) is not None


def check_report_to(report_to, environ=os.environ):
    """wandb asks for its API key in every rank after the data is tokenised: ask here first."""
    if "wandb" not in (report_to or []) or environ.get("WANDB_MODE") in WANDB_NO_KEY_MODES:
        return
    if not wandb_has_credentials(environ):
        raise JudgeSFTError(
            "recipe: report_to wandb, and no wandb credentials here (no WANDB_API_KEY, no api.wandb.ai entry in "
            "~/.netrc): set WANDB_API_KEY or run `wandb login`, set WANDB_MODE=offline to log locally, or report "
            "elsewhere (--report_to tensorboard)"
        )
