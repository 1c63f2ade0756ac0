"""What a new user hits before anything trains (issue 19): `judge-sft train`'s checks in the parent (wandb without
credentials, an output_dir that is a file, GPU settings on this CPU machine, a recipe given as the accelerate config or
a Parquet file as the recipe, a set gradient accumulation), clean machine-readable stdout, and the CLI's flags. The
real CLI in a fresh process or through cli.main; no launch: each bad case exits 1 before accelerate starts."""

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO, tiny_recipe

from judge_sft import cli
from judge_sft.train.launcher import bundled_config_names

CPU = ["--accelerate-config", "cpu_zero3_2proc"]


def judge_sft(*args, cwd, env=None):
    """The real CLI in a fresh process: (exit status, stdout, stderr)."""
    command = [sys.executable, "-m", "judge_sft.cli", *map(str, args)]
    result = subprocess.run(
        command, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=600
    )
    return result.returncode, result.stdout, result.stderr


@pytest.fixture
def run(capsys, quiet_imports):
    """cli.main in this process (the commands' imports done, their notices drained): (exit status, stdout, stderr)."""
    import judge_sft.commands.train  # noqa: F401

    capsys.readouterr()

    def run_cli(*args):
        status = cli.main([str(arg) for arg in args])
        out, err = capsys.readouterr()
        return status, out, err

    return run_cli


@pytest.fixture
def recipe(tmp_path, tiny_model_dir, small_data):
    """recipes/tiny_cpu.yaml on the tiny model: 2 processes, total batch 8 = 2 x dp 2 x accumulation 2."""
    return tiny_recipe(tmp_path, tiny_model_dir, *small_data)


