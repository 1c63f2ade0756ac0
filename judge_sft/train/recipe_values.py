"""A recipe's values, checked before anything loads: the YAML file read strictly (a syntax error names its line, a key
given twice is refused), every value against its key's type, and the ranges outside which a value is meaningless.

Each failure is one line naming where the value came from (the recipe file and line, or the command line), the key,
the value and what was expected. parse_recipe (run.py, plan, doctor) and `judge-sft recipe` share these checks.
Nothing here imports TRL: the parser's actions are passed in.
"""

import argparse
import re

import yaml

from judge_sft.errors import JudgeSFTError

POSITIVE_INT = (lambda value: value >= 1, "a positive integer")
POSITIVE = (lambda value: value > 0, "a number > 0")
NON_NEGATIVE = (lambda value: value >= 0, "a number >= 0")
FRACTION = (lambda value: 0 <= value < 1, "a number in [0, 1)")
RANGES = {
    **dict.fromkeys(
        (
            "max_length",
            "total_batch_size",
            "per_device_train_batch_size",
            "per_device_eval_batch_size",
            "sp_size",
            "dataset_num_proc",
            "save_total_limit",
            "lora_r",
        ),
        POSITIVE_INT,
    ),
    **dict.fromkeys(
        (
            "num_train_epochs",
            "learning_rate",
            "adam_epsilon",
            "logging_steps",
            "eval_steps",
            "save_steps",
            "lora_alpha",
        ),
        POSITIVE,
    ),
    **dict.fromkeys(("weight_decay", "warmup_steps", "max_grad_norm", "dataloader_num_workers"), NON_NEGATIVE),
    **dict.fromkeys(("adam_beta1", "adam_beta2", "lora_dropout"), FRACTION),
    "max_steps": (lambda value: value == -1 or value >= 1, "-1 (train num_train_epochs) or a positive integer"),
}
# By the converter's name: TRL wraps the converter of a `T | None` field (accepting "none"), keeping its name.
TYPE_NAMES = {"int": "an integer", "float": "a number", "str": "a string", "string_to_bool": "true or false"}
NEGATIVE_NUMBER = re.compile(r"^-\.?\d")


def shown(value):
    """A value as the user wrote it: YAML's spelling for null and booleans, quotes around text."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, str) else str(value)


def range_problem(key, value, written=None):
    """What `key` expects when `value` (already of the key's type; `written` as the user wrote it) is meaningless for
    it; None when it is fine."""
    if value is None or key not in RANGES:
        return None
    accepts, expected = RANGES[key]
    return None if accepts(value) else f"expected {expected}, got {shown(value) if written is None else written}"


def expected_type(action):
    if action.choices:
        return "one of " + ", ".join(str(choice) for choice in action.choices)
    return TYPE_NAMES.get(converter_name(action))


def converter_name(action):
    return getattr(action.type, "__name__", None)


def value_problem(action, value, nullable):
    """What is wrong with `value` (from the YAML file, or a command-line string) for the key `action` parses; None
    when nothing is. Types the parser does not convert from text (mappings, TRL's config objects) pass."""
    expected = expected_type(action)
    if expected is None:
        return None
    if value is None:
        return None if nullable else f"expected {expected}, got null"
    if isinstance(value, list) and action.nargs in ("+", "*"):
        items = value
    elif isinstance(value, (list, dict)):
        if converter_name(action) != "str" or action.choices:
            return f"expected {expected}, got a YAML {'list' if isinstance(value, list) else 'mapping'}"
        items = []  # a free-text key given a list or mapping (report_to: [wandb, tensorboard]): the dataclass reads it
    else:
        items = [value]
    for item in items:
        problem = item_problem(action, action.dest, item, expected)
        if problem:
            return problem
    return None


def item_problem(action, key, item, expected):
    try:
        converted = action.type(shown(item) if isinstance(item, bool) else str(item))
    except (ValueError, TypeError, argparse.ArgumentTypeError):
        return f"expected {expected}, got {shown(item)}"
    if action.choices and converted not in action.choices:
        return f"expected {expected}, got {shown(item)}"
    return range_problem(key, converted, item if isinstance(item, str) else shown(item))


# ---- The recipe file


class DuplicateKey(yaml.MarkedYAMLError):
    pass


class RecipeLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a mapping that names a key twice (PyYAML keeps the last value silently)."""

    def construct_mapping(self, node, deep=False):
        first_line = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in first_line:
                problem = f"`{key}` is given twice (first on line {first_line[key]}); name each key once"
                raise DuplicateKey(problem=problem, problem_mark=key_node.start_mark)
            first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def read_recipe(path):
    """(mapping, {key: line}) of a recipe file; a JudgeSFTError naming the line when it is not valid YAML."""
    try:
        with open(path) as stream:
            loader = RecipeLoader(stream)
            try:
                node = loader.get_single_node()
                recipe = loader.construct_document(node) if node is not None else None
            finally:
                loader.dispose()
    except OSError as error:
        raise JudgeSFTError(f"{path}: cannot read recipe ({error.strerror})")
    except UnicodeDecodeError:  # a Parquet file, a checkpoint given for the recipe
        raise JudgeSFTError(f"{path}: not a recipe YAML (not UTF-8 text); give the recipe .yaml file")
    except DuplicateKey as error:
        raise JudgeSFTError(f"{path} line {error.problem_mark.line + 1}: {error.problem}")
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        raise JudgeSFTError(f"{path} line {mark.line + 1}, column {mark.column + 1}: invalid YAML: {error.problem}")
    except yaml.YAMLError as error:
        raise JudgeSFTError(f"{path}: invalid YAML ({str(error).splitlines()[0]})")
    if not isinstance(recipe, dict):
        raise JudgeSFTError(f"{path}: a recipe is a YAML mapping of key: value")
    return recipe, {key_node.value: key_node.start_mark.line + 1 for key_node, _ in node.value}


def check_file_values(path, recipe, lines, actions, nullable_keys):
    """Every value of the recipe file against its key's type and range; null only for `nullable_keys`."""
    for key, value in recipe.items():
        if key in actions:
            problem = value_problem(actions[key], value, key in nullable_keys)
            if problem:
                raise JudgeSFTError(f"{path} line {lines[key]}: {key}: {problem}")


def check_command_line_values(argv, actions):
    """Every `--key value` of the command line against its key's type and range (unknown keys are named later)."""
    by_option = {option: action for action in actions.values() for option in action.option_strings}
    index = 0
    while index < len(argv):
        name, equals, inline = argv[index].partition("=")
        index += 1
        action = by_option.get(name)
        if action is None:
            continue
        values = [inline] if equals else []
        wanted = None if action.nargs in ("+", "*") else 1
        while not equals and index < len(argv) and not is_option(argv[index]) and len(values) != wanted:
            values.append(argv[index])
            index += 1
        expected = expected_type(action)
        for value in values if expected else []:
            problem = item_problem(action, action.dest, value, expected)
            if problem:
                raise JudgeSFTError(f"command line: {name}: {problem}")


def is_option(token):
    return token.startswith("-") and not NEGATIVE_NUMBER.match(token)
