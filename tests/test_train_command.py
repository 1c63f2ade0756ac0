"""`judge-sft train`: bundled configs by name, the recipe checked before any process starts, one summary line for a
failed child, a wheel that trains outside a checkout, multi-node arguments on loopback, and the pinned versions."""

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO, conversation, free_port, write_messages
from safetensors.torch import load_file

from judge_sft.cli import main as cli_main

SECRETS = {"HF_TOKEN": "hf_judgesftTestSecret0123", "WANDB_API_KEY": "wandb0123judgesftTestSecret"}
# CPUs here: fp32, so fp32 master weights rather than the template's bf16_kahan
TRAIN_OVERRIDES = ["--bf16", "false", "--dtype", "float32", "--master_weights", "fp32", "--attn_implementation", "sdpa"]
TRAIN_OVERRIDES += ["--max_steps", "2"]
TRAIN_OVERRIDES += ["--eval_steps", "2", "--save_steps", "2", "--report_to", "none", "--eval_samples", "0"]


def judge_sft(*args, cwd, env=None, timeout=900):
    """The real CLI in a fresh process: (exit status, stdout, stderr)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    command = [sys.executable, "-m", "judge_sft.cli", *map(str, args)]
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return result.returncode, result.stdout, result.stderr


def judge_sft_here(capsys, *args):
    """The CLI in this process, its imports already paid (the `quiet_imports` fixture): (exit status, stdout, stderr).
    For refusals in the parent; a fresh process (`judge_sft`) where its whole output is what a test reads."""
    status = cli_main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    directory = tmp_path_factory.mktemp("train_data")
    rows = [conversation(index, 1 + index % 2) for index in range(24)]
    metadata = {b"judge_sft.train_on": b"final"}
    return write_messages(directory / "train.parquet", rows[:20], metadata), write_messages(
        directory / "val.parquet", rows[20:], metadata
    )


@pytest.fixture(scope="module")
def recipe(tmp_path_factory, small_vocab_model_dir, data):
    """What a user writes with `judge-sft recipe` for 2 processes."""
    directory = tmp_path_factory.mktemp("recipe")
    status, _, err = judge_sft(
        "recipe", "--model-path", small_vocab_model_dir, "--train-file", data[0], "--val-file", data[1],
        "--total-batch-size", "4", "--micro-batch-size", "2", "--sp-size", "1", "--num-gpus", "2",
        "--max-length", "512", "--no-cpu-offload", "-o", directory / "recipe.yaml", cwd=directory,
    )  # fmt: skip
    assert status == 0, err
    return directory / "recipe.yaml"


def test_a_bad_recipe_fails_in_the_parent_with_one_line_and_starts_nothing(recipe, tmp_path, quiet_imports, capsys):
    output_dir = tmp_path / "out"
    status, _, err = judge_sft(
        "train", recipe, "--accelerate-config", "cpu_zero3_2proc", "--output_dir", output_dir, "--sp_size", "3",
        cwd=tmp_path,
    )  # fmt: skip
    assert (status, err) == (1, "judge-sft train: error: recipe: world size 2 is not divisible by sp_size 3\n")
    for overrides, message in [  # in this process: the same command, without another start-up
        (
            ["--cpu_offload", "true"],
            "recipe: cpu_offload is all but the launch's DeepSpeed config offloads nothing (optimizer states and "
            "parameters on the GPU); set `cpu_offload: none` or launch with --config_file "
            "accelerate_configs/zero3_offload.yaml",
        ),
        (
            ["--bf16", "false"],
            "recipe: master_weights bf16_kahan keeps weights, gradients and Adam states in bf16: it needs `bf16: true`",
        ),
        (
            ["--accelerate-config", "cpu_zero2_2proc"],
            "recipe: master_weights bf16_kahan runs under DeepSpeed ZeRO-3 only; launch with --config_file "
            "accelerate_configs/zero3.yaml",
        ),
        (["--learning_rat", "1e-5"], "command line: unknown recipe key `learning_rat`; did you mean `learning_rate`?"),
    ]:
        status, _, err = judge_sft_here(
            capsys, "train", recipe, "--accelerate-config", "cpu_zero3_2proc", "--output_dir", output_dir, *overrides
        )
        assert status == 1
        assert err.startswith(f"judge-sft train: error: {message}") and err.count("\n") == 1
    assert not output_dir.exists()


def test_an_unknown_bundled_config_is_named_with_the_choices(recipe, quiet_imports, capsys):
    status, _, err = judge_sft_here(capsys, "train", recipe, "--accelerate-config", "zero9")
    assert status == 1
    assert err == (
        "judge-sft train: error: --accelerate-config zero9: no such bundled config (one of cpu_zero1_2proc, "
        "cpu_zero2_2proc, cpu_zero3_2proc, zero2, zero3, zero3_multinode, zero3_offload, zero3_offload_optimizer, or a "
        "path to a YAML file)\n"
    )


def test_dry_run_prints_the_batch_plan_and_the_exact_accelerate_command(
    recipe, tmp_path, quiet_imports, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    status, out, _ = judge_sft_here(
        capsys, "train", recipe, "--max_steps", "2", "--dry-run", "--num-machines", "2", "--machine-rank", "1",
        "--main-process-ip", "10.1.2.3", "--main-process-port", "6001", "--num-processes", "2",
    )  # fmt: skip
    assert status == 0
    config = (
        REPO
        / "judge_sft"
        / "accelerate_configs"
        / ("zero3_multinode.yaml" if torch.cuda.is_available() else "cpu_zero3_2proc.yaml")
    )
    assert [line for line in out.splitlines() if line.startswith("judge-sft train: ")] == [
        "judge-sft train: world_size=2 sp_size=1 -> dp=2; global batch 4 = micro batch 2 x dp 2 x gradient accumulation 1",
        f"judge-sft train: accelerate launch --config_file {config} --num_processes 2 --num_machines 2 --machine_rank 1 "
        f"--main_process_ip 10.1.2.3 --main_process_port 6001 --module judge_sft.run {recipe} --max_steps 2",
    ]
    assert not (tmp_path / "outputs").exists()


def test_a_non_standard_multinode_launcher_is_refused_unless_allowed(
    recipe, tmp_path, quiet_imports, capsys, monkeypatch
):
    config = yaml.safe_load((REPO / "accelerate_configs" / "cpu_zero3_2proc.yaml").read_text())
    config["deepspeed_config"]["deepspeed_multinode_launcher"] = "pdsh"
    (tmp_path / "pdsh.yaml").write_text(yaml.safe_dump(config))
    launch = ["train", recipe, "--accelerate-config", tmp_path / "pdsh.yaml", "--num-machines", "2", "--dry-run"]
    monkeypatch.chdir(tmp_path)
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    status, _, err = judge_sft_here(capsys, *launch)
    assert status == 1
    assert err == (
        f"judge-sft train: error: {tmp_path / 'pdsh.yaml'}: deepspeed_multinode_launcher pdsh makes accelerate write "
        "this shell's whole environment (HF_TOKEN, WANDB_API_KEY included) to .deepspeed_env in the working "
        "directory; use standard, or pass --allow-env-file to accept that\n"
    )
    assert judge_sft_here(capsys, *launch, "--allow-env-file")[0] == 0
    assert not (tmp_path / ".deepspeed_env").exists()
    assert ".deepspeed_env" in (REPO / ".gitignore").read_text().split()


@pytest.mark.launch
def test_a_failed_child_ends_in_its_error_once_and_one_summary_line(recipe, tmp_path):
    status, out, err = judge_sft(
        "train", recipe, "--accelerate-config", "cpu_zero3_2proc", "--main-process-port", free_port(),
        "--train_file", tmp_path / "missing.parquet", "--output_dir", tmp_path / "out", *TRAIN_OVERRIDES, cwd=tmp_path,
    )  # fmt: skip
    log = out + err
    assert status == 1
    assert len(re.findall(r"^judge-sft run: error: ", log, re.M)) == 1
    assert f"judge-sft run: error: doctor: data missing.parquet: {tmp_path / 'missing.parquet'}: no such file" in log
    assert re.search(r"^judge-sft train: error: training failed: rank [01] exited with status 1$", err, re.M)
    assert "ChildFailedError" not in log and "Traceback" not in log


def build_wheel(directory):
    """judge-sft's wheel, built from a copy of the checkout (so the checkout gets no build/ folder)."""
    source = directory / "source"
    ignore = shutil.ignore_patterns(".git", ".venv", "demo_output", "outputs", "build", "*.egg-info", "__pycache__")
    shutil.copytree(REPO, source, symlinks=True, ignore=ignore)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(directory / "dist"), str(source)]
    try:
        import setuptools  # noqa: F401 - present: build offline with it
    except ImportError:
        pass
    else:
        command.insert(4, "--no-build-isolation")
    subprocess.run(command, check=True, capture_output=True, timeout=600)
    [wheel] = (directory / "dist").glob("judge_sft-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel_run(tmp_path_factory, recipe):
    """The wheel installed with --no-deps into a target folder, used from a directory that is not a checkout:
    `judge-sft recipe` from the packaged template, then `judge-sft train` with a bundled config by name."""
    directory = tmp_path_factory.mktemp("wheel")
    target = directory / "site"
    wheel = build_wheel(directory)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=600)  # fmt: skip
    work = directory / "elsewhere"
    work.mkdir()
    env = {"PYTHONPATH": str(target)}
    values = yaml.safe_load(recipe.read_text())
    status, _, err = judge_sft(
        "recipe", "--model-path", values["model_name_or_path"], "--train-file", values["train_file"],
        "--val-file", values["val_file"], "--total-batch-size", "4", "--micro-batch-size", "2", "--sp-size", "1",
        "--num-gpus", "2", "--max-length", "512", "--no-cpu-offload", "--output-dir", "out", "-o", "R.yaml",
        cwd=work, env=env,
    )  # fmt: skip
    assert status == 0, err
    probe = "import judge_sft.train.recipe_template as t; print(t.TEMPLATE)"
    template = subprocess.run([sys.executable, "-c", probe], env={**os.environ, **env}, cwd=work, capture_output=True,
                              text=True, check=True).stdout.strip()  # fmt: skip
    status, out, err = judge_sft(
        "train", "R.yaml", "--accelerate-config", "cpu_zero3_2proc", "--main-process-port", free_port(),
        *TRAIN_OVERRIDES, cwd=work, env=env,
    )  # fmt: skip
    assert status == 0, (out + err)[-6000:]
    return work, target, template


