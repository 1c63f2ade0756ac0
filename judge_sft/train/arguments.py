"""Recipe parsing: one YAML recipe + `--key value` overrides -> (JudgeArguments, SFTConfig, ModelConfig).

TRL's own parser does the work; on top, a misspelt key is an error that names it and suggests the closest valid key.
"""

import dataclasses
import difflib
import os
from dataclasses import dataclass, field

import torch
import yaml
from trl import ModelConfig, SFTConfig, TrlParser

from judge_sft.errors import JudgeSFTError
from judge_sft.train.launch import MASTER_WEIGHTS, cpu_offload_mode, launched_world_size


@dataclass
class JudgeArguments:
    """The recipe keys that are judge-sft's own; everything else is TRL's SFTConfig / ModelConfig."""

    train_file: str = field(default=None, metadata={"help": "messages Parquet to train on (TRAIN_FILE)"})
    val_file: str | None = field(default=None, metadata={"help": "messages Parquet for val/loss (VAL_FILE)"})
    messages_key: str = field(default="messages", metadata={"help": "column holding the chat messages"})
    total_batch_size: int = field(
        default=96,
        metadata={"help": "global sequences per optimizer step (TOTAL_BATCH_SIZE); sets gradient accumulation"},
    )
    sp_size: int = field(default=1, metadata={"help": "Ulysses sequence-parallel size (SP_SIZE); 1 = off"})
    tiled_mlp: bool = field(
        default=False, metadata={"help": "ALST tiled MLP: compute each MLP over sequence tiles (long context memory)"}
    )
    cpu_offload: str = field(
        default="none",
        metadata={
            "help": "what ZeRO-3 keeps in host RAM: none, optimizer (fp32 master weights and Adam states; launch with "
            "accelerate_configs/zero3_offload_optimizer.yaml) or all (those and the parameters: zero3_offload.yaml); "
            "true = all, false = none"
        },
    )
    master_weights: str = field(
        default="fp32",
        metadata={
            "help": "fp32: DeepSpeed's mixed precision (fp32 master weights, gradients at the step and Adam states); "
            "bf16_kahan: bf16 weights, gradients and Adam states with Kahan-compensated AdamW updates (torch-optimi), "
            "12 instead of 16 bytes per parameter on the GPU",
            "choices": list(MASTER_WEIGHTS),
        },
    )
    train_on: str = field(
        default="auto",
        metadata={
            "help": "which assistant messages carry loss: 'final', 'all', or 'auto' (what prepare-data recorded in "
            "the file, else 'all')",
            "choices": ["auto", "final", "all"],
        },
    )
    skip_doctor: bool = field(
        default=False,
        metadata={"help": "train even when `judge-sft doctor`'s start-up checks (and, on GPUs, plan's memory) fail"},
    )

    def __post_init__(self):
        self.cpu_offload = cpu_offload_mode(self.cpu_offload)
        if self.master_weights not in MASTER_WEIGHTS:  # YAML values skip argparse's choices
            raise JudgeSFTError(f"recipe: master_weights `{self.master_weights}`: expected {' or '.join(MASTER_WEIGHTS)}")


RECIPE_DATACLASSES = (JudgeArguments, SFTConfig, ModelConfig)


def valid_keys():
    return sorted({f.name for cls in RECIPE_DATACLASSES for f in dataclasses.fields(cls)})


def unknown_key_error(key, where):
    close = difflib.get_close_matches(key, valid_keys(), n=1)
    hint = f"; did you mean `{close[0]}`?" if close else ""
    return JudgeSFTError(f"{where}: unknown recipe key `{key}`{hint}")


def check_recipe_keys(recipe_path):
    try:
        with open(recipe_path) as stream:
            recipe = yaml.safe_load(stream)
    except OSError as error:
        raise JudgeSFTError(f"{recipe_path}: cannot read recipe ({error.strerror})")
    except yaml.YAMLError as error:
        raise JudgeSFTError(f"{recipe_path}: invalid YAML ({str(error).splitlines()[0]})")
    if not isinstance(recipe, dict):
        raise JudgeSFTError(f"{recipe_path}: a recipe is a YAML mapping of key: value")
    known = set(valid_keys()) | {"env"}
    for key in recipe:
        if key not in known:
            raise unknown_key_error(key, recipe_path)
    return recipe


def parse_recipe(argv, for_launch=True):
    """`recipe.yaml [--key value ...]` (or `--config recipe.yaml ...`) -> (judge_args, training_args, model_args).

    `for_launch=False` (judge-sft plan) resolves a recipe for other machines: no launched world size to match, and
    TrainingArguments' checks of this machine (bf16 support) pass because it parses with `use_cpu` on."""
    argv = list(argv)
    if argv and not argv[0].startswith("-"):
        argv = ["--config", argv[0], *argv[1:]]
    recipe = check_recipe_keys(argv[argv.index("--config") + 1]) if "--config" in argv else {}
    if not for_launch:
        argv += ["--use_cpu", "true"]
    launched = "WORLD_SIZE" in os.environ and for_launch
    if "ddp_backend" not in recipe and "--ddp_backend" not in argv and not torch.cuda.is_available() and launched:
        # Without a GPU, accelerate's PartialState finds no backend for a DeepSpeed launch and makes every rank a
        # world of one (each trains on all the data); naming gloo makes it init DeepSpeed's process group with it.
        # Not outside a launch: gloo there would ask for a process group nobody started.
        argv += ["--ddp_backend", "gloo"]
    parser = TrlParser(RECIPE_DATACLASSES)
    parser.allow_abbrev = False  # `--learning_rat` is a typo to name, not a prefix of learning_rate
    try:
        *parsed, unknown = parser.parse_args_and_config(argv, return_remaining_strings=True)
    except ValueError as error:  # the dataclasses' own checks (e.g. bf16 on a machine without it)
        raise JudgeSFTError(f"recipe: {str(error).splitlines()[0]}")
    for item in unknown:
        if item.startswith("--"):
            raise unknown_key_error(item[2:].split("=")[0], "command line")
    if unknown:
        raise JudgeSFTError(f"command line: unexpected argument `{unknown[0]}`")
    judge_args, training_args, model_args = parsed
    if for_launch and training_args.world_size != launched_world_size():
        raise JudgeSFTError(
            f"the launcher started {launched_world_size()} processes but the trainer sees {training_args.world_size}; "
            "check `ddp_backend` and the accelerate config"
        )
    if not judge_args.train_file:
        raise JudgeSFTError("recipe: `train_file` is required")
    return judge_args, training_args, model_args
