"""Pushing a trained judge to the Hugging Face Hub: the repo, the upload, and where the token lives.

Every call goes through huggingface_hub's HfApi, which finds the credentials where it always does (HF_TOKEN, then
the `hf auth login` token file). A push reads only what the output (or checkpoint) directory holds, so re-running
it after a failure completes it, and it never uploads ZeRO-3 partitioned shards or optimizer state.
"""

import logging
import os
import sys
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.utils import DEFAULT_IGNORE_PATTERNS, HFValidationError, filter_repo_objects, validate_repo_id

from judge_sft.errors import JudgeSFTError, one_line
from judge_sft.hub.base_model import ADAPTER_CONFIG_NAME, local_base_model_warnings, pushed_adapter_config
from judge_sft.train.inference_template import TEMPLATE_NAME, has_training_tags
from judge_sft.train.saved_recipe import load_recipe

logger = logging.getLogger("judge_sft")

# Training state that stays local: ZeRO-3 partitioned weights and optimizer shards (global_stepN/, `latest`,
# zero_to_fp32.py, zero_to_torch.py), optimizer/scheduler/RNG states, checkpoint folders, transformers' own `_*`.
NOT_PUSHED = [
    "_*",
    "checkpoint-*",
    "global_step*",
    "latest",
    "zero_to_*.py",
    "optimizer.pt",
    "scheduler.pt",
    "scaler.pt",
    "rng_state*.pth",
    "*.partial",
]
CONSOLIDATED_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors")


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
                f"{folder} {folder} --safe_serialization` first"
            )
        raise JudgeSFTError(f"{folder}: no model weights ({' or '.join(CONSOLIDATED_WEIGHTS)})")
    for required in ("config.json", "tokenizer_config.json"):
        if not (folder / required).is_file() and not (folder / ADAPTER_CONFIG_NAME).is_file():
            raise JudgeSFTError(f"{folder}: no {required}; is this an output or checkpoint directory of judge-sft?")
    template = folder / TEMPLATE_NAME
    if template.is_file() and has_training_tags(template.read_text()):
        raise JudgeSFTError(
            f"{template}: has the training-only {{% generation %}} tags, which servers that do not render through "
            f"transformers reject as a syntax error; run `judge-sft fix-template {folder}` first"
        )


def describe_failure(error):
    """One line: the error's first line, the server's own message, and a hint on credentials for 401/403."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    server_message = getattr(error, "server_message", None)
    if server_message:
        text += f" ({' '.join(server_message.split())})"
    elif error.__cause__ is not None and (cause := one_line(error.__cause__)) not in text:  # not the same words twice
        text += f" ({cause})"
    status = getattr(getattr(error, "response", None), "status_code", None)
    if status in (401, 403):
        text += "; check the token: HF_TOKEN, or `hf auth login`, with write access to the repo"
    return text


def retry_command(folder, repo_id, revision):
    return f"judge-sft push {folder} --repo-id {repo_id}" + (f" --revision {revision}" if revision else "")


def prepare_repo(repo_id, private=True, revision=None):
    """Check the repo id, create the repo (if needed) and the branch `revision` (if given); return the full repo id."""
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise JudgeSFTError(f"{repo_id!r} is not a valid Hub repo id: {one_line(error)}") from None
    api = HfApi()
    try:
        repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
    except Exception as error:  # noqa: BLE001 - huggingface_hub raises HTTP, transport and value errors alike
        raise JudgeSFTError(f"Hub repo {repo_id}: cannot create or reach it: {describe_failure(error)}") from error
    return repo_id


def push_folder(folder, repo_id, revision=None, commit_message="Upload judge model", warn=logger.warning):
    """Upload an output or checkpoint directory as it is on disk (its README.md card included) to a repo (and branch)
    that `prepare_repo` made; return CommitInfo. An adapter config goes up naming the recipe's `base_model_id`; `warn`
    gets a line for each pushed file that names the base model by a local path.

    Local files are only read. On failure the error names the repo and the command that completes the push."""
    folder = Path(folder)
    check_pushable(folder)
    recipe_path, recipe = load_recipe(folder)
    for warning in local_base_model_warnings(folder, recipe, recipe_path):
        warn(warning)
    try:
        commit = upload(folder, repo_id, revision, commit_message, pushed_adapter_config(folder, recipe))
    except Exception as error:  # noqa: BLE001
        raise JudgeSFTError(
            f"push of {folder} to {repo_id}{'@' + revision if revision else ''} failed: {describe_failure(error)}; "
            f"the local files are intact, re-run `{retry_command(folder, repo_id, revision)}` to complete it"
        ) from error
    logger.info(f"pushed {folder} to {commit.commit_url}")
    return commit


def upload(folder, repo_id, revision, commit_message, adapter_config=None):
    """One commit of the folder's files, NOT_PUSHED left out; with `adapter_config`, those bytes in place of the
    local ADAPTER_CONFIG_NAME (adapter folders are small: no need for upload_folder's large-folder path)."""
    api = HfApi()
    if adapter_config is None:
        return api.upload_folder(
            repo_id=repo_id,
            folder_path=folder,
            revision=revision,
            commit_message=commit_message,
            ignore_patterns=list(NOT_PUSHED),
        )
    files = sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())
    ignored = [*NOT_PUSHED, *DEFAULT_IGNORE_PATTERNS, ADAPTER_CONFIG_NAME]
    operations = [
        CommitOperationAdd(path, folder / path) for path in filter_repo_objects(files, ignore_patterns=ignored)
    ]
    operations.append(CommitOperationAdd(ADAPTER_CONFIG_NAME, adapter_config))
    return api.create_commit(repo_id, operations, commit_message=commit_message, revision=revision)