@pytest.mark.launch
def test_the_wheel_carries_recipes_and_configs_and_trains_outside_a_checkout(wheel_run):
    work, target, template = wheel_run
    assert Path(template) == target / "judge_sft" / "recipes" / "qwen3_32b.yaml"
    assert (target / "judge_sft" / "accelerate_configs" / "cpu_zero3_2proc.yaml").is_file()
    assert "# Written by `judge-sft recipe` from recipes/qwen3_32b.yaml" in (work / "R.yaml").read_text()
    assert (work / "out" / "model.safetensors").is_file() and (work / "out" / "checkpoint-2").is_dir()


@pytest.mark.launch
def test_two_machines_on_loopback_train_like_one_two_process_run_and_write_no_secret(wheel_run, tmp_path):
    work, _, _ = wheel_run
    port, started = free_port(), time.time()
    launch = ["train", work / "R.yaml", "--accelerate-config", "cpu_zero3_2proc", "--num-processes", "2"]
    launch += ["--num-machines", "2", "--main-process-ip", "127.0.0.1", "--main-process-port", str(port)]
    launch += ["--output_dir", tmp_path / "out", *TRAIN_OVERRIDES]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **SECRETS}
    nodes = [
        subprocess.Popen(
            [sys.executable, "-m", "judge_sft.cli", *map(str, launch), "--machine-rank", str(rank)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for rank in (0, 1)
    ]
    logs = [node.communicate(timeout=900)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], logs[0][-3000:] + logs[1][-3000:]
    one_node, two_nodes = (
        load_file(work / "out" / "model.safetensors"),
        load_file(tmp_path / "out" / "model.safetensors"),
    )
    assert max((one_node[name] - two_nodes[name]).abs().max().item() for name in one_node) <= 1e-6
    assert not (REPO / ".deepspeed_env").exists()
    written = [path for folder in (REPO, tmp_path / "out") for path in folder.rglob("*")
               if path.is_file() and ".venv" not in path.parts and ".git" not in path.parts
               and path.stat().st_mtime >= started]  # fmt: skip
    assert written  # the run wrote its outputs, and none holds a secret
    assert [path for path in written if any(secret.encode() in path.read_bytes() for secret in SECRETS.values())] == []


def test_installed_versions_equal_the_constraints():
    constraints = os.environ.get("JUDGE_SFT_CONSTRAINTS", "constraints.txt")
    if not constraints:
        pytest.skip("make test CONSTRAINTS= : trying unpinned versions")
    pins = {}
    for line in (REPO / constraints).read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name] = version
    installed = {name: importlib.metadata.version(name) for name in pins}
    if not torch.cuda.is_available():
        assert {name: version for name, version in installed.items() if version != pins[name]} == {}
    else:  # on a GPU box `make` keeps the CUDA torch
        assert {name for name, version in installed.items() if version != pins[name]} <= {"torch"}


def test_this_venvs_bin_goes_first_on_path_once_as_if_activated(monkeypatch):
    """DeepSpeed builds its CPU ops with the `ninja` on PATH: the venv's, as `make setup` built them, or every op was
    rebuilt by the system's (another version) in the first launch."""
    from judge_sft.train.launch import put_this_venv_first_on_path

    monkeypatch.setenv("PATH", os.pathsep.join(["/usr/bin", "/bin"]))
    put_this_venv_first_on_path()
    put_this_venv_first_on_path()
    assert os.environ["PATH"] == os.pathsep.join([os.path.dirname(sys.executable), "/usr/bin", "/bin"])
    assert shutil.which("ninja") == os.path.join(os.path.dirname(sys.executable), "ninja")
