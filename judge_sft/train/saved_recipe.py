"""The run's resolved recipe, saved as OUTPUT_DIR/recipe.yaml for the model card and `judge-sft push`; and the rows
each split contributed, OUTPUT_DIR/data_rows.json. Both are written once the start-up checks passed and the data loaded.

Resolved: the keys the recipe file and the command line set, with the values the parsed dataclasses hold (types
applied, gradient accumulation derived from total_batch_size). Secrets never reach the file: `hub_token`, and any
`env:` variable whose name says token, key, secret or password.
"""

import dataclasses
import enum
import json
import re
from pathlib import Path

import yaml

from judge_sft.errors import JudgeSFTError
from judge_sft.files import write_atomically

RECIPE_NAME = "recipe.yaml"
DATA_ROWS_NAME = "data_rows.json"
SECRET_KEYS = {"hub_token"}
SECRET_ENV_NAME = re.compile(r"TOKEN|KEY|SECRET|PASSWORD|CREDENTIAL", re.I)
DERIVED_KEYS = ("gradient_accumulation_steps",)  # set by plan_batch, not by the user


def given_keys(argv):
    """Keys the recipe file and the `--key value` overrides name, in that order; and the recipe's `env:` mapping."""
    argv = list(argv)
    if argv and not argv[0].startswith("-"):
        argv = ["--config", argv[0], *argv[1:]]
    recipe = {}
    if "--config" in argv:
        recipe = yaml.safe_load(Path(argv[argv.index("--config") + 1]).read_text()) or {}
    keys = [key for key in recipe if key != "env"]
    for item in argv:
        if item.startswith("--") and item != "--config":
            key = item[2:].split("=")[0]
            if key not in keys:
                keys.append(key)
    return keys, recipe.get("env") or {}


def plain(value):
    """A dataclass value as YAML holds it."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return value


def without_secrets(recipe):
    clean = {key: value for key, value in recipe.items() if key not in SECRET_KEYS}
    if isinstance(clean.get("env"), dict):
        clean["env"] = {name: value for name, value in clean["env"].items() if not SECRET_ENV_NAME.search(str(name))}
    return clean


def resolved_recipe(argv, parsed):
    """`argv` as run.py got it and its parsed dataclasses -> {key: value}, secrets removed."""
    keys, env = given_keys(argv)
    fields = {field.name: args for args in parsed for field in dataclasses.fields(args)}
    recipe = {key: plain(getattr(fields[key], key)) for key in [*keys, *DERIVED_KEYS] if key in fields}
    if env:
        recipe["env"] = env
    return without_secrets(recipe)


def save_recipe(output_dir, argv, parsed):
    """Write OUTPUT_DIR/recipe.yaml (atomically: a crash never leaves half a recipe) and return its path."""
    text = "# The resolved recipe of this run, written by judge-sft (secrets removed).\n"
    text += yaml.safe_dump(resolved_recipe(argv, parsed), sort_keys=False, allow_unicode=True)
    return write_atomically(Path(output_dir) / RECIPE_NAME, text)


def save_data_rows(output_dir, counts):
    """Write OUTPUT_DIR/data_rows.json: {"train_file" / "val_file": {rows, kept, dropped: {reason: rows}}}."""
    return write_atomically(Path(output_dir) / DATA_ROWS_NAME, json.dumps(counts, indent=2) + "\n")


def find_recipe(folder, name=RECIPE_NAME):
    """recipe.yaml (or `name`) of an output directory, or of the run a `checkpoint-N` folder belongs to; None when
    neither has one."""
    for candidate in (Path(folder) / name, Path(folder).parent / name):
        if candidate.is_file():
            return candidate
    return None


def load_data_rows(folder):
    """The run's data_rows.json as a dict; {} when the run wrote none."""
    path = find_recipe(folder, DATA_ROWS_NAME)
    try:
        return json.loads(path.read_text()) if path else {}
    except (OSError, ValueError):
        return {}


def load_recipe(folder):
    """(path, {key: value}) of the folder's recipe, secrets removed even if a hand edit put one back; (None, {})."""
    path = find_recipe(folder)
    if path is None:
        return None, {}
    return path, without_secrets(yaml.safe_load(path.read_text()) or {})


# What a checkpoint's weights are: of which model, whole or adapters, and the adapters' shapes. A change of any is a
# checkpoint the relaunch cannot load (a full fine-tune resuming a LoRA checkpoint: ~100 lines of state_dict errors).
WEIGHT_KEYS = ("model_name_or_path", "use_peft")
ADAPTER_KEYS = ("lora_r", "lora_target_modules")


def default_value(field):
    if field.default is not dataclasses.MISSING:
        return field.default
    return field.default_factory() if field.default_factory is not dataclasses.MISSING else None


def comparable(key, value):
    """TRL's ModelConfig turns a one-module `lora_target_modules` list into that module's name."""
    value = plain(value)
    if key == "lora_target_modules" and value is not None:
        return sorted([value] if isinstance(value, str) else value)
    return value


def check_resumable(folder, parsed):
    """Refuse to resume a checkpoint (or keep a final model: `folder`) under a recipe whose weights differ from those
    of the run that saved it (its output_dir's recipe.yaml; a key it does not name had its default)."""
    path, saved = load_recipe(folder)
    if path is None:
        return
    fields = {field.name: (args, field) for args in parsed for field in dataclasses.fields(args)}
    keys = [*WEIGHT_KEYS, *ADAPTER_KEYS]
    before = {key: comparable(key, saved.get(key, default_value(fields[key][1]))) for key in keys}
    now = {key: comparable(key, getattr(fields[key][0], key)) for key in keys}
    keys = WEIGHT_KEYS + (ADAPTER_KEYS if before["use_peft"] and now["use_peft"] else ())
    changed = [f"{key} {before[key]} there, {now[key]} now" for key in keys if before[key] != now[key]]
    if changed:
        raise JudgeSFTError(
            f"{folder} was made by a different recipe ({'; '.join(changed)}; see {path}): use another output_dir, or "
            "move what it holds away to start over"
        )
