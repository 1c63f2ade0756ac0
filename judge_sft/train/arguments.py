"""Recipe parsing: one YAML recipe + `--key value` overrides -> (JudgeArguments, SFTConfig, ModelConfig).

TRL's own parser does the work; before it, every key and value is checked (recipe_values.py), so that a misspelt key,
a value of the wrong type or out of range, and a YAML mistake are each one line naming the file and line or the
command line.
"""

import dataclasses
import difflib
import os
import typing
from dataclasses import dataclass, field

import torch
from trl import ModelConfig, SFTConfig, TrlParser

from judge_sft.errors import JudgeSFTError
from judge_sft.evaluation.during_training import check_eval_judge
from judge_sft.hub.base_model import HUB_ID
from judge_sft.train.launch import (
    CPU_OFFLOAD_MODES,
    MASTER_WEIGHTS,
    check_gradient_accumulation,
    cpu_offload_mode,
    launched_world_size,
    plan_batch,
)
from judge_sft.train.preemption import parse_duration
from judge_sft.train.recipe_values import check_command_line_values, check_file_values, read_recipe
from judge_sft.train.saved_recipe import given_keys


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
            "true = all, false = none",
            "choices": [*CPU_OFFLOAD_MODES, "true", "false"],
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
    base_model_id: str | None = field(
        default=None,
        metadata={
            "help": "the base model's Hub id (ORG/NAME) when model_name_or_path is a local directory: named by the "
            "pushed adapter config and by the model card"
        },
    )
    eval_samples: int = field(
        default=4,
        metadata={
            "help": "at every evaluation, greedy completions of the first N val rows, written to OUTPUT_DIR/samples/ "
            "and the reporters; 0 = off"
        },
    )
    eval_samples_max_new_tokens: int = field(
        default=256, metadata={"help": "the most tokens each eval sample completion may have"}
    )
    eval_judge: bool = field(
        default=False,
        metadata={
            "help": "at every evaluation, score the eval samples' verdicts against the judge val_file's labels: "
            "val/judge_accuracy (pairwise) or val/judge_mae and val/judge_spearman (pointwise), val/judge_parse_rate"
        },
    )
    skip_doctor: bool = field(
        default=False,
        metadata={"help": "train even when `judge-sft doctor`'s start-up checks (and, on GPUs, plan's memory) fail"},
    )
    stop_after: str | None = field(
        default=None,
        metadata={
            "help": "wall time after which the run saves a checkpoint and exits to be relaunched, e.g. 3h50m "
            "(clusters without a stop signal); counted from the start of each launch"
        },
    )

    def __post_init__(self):
        self.cpu_offload = cpu_offload_mode(self.cpu_offload)


RECIPE_DATACLASSES = (JudgeArguments, SFTConfig, ModelConfig)

# TRL keys judge-sft refuses, and why (docs/gpu.md#liger-kernel-and-activation-offloading); measuring them on GPUs is
# pending, and each becomes a supported key once a measured run shows it speeds up or shrinks judge-sft's runs.
REFUSED_KEYS = {
    "use_liger_kernel": "TRL 1.16 deprecates it and applies only Liger's layer kernels (RMSNorm, SwiGLU, RoPE); the "
    "loss, Liger's memory saving, TRL already computes in chunks without the full logits; the layer kernels are not "
    "measured with padding-free rows and sequence parallelism yet",
    "activation_offloading": "not measured with ZeRO-3 and sequence parallelism yet; with activation_checkpointing "
    "each layer keeps only its input (`judge-sft plan` shows how much), and cpu_offload recipes already load the "
    "host link",
}


def valid_keys():
    return sorted({field.name for cls in RECIPE_DATACLASSES for field in dataclasses.fields(cls)})


def nullable_keys():
    """Keys that may be null: typed `T | None` (read from the annotations, as TRL's parser rewrites the field types
    to T) or defaulting to None."""
    return {
        name
        for cls in RECIPE_DATACLASSES
        for name, hint in typing.get_type_hints(cls).items()
        if type(None) in typing.get_args(hint)
    } | {field.name for cls in RECIPE_DATACLASSES for field in dataclasses.fields(cls) if field.default is None}


class RecipeParser(TrlParser):
    """TRL's parser, whose command-line errors are one JudgeSFTError line instead of argparse's usage and exit 2."""

    def error(self, message):
        raise JudgeSFTError(f"command line: {message}")

    def key_actions(self):
        """{key: the action that parses `--key`} (not the `--no_key` of a boolean)."""
        return {key: self._option_string_actions[f"--{key}"] for key in valid_keys()}


def unknown_key_error(key, where):
    close = difflib.get_close_matches(key, valid_keys(), n=1)
    hint = f"; did you mean `{close[0]}`?" if close else ""
    return JudgeSFTError(f"{where}: unknown recipe key `{key}`{hint}")


