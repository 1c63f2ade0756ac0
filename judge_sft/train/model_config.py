"""Where the base model is, and its config.json, read the same way by run.py's checks, doctor, plan and inspect-data.

A `model_name_or_path` that names nothing readable is one line saying what: a local directory that does not exist, or
a Hub id that is neither cached nor reachable. The shipped recipes' models have their config.json bundled in
known_models/, byte for byte as published at the revision KNOWN_MODELS names, so plan and doctor read their shape
without the Hub.
"""

import os
from pathlib import Path

from judge_sft.errors import JudgeSFTError

KNOWN_MODELS_DIR = Path(__file__).parent / "known_models"
# Hub id -> the revision whose config.json known_models/<org>--<name>/config.json is (its sha256: tests/test_errors_model.py)
KNOWN_MODELS = {
    "Qwen/Qwen3-32B": "9216db5781bf21249d130ec9da846c4624c16137",
    "Qwen/Qwen3-14B": "40c069824f4251a91eefaf281ebe4c544efd3e18",
}
HUB_TIMEOUT_S = 10


def bundled_config_dir(name, revision=None):
    """The known_models/ folder holding `name`'s config.json at `revision`, or None."""
    if name in KNOWN_MODELS and revision in (None, "main", KNOWN_MODELS[name]) and not os.path.exists(name):
        return KNOWN_MODELS_DIR / name.replace("/", "--")
    return None


def model_source_problem(name, revision=None):
    """None when `name` is a local directory or a Hub model this machine can read; else why not, in one line.

    One request to the Hub at most, without retries: an unreachable Hub fails in seconds, not after huggingface_hub's
    five retries."""
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url, try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError, RepositoryNotFoundError, RevisionNotFoundError
    from huggingface_hub.utils import validate_repo_id

    if os.path.isdir(name):
        return None
    if os.path.exists(name):
        return f"{name}: not a directory; model_name_or_path is a model directory or a Hub id"
    try:
        validate_repo_id(name)
    except HFValidationError:
        return f"{name}: no such model directory"
    if isinstance(try_to_load_from_cache(name, "config.json", revision=revision), str):
        return None
    local = f"{name}: no such local directory, and"
    if constants.HF_HUB_OFFLINE:
        return f"{local} not in the Hub cache (HF_HUB_OFFLINE is set)"
    try:
        get_hf_file_metadata(hf_hub_url(name, "config.json", revision=revision), timeout=HUB_TIMEOUT_S)
    except RevisionNotFoundError:
        return f"{local} the Hub model has no revision {revision!r}"
    except RepositoryNotFoundError:  # also gated and private repos without a token
        return f"{local} no such Hub model (or it needs a token: HF_TOKEN)"
    except Exception as error:  # connection errors of any HTTP stack: the reason is in the message
        return f"{local} not in the Hub cache; the Hub is not reachable ({str(error).splitlines()[0]})"
    return None


def require_model_source(name, revision=None):
    problem = model_source_problem(name, revision)
    if problem:
        raise JudgeSFTError(problem)


def load_model_config(model_args):
    from transformers import AutoConfig

    name, revision = model_args.model_name_or_path, model_args.model_revision
    bundled = bundled_config_dir(name, revision)
    if bundled is None:
        require_model_source(name, revision)
    try:
        return AutoConfig.from_pretrained(bundled or name, revision=None if bundled else revision)
    except (OSError, ValueError) as error:
        reason = str(error).splitlines()[0]
        raise JudgeSFTError(f"{name}: cannot read the model's config.json ({reason})")
