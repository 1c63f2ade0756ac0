"""Pushing a trained judge to the Hugging Face Hub: the model card, the repo, the upload, and where the token lives.

Every call goes through huggingface_hub's HfApi, which finds the credentials where it always does (HF_TOKEN, then
the `hf auth login` token file). A push reads only what the output (or checkpoint) directory holds, so re-running
it after a failure completes it, and it never uploads ZeRO-3 partitioned shards or optimizer state.
"""

import json
import logging
import os
import re
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pyarrow.parquet as pq
import yaml
from huggingface_hub import HfApi, ModelCard, ModelCardData

from judge_sft import __version__
from judge_sft.checkpoints import TRAINER_STATE_NAME
from judge_sft.errors import JudgeSFTError
from judge_sft.recipe_io import load_recipe

logger = logging.getLogger("judge_sft")

CARD_NAME = "README.md"
# Training state that stays local: ZeRO-3 partitioned weights and optimizer shards (global_stepN/, `latest`,
# zero_to_fp32.py, zero_to_torch.py), optimizer/scheduler/RNG states, checkpoint folders, transformers' own `_*`.
NOT_PUSHED = ["_*", "checkpoint-*", "global_step*", "latest", "zero_to_*.py", "optimizer.pt", "scheduler.pt",
              "scaler.pt", "rng_state*.pth", "*.partial"]
CONSOLIDATED_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors")
HELPSTEER2 = {"id": "nvidia/HelpSteer2", "license": "CC-BY-4.0", "url": "https://huggingface.co/datasets/nvidia/HelpSteer2"}
HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


# ---------------------------------------------------------------------------------------------------- credentials


def take_hub_token(training_args):
    """Move a recipe's `hub_token` into HF_TOKEN, where huggingface_hub reads it, and blank the field.

    transformers pickles the whole TrainingArguments into training_args.bin (in every checkpoint, and into the pushed
    repo); only its to_dict / to_json_string mask `*_token` fields, the pickle holds the token in clear. A token given
    as `--hub_token` is masked in sys.argv too: reporters record the command line (wandb's run metadata does)."""
    if training_args.hub_token:
        os.environ["HF_TOKEN"] = training_args.hub_token
        training_args.hub_token = None
    for index, arg in enumerate(sys.argv):
        if arg == "--hub_token" and index + 1 < len(sys.argv):
            sys.argv[index + 1] = "<HUB_TOKEN>"
        elif arg.startswith("--hub_token="):
            sys.argv[index] = "--hub_token=<HUB_TOKEN>"


def apply_hub_defaults(training_args):
    """Repos are created private unless the recipe says `hub_private_repo: false`; the token leaves the arguments."""
    if training_args.hub_private_repo is None:
        training_args.hub_private_repo = True
    take_hub_token(training_args)


# ---------------------------------------------------------------------------------------------------- model card