def check_recipe_keys(recipe_path):
    """The recipe file's {key: value}: valid YAML, each key once, every key known. Returns (recipe, {key: line})."""
    recipe, lines = read_recipe(recipe_path)
    known = set(valid_keys()) | {"env"}
    for key in recipe:
        if key not in known:
            raise unknown_key_error(key, f"{recipe_path} line {lines[key]}")
    return recipe, lines


def parse_recipe(argv, for_launch=True):
    """`recipe.yaml [--key value ...]` (or `--config recipe.yaml ...`) -> (judge_args, training_args, model_args).

    `for_launch=False` (judge-sft plan) resolves a recipe for other machines: no launched world size to match, and
    TrainingArguments' checks of this machine (bf16 support) pass because it parses with `use_cpu` on."""
    argv = list(argv)
    if argv and not argv[0].startswith("-"):
        argv = ["--config", argv[0], *argv[1:]]
    parser = RecipeParser(RECIPE_DATACLASSES)
    parser.allow_abbrev = False  # `--learning_rat` is a typo to name, not a prefix of learning_rate
    actions = parser.key_actions()
    recipe = {}
    if "--config" in argv:
        recipe_path = argv[argv.index("--config") + 1]
        recipe, lines = check_recipe_keys(recipe_path)
        check_file_values(recipe_path, recipe, lines, actions, nullable_keys())
    check_command_line_values(argv, actions)
    if not for_launch:
        argv += ["--use_cpu", "true"]
    launched = "WORLD_SIZE" in os.environ and for_launch
    if "ddp_backend" not in recipe and "--ddp_backend" not in argv and not torch.cuda.is_available() and launched:
        # Without a GPU, accelerate's PartialState finds no backend for a DeepSpeed launch and makes every rank a
        # world of one (each trains on all the data); naming gloo makes it init DeepSpeed's process group with it.
        # Not outside a launch: gloo there would ask for a process group nobody started.
        argv += ["--ddp_backend", "gloo"]
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
    for key, reason in REFUSED_KEYS.items():
        if getattr(training_args, key, False):
            raise JudgeSFTError(f"recipe: {key} is not supported by judge-sft: {reason}")
    if for_launch and training_args.world_size != launched_world_size():
        raise JudgeSFTError(
            f"the launcher started {launched_world_size()} processes but the trainer sees {training_args.world_size}; "
            "check `ddp_backend` and the accelerate config"
        )
    if not judge_args.train_file:
        raise JudgeSFTError("recipe: `train_file` is required")
    if judge_args.base_model_id and not HUB_ID.match(judge_args.base_model_id):
        raise JudgeSFTError(f"recipe: `base_model_id` is a Hub id ORG/NAME, not `{judge_args.base_model_id}`")
    if model_args.model_name_or_path and os.path.isdir(model_args.model_name_or_path):
        # recorded absolute, so the adapter config and the card that name it hold from any working directory
        model_args.model_name_or_path = os.path.abspath(model_args.model_name_or_path)
    if judge_args.eval_samples < 0:
        raise JudgeSFTError(f"recipe: eval_samples must be 0 (off) or more, not {judge_args.eval_samples}")
    if judge_args.eval_samples_max_new_tokens < 1:
        raise JudgeSFTError(
            f"recipe: eval_samples_max_new_tokens must be 1 or more, not {judge_args.eval_samples_max_new_tokens}"
        )
    check_eval_judge(judge_args)
    check_stop_settings(judge_args, training_args)
    if for_launch and names_gradient_accumulation(argv):
        batch = plan_batch(
            judge_args.total_batch_size,
            training_args.per_device_train_batch_size,
            launched_world_size(),
            judge_args.sp_size,
        )
        check_gradient_accumulation(training_args.gradient_accumulation_steps, batch)
    return judge_args, training_args, model_args


def names_gradient_accumulation(argv):
    """Whether the recipe file or an override names gradient_accumulation_steps (its value is derived)."""
    return "gradient_accumulation_steps" in {key.replace("-", "_") for key in given_keys(argv)[0]}


def check_stop_settings(judge_args, training_args):
    """Before any weights load, not when the deadline comes."""
    if judge_args.stop_after is not None:
        parse_duration(judge_args.stop_after)
    if training_args.enable_jit_checkpoint:
        # transformers' own SIGTERM checkpoint saves on each rank as it hears the signal: a collective save that
        # deadlocks when only some ranks do.
        raise JudgeSFTError(
            "recipe: enable_jit_checkpoint replaces judge-sft's stop handling (SIGTERM, SIGUSR1, stop_after), "
            "which already saves a checkpoint on every rank; remove the key"
        )