def test_wandb_without_credentials_is_one_line_before_launch_and_writes_nothing(run, recipe, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.netrc there
    for name in ("WANDB_API_KEY", "WANDB_MODE", "NETRC", "WANDB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    args = ["train", recipe, *CPU, "--report_to", "wandb", "--dry-run"]
    status, out, err = run(*args)
    assert (status, out) == (1, "")
    assert err == (
        "judge-sft train: error: recipe: report_to wandb, and no wandb credentials here (no WANDB_API_KEY, no "
        "api.wandb.ai entry in ~/.netrc): set WANDB_API_KEY or run `wandb login`, set WANDB_MODE=offline to log "
        "locally, or report elsewhere (--report_to tensorboard)\n"
    )
    assert not (tmp_path / "out").exists()
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert run(*args)[0] == 0
    monkeypatch.delenv("WANDB_MODE")
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    (tmp_path / "home" / ".netrc").chmod(0o600)
    assert run(*args)[0] == 0


def test_an_output_dir_that_is_a_file_is_one_line_in_a_dry_run_too(run, recipe, tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("notes\n")
    status, out, err = run("train", recipe, *CPU, "--output_dir", taken, "--dry-run")
    assert (status, out) == (1, "")
    assert err == (
        f"judge-sft train: error: recipe: output_dir {taken} is a file, not a directory; set --output_dir to a folder\n"
    )
    assert taken.read_text() == "notes\n"


def test_tiny_model_into_a_file_fails_and_says_nothing_was_written(run, tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("")
    status, out, err = run("tiny-model", taken)
    assert (status, out) == (1, "")
    assert err == f"judge-sft tiny-model: error: {taken} is a file, not a directory; name a folder for the model\n"
    assert taken.read_text() == ""


def test_plan_json_and_doctor_keep_library_notices_off_stdout_in_wandb_offline_mode(recipe, tmp_path):
    offline = {"WANDB_MODE": "offline"}
    status, out, err = judge_sft("plan", recipe, "--num-gpus", "2", "--json", cwd=tmp_path, env=offline)
    assert status == 0, err
    assert json.loads(out)["world_size"] == 2  # the whole of stdout is the JSON object
    assert "Running in WANDB offline mode" not in err  # transformers' import-time notice: not printed at all
    status, out, err = judge_sft("doctor", recipe, cwd=tmp_path, env=offline)
    assert status == 0, err
    assert [line[:6] for line in out.splitlines()[:-1]] == ["PASS  "] * (len(out.splitlines()) - 1)
    assert out.splitlines()[-1].startswith("doctor: ")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the conflicts of a GPU recipe on a machine without a GPU")
def test_a_gpu_recipe_on_this_cpu_machine_names_every_conflict_and_its_fix_at_once(run, recipe, tmp_path):
    gpu_settings = ["--bf16", "true", "--master_weights", "bf16_kahan", "--attn_implementation", "auto"]
    status, out, err = run("train", recipe, *CPU, *gpu_settings)
    assert (status, out) == (1, "")
    assert err == (
        "judge-sft train: error: recipe: this recipe is for GPUs and this machine has no CUDA GPU: bf16: true needs a "
        "GPU with bf16; master_weights bf16_kahan needs bf16; attn_implementation auto needs a CUDA GPU; to run it "
        "here add --bf16 false --master_weights fp32 --attn_implementation sdpa (recipes/tiny_cpu.yaml is a CPU "
        "recipe)\n"
    )
    assert not (tmp_path / "out").exists()


def test_a_gpu_without_bf16_is_told_only_what_it_cannot_run():
    from types import SimpleNamespace

    from judge_sft.train.preflight import Machine, machine_conflicts

    judge_args = SimpleNamespace(master_weights="bf16_kahan")
    training_args = SimpleNamespace(bf16=True, fp16=False)
    model_args = SimpleNamespace(attn_implementation="auto")
    assert machine_conflicts(judge_args, training_args, model_args, Machine(cuda=True, bf16=False)) == [
        ("bf16: true needs a GPU with bf16", "--bf16 false"),
        ("master_weights bf16_kahan needs bf16", "--master_weights fp32"),
    ]
    assert machine_conflicts(judge_args, training_args, model_args, Machine(cuda=True, bf16=True)) == []
    gpu_config = {"distributed_type": "DEEPSPEED", "use_cpu": False}  # accelerate_configs/zero3.yaml
    assert machine_conflicts(judge_args, training_args, model_args, Machine(cuda=False, bf16=False), gpu_config)[0] == (
        "the accelerate config launches on GPUs",
        "--accelerate-config cpu_zero3_2proc",
    )


def test_a_file_that_is_not_an_accelerate_config_is_one_line(run, recipe, tmp_path):
    status, out, err = run("train", recipe, "--accelerate-config", recipe, "--dry-run")
    assert (status, out) == (1, "")
    assert err == (
        f"judge-sft train: error: {recipe}: not an accelerate config (no distributed_type); name a bundled config "
        f"({', '.join(bundled_config_names())}) or write one with `accelerate config`\n"
    )
    bad_count = tmp_path / "bad.yaml"
    bad_count.write_text((REPO / "accelerate_configs" / "cpu_zero3_2proc.yaml").read_text() + "num_processes: two\n")
    status, _, err = run("train", recipe, "--accelerate-config", bad_count, "--dry-run")
    assert (status, err) == (
        1,
        f"judge-sft train: error: {bad_count}: num_processes 'two': expected a positive integer\n",
    )


def test_a_parquet_file_given_as_the_recipe_is_one_line(run, small_data):
    train_file = small_data[0]
    status, out, err = run("train", train_file, "--dry-run")
    assert (status, out) == (1, "")
    assert (
        err == f"judge-sft train: error: {train_file}: not a recipe YAML (not UTF-8 text); give the recipe .yaml file\n"
    )


def test_a_set_gradient_accumulation_is_refused_unless_it_is_the_derived_value(run, recipe):
    status, out, err = run("train", recipe, *CPU, "--gradient_accumulation_steps", "4", "--dry-run")
    assert (status, out) == (1, "")
    assert err == (
        "judge-sft train: error: recipe: gradient_accumulation_steps 4 is derived from total_batch_size, not set: "
        "total_batch_size 8 / (per_device_train_batch_size 2 x dp 2) = 2; remove the key, or set total_batch_size 16 "
        "for 4\n"
    )
    # OUTPUT_DIR/recipe.yaml records the derived value: relaunching from it works
    status, out, _ = run("train", recipe, *CPU, "--gradient_accumulation_steps", "2", "--dry-run")
    assert status == 0 and "gradient accumulation 2" in out


def test_max_length_beyond_the_models_positions_is_a_doctor_warning_and_a_plan_note(run, recipe):
    beyond = (
        "max_length 8192 is above the model's max_position_embeddings 4096: positions past 4096 were never trained; "
        "set max_length 4096 or less, or extend the context (rope_scaling)"
    )
    status, out, _ = run("doctor", recipe, "--max_length", "8192")
    assert status == 0 and f"WARN  positions: {beyond}" in out.splitlines()
    assert (
        "PASS  positions: max_length 1024 within the model's max_position_embeddings 4096" in run("doctor", recipe)[1]
    )
    status, out, _ = run("plan", recipe, "--num-gpus", "2", "--max_length", "8192", "--json")
    assert status == 0 and beyond in json.loads(out)["notes"]


def test_plan_states_the_step_time_of_the_datas_rows_and_an_epoch_as_that_many_steps(run, recipe):
    numbers = json.loads(run("plan", recipe, "--num-gpus", "2", "--json")[1])
    steps, epoch = numbers["steps_per_epoch"], numbers["epoch_hours_estimate"] * 3600
    assert numbers["step_seconds_mean"] * steps == pytest.approx(epoch)
    assert numbers["step_seconds_mean"] < numbers["step_seconds_at_max_length"]  # rows shorter than max_length
    report = run("plan", recipe, "--num-gpus", "2")[1]
    shown = f"{numbers['step_seconds_mean']:.2g} s with the data's rows: {epoch:.2g} s per epoch of {steps} steps"
    assert shown in report and " 0 s per epoch" not in report


def test_plan_requires_num_gpus_as_its_help_says_and_a_bad_count_is_one_line(run, recipe):
    assert run("plan", recipe) == (1, "", "judge-sft plan: error: --num-gpus N (GPUs per node, N >= 1) is required\n")
    zero = (1, "", "judge-sft plan: error: argument --num-gpus: expected a positive integer, got 0\n")
    assert run("plan", recipe, "--num-gpus", "0") == zero
    assert run("plan", "--num-gpus", "0", recipe) == zero
    assert (
        "GPUs per node (required)"
        in cli.build_parser("plan")._subparsers._group_actions[0].choices["plan"].format_help()
    )


def test_a_recipe_for_another_model_keeps_no_comment_about_the_templates_model(run, tiny_model_dir, tmp_path):
    output = tmp_path / "recipe.yaml"
    args = ["recipe", "--model-path", tiny_model_dir, "--train-file", "t.parquet", "-o", output]
    assert run(*args)[0] == 0
    comments = [line for line in output.read_text().splitlines()[1:] if "#" in line]
    assert [line for line in comments if "32B" in line or "32b" in line or "80.4" in line] == []
    assert comments[0] == (
        f"# The OpenJudge SFT cookbook's defaults, for {tiny_model_dir}. Whether they fit, and the fastest"
    )
    assert (
        "# The cookbook documents micro_batch_size: 12. verl 0.6.1 never read that key (it ran its default micro batch of 4);"
        in comments
    )


def test_recipe_refuses_to_overwrite_a_file_without_force(run, tiny_model_dir, tmp_path):
    output = tmp_path / "recipe.yaml"
    output.write_text("# my recipe\n")
    args = ["recipe", "--model-path", tiny_model_dir, "--train-file", "t.parquet", "-o", output]
    assert run(*args) == (
        1,
        "",
        f"judge-sft recipe: error: {output} exists; pass --force to overwrite it, or name another -o\n",
    )
    assert output.read_text() == "# my recipe\n"
    assert run(*args, "--force")[0] == 0 and "model_name_or_path" in output.read_text()


def samples_of(folder, completion, rows=1):
    from judge_sft.train.sample_files import write_samples

    prompt = [{"role": "user", "content": "Rate this answer."}]
    write_samples(folder, 4, [{"step": 4, "row": row, "prompt": prompt, "reference": "Score: 3", "completion": completion}
                              for row in range(rows)])  # fmt: skip


def test_samples_piped_into_head_stops_quietly(tmp_path):
    samples_of(tmp_path, "Score: 3\n" * 20, rows=400)  # far more than a pipe buffer
    command = f"{sys.executable} -m judge_sft.cli samples {tmp_path} 2>{tmp_path / 'err'} | head -1"
    result = subprocess.run(["bash", "-c", command + "; echo ${PIPESTATUS[0]}"], capture_output=True, text=True)
    first, status = result.stdout.splitlines()
    assert first.startswith("step 4: 400 samples") and status == "141"  # 128 + SIGPIPE, as `yes | head` exits
    assert (tmp_path / "err").read_text() == ""


def test_a_completion_of_line_breaks_shows_as_the_card_shows_it(run, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    samples_of(tmp_path, "\n\n\n")
    lines = run("samples", tmp_path)[1].splitlines()
    assert lines[-2:] == ["REFERENCE                    │ COMPLETION", "Score: 3                     │ ↵↵↵"]


def test_a_push_failure_names_its_cause_once():
    from judge_sft.hub.upload import describe_failure

    try:
        try:
            raise OSError("[Errno -2] Name or service not known")
        except OSError as cause:
            raise ConnectionError("[Errno -2] Name or service not known") from cause
    except ConnectionError as error:
        assert describe_failure(error) == "[Errno -2] Name or service not known"
    try:
        try:
            raise OSError("[Errno 111] Connection refused")
        except OSError as cause:
            raise ConnectionError("cannot connect") from cause
    except ConnectionError as error:
        assert describe_failure(error) == "cannot connect ([Errno 111] Connection refused)"


def test_every_option_of_every_command_has_help_text():
    missing = []
    for name in cli.COMMANDS:
        command = cli.build_parser(name)._subparsers._group_actions[0].choices[name]
        missing += [f"{name} {action.option_strings or action.dest}" for action in command._actions if not action.help]
    assert missing == []


def test_the_wheel_builds_without_setuptools_package_warnings_and_carries_the_data(tmp_path):
    import shutil
    import zipfile

    source = tmp_path / "source"
    ignore = shutil.ignore_patterns(".git", ".venv", "demo_output", "outputs", "build", "*.egg-info", "__pycache__")
    shutil.copytree(REPO, source, symlinks=True, ignore=ignore)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v", "-w", tmp_path / "dist"]
    result = subprocess.run([*map(str, command), str(source)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "is absent from the `packages` configuration" not in result.stdout + result.stderr
    [wheel] = (tmp_path / "dist").glob("judge_sft-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"judge_sft/recipes/qwen3_32b.yaml", "judge_sft/accelerate_configs/zero3.yaml",
            "judge_sft/train/known_models/Qwen--Qwen3-32B/config.json"} <= names  # fmt: skip
    assert [name for name in names if not name.startswith(("judge_sft/", "judge_sft-"))] == []


def test_each_upstream_warning_shows_once_per_process_through_filter_changes(tmp_path):
    script = tmp_path / "warn.py"
    script.write_text(
        "import warnings\n"
        "from typing_extensions import deprecated\n"
        "from judge_sft import patches\n"
        "patches.each_warning_once()\n"
        "@deprecated('old collective', category=FutureWarning)\n"
        "def gather(): pass\n"
        "for step in range(5):\n"
        "    gather()\n"
        "    with warnings.catch_warnings():  # as DeepSpeed and torch do within a step\n"
        "        warnings.simplefilter('ignore', UserWarning)\n"
    )
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("FutureWarning: old collective") == 1


def test_run_py_refuses_a_set_gradient_accumulation_too(recipe, monkeypatch):
    from judge_sft.errors import JudgeSFTError
    from judge_sft.train.arguments import parse_recipe

    monkeypatch.delenv("WORLD_SIZE", raising=False)  # one process: dp 1
    with pytest.raises(JudgeSFTError) as raised:
        parse_recipe([str(recipe), "--gradient-accumulation-steps", "3"])
    assert str(raised.value) == (
        "recipe: gradient_accumulation_steps 3 is derived from total_batch_size, not set: total_batch_size 8 / "
        "(per_device_train_batch_size 2 x dp 1) = 4; remove the key, or set total_batch_size 6 for 3"
    )
    assert parse_recipe([str(recipe), "--gradient_accumulation_steps", "4"])[1].gradient_accumulation_steps == 4