def read_json(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def last_logged(log_history, key):
    """(value, step) of the last log entry that has `key`, or (None, None)."""
    for entry in reversed(log_history):
        if key in entry:
            return entry[key], entry.get("step")
    return None, None


def data_stats(train_file):
    """prepare-data's stats.json beside the train file (None when the data did not come from prepare-data)."""
    return read_json(Path(train_file).parent / "stats.json") if train_file else None


def parquet_rows(path):
    try:
        return pq.read_metadata(path).num_rows
    except (OSError, TypeError, ValueError):
        return None


def is_hub_id(name):
    return bool(name) and HUB_ID.match(str(name)) is not None and not os.path.exists(name)


def card_metadata(base_model, stats):
    return ModelCardData(
        base_model=base_model if is_hub_id(base_model) else None,
        library_name="transformers",
        pipeline_tag="text-generation",
        tags=["judge-sft", "judge", "sft", "trl"],
        datasets=[HELPSTEER2["id"]] if stats else None,
    )


def results_section(log_history, plot_name):
    train_loss, train_step = last_logged(log_history, "loss")
    val_loss, val_step = last_logged(log_history, "eval_loss")
    if train_loss is None and val_loss is None:
        return ["## Results", "", "No losses were logged (no trainer_state.json in this directory).", ""]
    lines = ["## Results", "", "| loss | value | at step |", "| --- | --- | --- |"]
    if train_loss is not None:
        lines.append(f"| final train loss | {train_loss:.4f} | {train_step} |")
    if val_loss is not None:
        lines.append(f"| final val loss | {val_loss:.4f} | {val_step} |")
    lines.append("")
    if plot_name:
        lines += [f"![Train and val loss against step]({plot_name})", ""]
    return lines


def data_section(recipe, stats):
    lines = ["## Data", ""]
    for key in ("train_file", "val_file"):
        if recipe.get(key):
            rows = parquet_rows(recipe[key])
            lines.append(f"- {key}: `{recipe[key]}`" + (f" ({rows} rows)" if rows is not None else ""))
    if stats:
        dropped = ", ".join(f"{reason} {count}" for reason, count in stats.get("dropped", {}).items() if count)
        options = stats.get("options", {})
        filters = [f"{name} >= {value}" for name, value in options.get("min", {}).items()]
        filters += [f"{name} <= {value}" for name, value in options.get("max", {}).items()]
        lines += [
            f"- prepared by `judge-sft prepare-data` from HelpSteer2: {stats.get('rows_read')} rows read, "
            f"{stats.get('rows_kept')} kept" + (f"; dropped: {dropped}" if dropped else ""),
            f"- filters: {', '.join(filters) or 'none'}; val split: {options.get('val_split')}; "
            f"one per prompt: {options.get('one_per_prompt')}; sample: {options.get('sample')}",
            f"- inputs: {', '.join(source['source'] for source in stats.get('inputs', []))}",
            "",
            f"**Data licence:** [HelpSteer2]({HELPSTEER2['url']}) is released under {HELPSTEER2['license']}; "
            "models trained on it must credit NVIDIA's HelpSteer2 dataset.",
        ]
    else:
        lines += ["", "**Data licence:** not recorded (the data did not come from `judge-sft prepare-data`); "
                  "state the licence of your training data here."]
    return lines + [""]


def framework_versions():
    names = {"judge-sft": "judge-sft", "TRL": "trl", "Transformers": "transformers", "PyTorch": "torch",
             "DeepSpeed": "deepspeed", "huggingface_hub": "huggingface_hub"}
    lines = []
    for label, distribution in names.items():
        try:
            lines.append(f"- {label} {__version__ if label == 'judge-sft' else version(distribution)}")
        except PackageNotFoundError:
            pass
    return lines


def model_card(folder, repo_id=None, plot_name=None):
    """The card's text for an output or checkpoint directory, from what it (and its run's recipe.yaml) holds."""
    folder = Path(folder)
    recipe_path, recipe = load_recipe(folder)
    state = read_json(folder / TRAINER_STATE_NAME) or {}
    stats = data_stats(recipe.get("train_file"))
    base_model = recipe.get("model_name_or_path")
    name = (repo_id or folder.resolve().name).split("/")[-1]
    body = [
        f"# {name}", "",
        f"A judge model fine-tuned from `{base_model or 'an unrecorded base model'}` by supervised fine-tuning on chat "
        f"data with judge-sft {__version__} (TRL SFTTrainer, DeepSpeed ZeRO-3).", "",
        "The tokenizer carries the chat template used in training (`chat_template.jinja`): "
        "`tokenizer.apply_chat_template(messages, add_generation_prompt=True)` renders prompts exactly as training did.",
        "",
        *results_section(state.get("log_history", []), plot_name),
        *data_section(recipe, stats),
        "## Recipe", "",
    ]
    if recipe:
        body += [f"The resolved recipe of the run (`{recipe_path.name}`, secrets removed):", "", "```yaml",
                 yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True).rstrip(), "```", ""]
    else:
        body += ["Not recorded: this directory has no recipe.yaml.", ""]
    body += ["## Framework versions", "", *framework_versions(), ""]
    return f"---\n{card_metadata(base_model, stats).to_yaml()}\n---\n\n" + "\n".join(body)


def write_model_card(folder, repo_id=None):
    """Write FOLDER/README.md (and the loss-curve PNG it shows, when losses were logged); return the card's path."""
    from judge_sft.plot import plot_losses

    folder = Path(folder)
    state = read_json(folder / TRAINER_STATE_NAME) or {}
    has_losses = any("loss" in entry or "eval_loss" in entry for entry in state.get("log_history", []))
    plot_name = Path(plot_losses(folder)).name if has_losses else None
    path = folder / CARD_NAME
    ModelCard(model_card(folder, repo_id, plot_name)).save(path)
    return path


