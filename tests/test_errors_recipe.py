"""Bad recipe values through the real entry points (`judge-sft plan`, `doctor`, `recipe`, and run.py): each is one
line naming where the value came from (the recipe file and its line, or the command line), the key, the value and
what was expected; exit 1 (argparse's 2 for `judge-sft recipe`'s own flags); and nothing is written."""

import pytest
from conftest import run_py

from judge_sft import cli

FIRST_LINE_UNDER_TEST = 6  # recipe() writes five valid lines before the text under test


def files_under(folder):
    return sorted(path.relative_to(folder) for path in folder.rglob("*"))


@pytest.fixture
def recipe(tmp_path, tiny_model_dir, small_data, quiet_imports):
    """recipe(text) -> a recipe file that is valid but for `text`, from line 6; the output directory is never made."""

    def write(text):
        train, val = small_data
        path = tmp_path / "recipe.yaml"
        path.write_text(
            f"model_name_or_path: {tiny_model_dir}\ntrain_file: {train}\nval_file: {val}\n"
            f"output_dir: {tmp_path / 'out'}\nreport_to: none\n{text}\n"
        )
        return path

    return write


def run_command(capsys, command, recipe, *overrides):
    machine = ["--num-gpus", "8"] if command == "plan" else []
    code = cli.main([command, str(recipe), *machine, *map(str, overrides)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


WRONG_TYPES = [
    ("learning_rate: abc", "learning_rate: expected a number, got 'abc'"),
    ("bf16: maybe", "bf16: expected true or false, got 'maybe'"),
    ("per_device_train_batch_size: 2.5", "per_device_train_batch_size: expected an integer, got 2.5"),
    ("train_on: last", "train_on: expected one of auto, final, all, got 'last'"),
    ("learning_rate: [1.0e-5]", "learning_rate: expected a number, got a YAML list"),
    ("learning_rate:", "learning_rate: expected a number, got null"),
]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["--learning_rate", "abc"], "--learning_rate: expected a number, got 'abc'"),
        (["--learning-rate=abc"], "--learning-rate: expected a number, got 'abc'"),
        (["--bf16", "maybe"], "--bf16: expected true or false, got 'maybe'"),
        (["--eval_strategy", "sometimes"], "--eval_strategy: expected one of no, steps, epoch, got 'sometimes'"),
        (["--learning_rate"], "argument --learning_rate/--learning-rate: expected one argument"),
    ],
)
def test_a_command_line_value_of_the_wrong_type_is_one_line_naming_the_flag_value_and_type(
    capsys, tmp_path, recipe, overrides, message
):
    path = recipe("")
    before = files_under(tmp_path)
    assert run_command(capsys, "plan", path, *overrides) == (1, "", f"judge-sft plan: error: command line: {message}\n")
    assert files_under(tmp_path) == before


RANGES = [
    ("max_length: 0", "max_length: expected a positive integer, got 0"),
    ("total_batch_size: -8", "total_batch_size: expected a positive integer, got -8"),
    ("num_train_epochs: 0", "num_train_epochs: expected a number > 0, got 0"),
    ("learning_rate: -1.0e-5", "learning_rate: expected a number > 0, got -1e-05"),
    ("warmup_steps: -0.1", "warmup_steps: expected a number >= 0, got -0.1"),
    ("adam_beta2: 1.0", "adam_beta2: expected a number in [0, 1), got 1.0"),
    ("max_steps: 0", "max_steps: expected -1 (train num_train_epochs) or a positive integer, got 0"),
]


@pytest.mark.parametrize("command", ["plan", "doctor"])
@pytest.mark.parametrize("text, message", WRONG_TYPES + RANGES)
def test_a_recipe_value_of_the_wrong_type_or_meaningless_is_one_line_naming_file_line_key_value_and_expectation(
    capsys, tmp_path, recipe, command, text, message
):
    """Checked before anything loads: `plan` once said "fits" with max_length 0, and doctor passed it."""
    path = recipe(text)
    before = files_under(tmp_path)
    assert run_command(capsys, command, path) == (
        1,
        "",
        f"judge-sft {command}: error: {path} line {FIRST_LINE_UNDER_TEST}: {message}\n",
    )
    assert files_under(tmp_path) == before


@pytest.mark.parametrize("command", ["plan", "doctor"])
def test_a_meaningless_number_on_the_command_line_is_refused_naming_the_flag(capsys, recipe, command):
    assert run_command(capsys, command, recipe(""), "--max_length", "-3") == (
        1,
        "",
        f"judge-sft {command}: error: command line: --max_length: expected a positive integer, got -3\n",
    )


@pytest.mark.parametrize(
    "flag, key, value, message",
    [
        ("--max-length", "max_length", "-3", "expected a positive integer, got -3"),
        ("--epochs", "num_train_epochs", "0", "expected a number > 0, got 0"),
        ("--micro-batch-size", "per_device_train_batch_size", "two", "expected an integer, got 'two'"),
    ],
)
def test_judge_sft_recipe_refuses_what_the_recipe_checks_refuse_with_the_same_words(
    capsys, tmp_path, recipe, flag, key, value, message
):
    output = tmp_path / "written.yaml"
    arguments = ["recipe", "--model-path", "m", "--train-file", "t.parquet", flag, value, "-o", str(output)]
    with pytest.raises(SystemExit) as exit_info:
        cli.main(arguments)
    assert exit_info.value.code == 2 and not output.exists()
    assert capsys.readouterr().err.splitlines()[-1] == f"judge-sft recipe: error: argument {flag}: {message}"
    # the same value in a recipe run.py, plan and doctor read: the same check, the same words
    assert run_command(capsys, "plan", recipe(""), f"--{key}", value) == (
        1,
        "",
        f"judge-sft plan: error: command line: --{key}: {message}\n",
    )


@pytest.mark.parametrize(
    "command, text, message",
    [
        (
            "plan",
            "learning_rate: 1.0e-5\n  warmup_steps: 0.1",
            "line 7, column 15: invalid YAML: mapping values are not allowed here",
        ),
        # PyYAML alone would keep the second value silently
        (
            "doctor",
            "max_length: 512\nlearning_rate: 1.0e-5\nmax_length: 1024",
            "line 8: `max_length` is given twice (first on line 6); name each key once",
        ),
        ("plan", "max_lenght: 512", "line 6: unknown recipe key `max_lenght`; did you mean `max_length`?"),
    ],
    ids=["invalid YAML", "a key given twice", "an unknown key"],
)
def test_a_recipe_file_mistake_names_its_line(capsys, recipe, command, text, message):
    path = recipe(text)
    assert run_command(capsys, command, path) == (1, "", f"judge-sft {command}: error: {path} {message}\n")


def test_run_py_prints_the_same_one_line_instead_of_argparse_usage(tmp_path, recipe):
    """run.py's own entry point (one process; the launcher adds nothing to the parsing): no usage, exit 1."""
    result = run_py(recipe("bf16: maybe"))
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        f"judge-sft run: error: {tmp_path / 'recipe.yaml'} line 6: bf16: expected true or false, got 'maybe'"
    )
    assert "usage:" not in result.stdout + result.stderr and not (tmp_path / "out").exists()
