"""Which base model a judge names (docs/inference.md#the-base-model-a-judge-names).

run.py records a local base model directory as an absolute path, so the adapter config PEFT writes loads from any
working directory on this machine. What is pushed names the recipe's `base_model_id` (the base model's Hub id) when
it has one: the model card's `base_model:` and "fine-tuned from", and the pushed adapter config.
"""

import json
import os
import re
from pathlib import Path

ADAPTER_CONFIG_NAME = "adapter_config.json"
HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def is_hub_id(name):
    return bool(name) and HUB_ID.match(str(name)) is not None and not os.path.exists(name)


def is_local_path(name):
    return bool(name) and (os.path.isabs(name) or os.path.exists(name) or str(name).startswith((".", "~")))


def base_model_of(recipe):
    """The base model a run's card names: `base_model_id`, else `model_name_or_path` as the run recorded it."""
    return recipe.get("base_model_id") or recipe.get("model_name_or_path")


def read_adapter_config(folder):
    path = Path(folder) / ADAPTER_CONFIG_NAME
    return json.loads(path.read_text()) if path.is_file() else None


def pushed_adapter_config(folder, recipe):
    """The bytes of ADAPTER_CONFIG_NAME as pushed, naming `base_model_id`; None when there is nothing to rewrite."""
    config = read_adapter_config(folder)
    if config is None or not recipe.get("base_model_id"):
        return None
    config["base_model_name_or_path"] = recipe["base_model_id"]
    return (json.dumps(config, indent=2, sort_keys=True) + "\n").encode()


def local_base_model_warnings(folder, recipe, recipe_path):
    """One line for each pushed file that would name the base model by a path that exists only on this machine."""
    fix = f"set `base_model_id: ORG/NAME` (the base model's Hub id) in {recipe_path or 'the recipe'}"
    named = {"the model card": base_model_of(recipe)}
    config = read_adapter_config(folder)
    if config is not None:
        named[f"the pushed {ADAPTER_CONFIG_NAME}"] = recipe.get("base_model_id") or config.get(
            "base_model_name_or_path"
        )
    return [
        f"{what} names the base model by a local path ({name}), which users of the repo cannot load; {fix}"
        for what, name in named.items()
        if is_local_path(name)
    ]