# ---------------------------------------------------------------------------------------------------- push


def check_pushable(folder):
    """A directory a push can upload: consolidated weights, a config, a tokenizer."""
    folder = Path(folder)
    if not folder.is_dir():
        raise JudgeSFTError(f"{folder}: no such directory")
    if not any((folder / name).is_file() for name in CONSOLIDATED_WEIGHTS):
        if any(folder.glob("global_step*")):
            raise JudgeSFTError(
                f"{folder}: holds only ZeRO-3 partitioned shards (global_step*/), no consolidated weights; train with "
                f"zero3_save_16bit_model: true in the accelerate config, or run `python {folder}/zero_to_fp32.py "
                f"{folder} {folder} --safe_serialization` first")
        raise JudgeSFTError(f"{folder}: no model weights ({' or '.join(CONSOLIDATED_WEIGHTS)})")
    for required in ("config.json", "tokenizer_config.json"):
        if not (folder / required).is_file() and not (folder / "adapter_config.json").is_file():
            raise JudgeSFTError(f"{folder}: no {required}; is this an output or checkpoint directory of judge-sft?")


def describe_failure(error):
    """One line: the error's first line, the server's own message, and a hint on credentials for 401/403."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    server_message = getattr(error, "server_message", None)
    if server_message:
        text += f" ({' '.join(server_message.split())})"
    elif error.__cause__ is not None:
        text += f" ({str(error.__cause__).strip().splitlines()[0] if str(error.__cause__).strip() else type(error.__cause__).__name__})"
    status = getattr(getattr(error, "response", None), "status_code", None)
    if status in (401, 403):
        text += "; check the token: HF_TOKEN, or `hf auth login`, with write access to the repo"
    return text


def retry_command(folder, repo_id, revision):
    return f"judge-sft push {folder} --repo-id {repo_id}" + (f" --revision {revision}" if revision else "")


def prepare_repo(repo_id, private=True, revision=None):
    """Create the repo (if needed) and the branch `revision` (if given); return the full repo id."""
    api = HfApi()
    try:
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
    except Exception as error:  # noqa: BLE001 - huggingface_hub raises HTTP, transport and value errors alike
        raise JudgeSFTError(f"Hub repo {repo_id}: cannot create or reach it: {describe_failure(error)}") from error
    return repo_id


def push_folder(folder, repo_id, private=True, revision=None, commit_message="Upload judge model"):
    """Upload an output or checkpoint directory as it is on disk (its README.md card included); return CommitInfo.

    Local files are only read. On failure the error names the repo and the command that completes the push."""
    folder = Path(folder)
    check_pushable(folder)
    repo_id = prepare_repo(repo_id, private, revision)
    try:
        commit = HfApi().upload_folder(repo_id=repo_id, folder_path=folder, revision=revision,
                                       commit_message=commit_message, ignore_patterns=list(NOT_PUSHED))
    except Exception as error:  # noqa: BLE001
        raise JudgeSFTError(
            f"push of {folder} to {repo_id}{'@' + revision if revision else ''} failed: {describe_failure(error)}; "
            f"the local files are intact, re-run `{retry_command(folder, repo_id, revision)}` to complete it"
        ) from error
    logger.info(f"pushed {folder} to {commit.commit_url}")
    return commit


# ---------------------------------------------------------------------------------------------------- CLI


def add_arguments(parser):
    parser.add_argument("path", type=Path, help="an output directory of a run, or one of its checkpoint-N folders")
    parser.add_argument("--repo-id", required=True, help="ORG/NAME (or NAME, under your own account)")
    visibility = parser.add_mutually_exclusive_group()
    visibility.add_argument("--private", dest="private", action="store_true", default=True,
                            help="create the repo private (the default; an existing repo keeps its visibility)")
    visibility.add_argument("--public", dest="private", action="store_false", help="create the repo public")
    parser.add_argument("--revision", help="push to this branch (created from main when missing)")
    parser.add_argument("--message", default="Upload judge model", help="commit message (default: %(default)s)")


def main(args):
    check_pushable(args.path)
    write_model_card(args.path, args.repo_id)
    commit = push_folder(args.path, args.repo_id, private=args.private, revision=args.revision,
                         commit_message=args.message)
    print(f"pushed {args.path} to {commit.commit_url}")
    return 0
