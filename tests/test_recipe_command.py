"""`judge-sft recipe`, recipes/run_sft_rm.sh (one real 2-process CPU launch) and recipes/launch.slurm (fake srun)."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO, conversation, write_messages

from judge_sft.cli import main
from judge_sft.train.loss_curve import plot_losses

VENV_BIN = str(Path(sys.executable).parent)
TEMPLATE = REPO / "recipes" / "qwen3_32b.yaml"
RUN_SFT_RM = REPO / "recipes" / "run_sft_rm.sh"
LAUNCH_SLURM = REPO / "recipes" / "launch.slurm"

# What parse_recipe makes of each recipe named, in a process of its own (no launcher: WORLD_SIZE unset).
PARSE = """
import json, sys
from judge_sft.train.arguments import parse_recipe
for recipe in sys.argv[1:-1] if sys.argv[-1] == "--use_cpu" else sys.argv[1:]:
    judge, training, model = parse_recipe([recipe] + (["--use_cpu", "true"] if sys.argv[-1] == "--use_cpu" else []))
    print(json.dumps({
        "model_name_or_path": model.model_name_or_path, "train_file": judge.train_file, "val_file": judge.val_file,
        "total_batch_size": judge.total_batch_size, "per_device_train_batch_size": training.per_device_train_batch_size,
        "sp_size": judge.sp_size, "num_train_epochs": training.num_train_epochs, "max_length": training.max_length,
        "truncation_mode": training.truncation_mode, "messages_key": judge.messages_key,
        "gradient_checkpointing": training.gradient_checkpointing, "bf16": training.bf16,
        "cpu_offload": judge.cpu_offload, "master_weights": judge.master_weights, "padding_free": training.padding_free, "output_dir": training.output_dir,
        "eval_strategy": training.eval_strategy.value,
    }))
"""


def recipe_command(capsys, *args):
    """`judge-sft recipe ARGS` in this process -> (exit status, stderr)."""
    capsys.readouterr()
    try:
        status = main(["recipe", *map(str, args)])
    except SystemExit as exit:  # argparse
        status = exit.code
    return status, capsys.readouterr().err


def parse_in_subprocess(*recipes):
    env = {key: value for key, value in os.environ.items() if key not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    # bf16: true is the recipe's; without a GPU, transformers accepts it only for a CPU run.
    extra = [] if torch.cuda.is_available() else ["--use_cpu"]
    result = subprocess.run(
        [sys.executable, "-c", PARSE, *map(str, recipes), *extra], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(line) for line in result.stdout.strip().splitlines()[-len(recipes) :]]


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---------------------------------------------------------------------------------------------------- judge-sft recipe


@pytest.fixture(scope="module")
def parsed_recipes(tmp_path_factory):
    """Two recipes written by `judge-sft recipe` (every flag given; no val file), as parse_recipe reads them."""
    folder = tmp_path_factory.mktemp("recipes")
    every_flag = [
        "--model-path",
        "Qwen/Qwen3-14B",
        "--train-file",
        "data/my train.parquet",
        "--val-file",
        "data/val: 1.parquet",
        "--total-batch-size",
        "64",
        "--micro-batch-size",
        "4",
        "--sp-size",
        "4",
        "--epochs",
        "2",
        "--max-length",
        "2048",
        "--no-cpu-offload",
        "--num-gpus",
        "16",
    ]
    no_val = ["--model-path", "m", "--train-file", "t.parquet"]
    for name, flags in (("every_flag", every_flag), ("no_val", no_val)):
        assert main(["recipe", *flags, "-o", str(folder / name / "recipe.yaml")]) == 0
    every_flag, no_val = parse_in_subprocess(folder / "every_flag" / "recipe.yaml", folder / "no_val" / "recipe.yaml")
    return folder, every_flag, no_val


def test_recipe_parses_to_the_requested_values(parsed_recipes):
    folder, parsed, _ = parsed_recipes
    assert parsed == {
        "model_name_or_path": "Qwen/Qwen3-14B",
        "train_file": "data/my train.parquet",
        "val_file": "data/val: 1.parquet",
        "total_batch_size": 64,
        "per_device_train_batch_size": 4,
        "sp_size": 4,
        "num_train_epochs": 2.0,
        "max_length": 2048,
        "truncation_mode": "keep_start",
        "messages_key": "messages",
        "gradient_checkpointing": True,
        "bf16": True,
        "cpu_offload": "none",
        "master_weights": "bf16_kahan",
        "padding_free": True,
        "output_dir": "outputs/qwen3-14b-judge",
        "eval_strategy": "steps",
    }
    # 16 GPUs / sp 4 = dp 4; 64 / (4 x 4) = accumulation 4, spelt out where the template explains its own arithmetic
    assert (
        "16 GPUs -> dp 4 -> gradient accumulation 64 / (4 x 4) = 4"
        in (folder / "every_flag" / "recipe.yaml").read_text()
    )


def test_without_val_file_evaluation_is_off(parsed_recipes):
    _, _, parsed = parsed_recipes
    assert parsed["val_file"] is None and parsed["eval_strategy"] == "no"
    assert parsed["output_dir"] == "outputs/m-judge"


def test_defaults_are_the_template_values_and_its_comments_are_kept(tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    status, stderr = recipe_command(
        capsys,
        "--model-path",
        "Qwen/Qwen3-32B",
        "--train-file",
        "data/helpsteer2/train.parquet",
        "--val-file",
        "data/helpsteer2/val.parquet",
        "--num-gpus",
        "8",
        "-o",
        recipe,
    )
    assert status == 0, stderr
    written, template = recipe.read_text().splitlines(), TEMPLATE.read_text().splitlines()
    assert written[1:] == template  # the template's own values: only the provenance line is added
    assert written[0].startswith("# Written by `judge-sft recipe` from recipes/qwen3_32b.yaml")


@pytest.mark.parametrize(
    "num_gpus, message",
    [
        (6, "judge-sft recipe: error: recipe: world size 6 is not divisible by sp_size 8\n"),
        (
            16,
            "judge-sft recipe: error: recipe: total_batch_size 100 is not a multiple of per_device_train_batch_size 12 "
            "x dp 2 (= world_size 16 / sp_size 8) = 24; gradient accumulation would be 4.16667\n",
        ),
    ],
)
def test_batch_sizes_that_do_not_divide_fail_with_plan_batch_message(tmp_path, capsys, num_gpus, message):
    recipe = tmp_path / "recipe.yaml"
    assert recipe_command(
        capsys,
        "--model-path",
        "m",
        "--train-file",
        "t.parquet",
        "--total-batch-size",
        "100",
        "--num-gpus",
        num_gpus,
        "-o",
        recipe,
    ) == (1, message)
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize("flags,written", [([], ("none", "bf16_kahan")), (["--cpu-offload"], ("all", "fp32")),
    (["--cpu-offload", "optimizer"], ("optimizer", "fp32")), (["--cpu-offload", "false"], ("none", "bf16_kahan")),
    (["--no-cpu-offload", "--master-weights", "fp32"], ("none", "fp32"))])  # fmt: skip
def test_cpu_offload_modes_and_master_weights_are_written(tmp_path, capsys, flags, written):
    recipe = tmp_path / "recipe.yaml"
    status, stderr = recipe_command(capsys, "--model-path", "m", "--train-file", "t.parquet", *flags, "-o", recipe)
    assert status == 0, stderr
    values = yaml.safe_load(recipe.read_text())
    assert (values["cpu_offload"], values["master_weights"]) == written


def test_an_unknown_cpu_offload_is_argparses_one_line_error(tmp_path, capsys):
    status, stderr = recipe_command(
        capsys, "--model-path", "m", "--train-file", "t.parquet", "--cpu-offload", "yes", "-o", tmp_path / "r.yaml"
    )
    assert status == 2
    assert stderr.splitlines()[-1] == (
        "judge-sft recipe: error: argument --cpu-offload: expected none, optimizer, all, true or false, got 'yes'"
    )


@pytest.mark.parametrize("typo", ["--total-batch", "--micro-batch-sise", "--epoch"])
def test_misspelt_flag_is_an_error(tmp_path, capsys, typo):
    status, stderr = recipe_command(
        capsys, "--model-path", "m", "--train-file", "t.parquet", typo, "8", "-o", tmp_path / "r.yaml"
    )
    assert status == 2
    assert f"unrecognized arguments: {typo} 8" in stderr
    assert not (tmp_path / "r.yaml").exists()


# ---------------------------------------------------------------------------------------------------- run_sft_rm.sh


def test_scripts_parse():
    for script in (RUN_SFT_RM, LAUNCH_SLURM):
        result = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


@pytest.fixture
def fake_bin(tmp_path):
    """A PATH directory whose `judge-sft train` records its arguments (NUL-separated) instead of launching; the other
    judge-sft commands (`recipe`) run for real."""
    bin_dir = tmp_path / "fake_bin"
    bin_dir.mkdir()
    judge_sft = bin_dir / "judge-sft"
    judge_sft.write_text(
        '#!/bin/bash\nif [[ $1 == train ]]; then printf "%s\\0" "$@" > "$RECORD_DIR/train-${SLURM_NODEID:-local}"; exit; fi\n'
        f'exec {VENV_BIN}/judge-sft "$@"\n'
    )
    judge_sft.chmod(0o755)
    return bin_dir


def recorded_args(path):
    return path.read_text().split("\0")[:-1]


def flag(args, name):
    return args[args.index(name) + 1]


def clean_environment():
    """This process's environment less what the scripts read, so that only what a test sets reaches them."""
    read = {
        "WORLD_SIZE",
        "RANK",
        "NNODES",
        "NODE_RANK",
        "MASTER_ADDR",
        "MASTER_PORT",
        "ACCELERATE_CONFIG",
        "CPU_OFFLOAD",
        "MODEL_PATH",
        "TRAIN_FILE",
        "VAL_FILE",
        "TOTAL_BATCH_SIZE",
        "TRAIN_BATCH_SIZE",
        "MICRO_BATCH_SIZE",
        "SP_SIZE",
        "TOTAL_EPOCHS",
        "N_GPUS_PER_NODE",
        "MAX_LENGTH",
        "OUTPUT_DIR",
        "RECIPE",
        "GPUS_PER_NODE",
        "STOP_SECONDS",
        "TORCH_ELASTIC_SHUTDOWN_TIMEOUT",
    }
    return {key: value for key, value in os.environ.items() if key not in read and not key.startswith("SLURM_")}


def run_script(script, tmp_path, fake_bin, env, *args):
    env = {
        **clean_environment(),
        "PATH": f"{fake_bin}:{VENV_BIN}:{os.environ['PATH']}",
        "RECORD_DIR": str(tmp_path),
        **env,
    }
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, env=env, cwd=tmp_path)


def test_run_sft_rm_defaults_are_the_cookbook_values_and_cpu_offload_picks_the_offload_config(tmp_path, fake_bin):
    result = run_script(
        RUN_SFT_RM,
        tmp_path,
        fake_bin,
        {"MODEL_PATH": "Qwen/Qwen3-14B", "TRAIN_FILE": "t.parquet", "CPU_OFFLOAD": "true"},
        "--learning_rate",
        "2e-5",
    )
    assert result.returncode == 0, result.stderr
    recipe = tmp_path / "outputs" / "qwen3-14b-judge" / "run_sft_rm.yaml"
    assert recorded_args(tmp_path / "train-local") == [
        "train",
        "outputs/qwen3-14b-judge/run_sft_rm.yaml",
        "--accelerate-config",
        "zero3_offload",
        "--num-processes",
        "8",
        "--main-process-port",
        "29500",
        "--learning_rate",
        "2e-5",
    ]
    values = yaml.safe_load(recipe.read_text())
    assert {
        key: values[key]
        for key in (
            "total_batch_size",
            "per_device_train_batch_size",
            "sp_size",
            "num_train_epochs",
            "max_length",
            "cpu_offload",
            "master_weights",
            "val_file",
        )
    } == {
        "total_batch_size": 96,
        "per_device_train_batch_size": 12,
        "sp_size": 8,
        "num_train_epochs": 1,
        "max_length": 4096,
        "cpu_offload": "all",
        "master_weights": "fp32",  # the template's bf16_kahan runs without offload only
        "val_file": "data/helpsteer2/val.parquet",
    }


def test_run_sft_rm_with_the_cookbooks_defaults_writes_a_qwen3_32b_recipe_that_fits_8_gpus(tmp_path, fake_bin, capsys):
    """CPU_OFFLOAD=false, 8 GPUs, Qwen3-32B: the template's bf16_kahan on zero3.yaml, which plan says fits 8 x 80 GB."""
    from test_plan import QWEN3_32B, write_model_dir

    result = run_script(RUN_SFT_RM, tmp_path, fake_bin, {"TRAIN_FILE": "t.parquet", "CPU_OFFLOAD": "false"})
    assert result.returncode == 0, result.stderr
    assert flag(recorded_args(tmp_path / "train-local"), "--accelerate-config") == "zero3"
    recipe = tmp_path / "outputs" / "qwen3-32b-judge" / "run_sft_rm.yaml"
    values = yaml.safe_load(recipe.read_text())
    assert (values["model_name_or_path"], values["cpu_offload"], values["master_weights"]) == (
        "Qwen/Qwen3-32B",
        "none",
        "bf16_kahan",
    )
    model_dir = write_model_dir(tmp_path / "qwen3_32b", **QWEN3_32B)
    capsys.readouterr()
    assert main(["plan", str(recipe), "--num-gpus", "8", "--model_name_or_path", str(model_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["fits"]


@pytest.mark.parametrize(
    "cpu_offload,config", [("optimizer", "zero3_offload_optimizer"), ("all", "zero3_offload"), ("none", "zero3")]
)
def test_run_sft_rm_launches_each_cpu_offload_mode_with_its_config(tmp_path, fake_bin, cpu_offload, config):
    result = run_script(RUN_SFT_RM, tmp_path, fake_bin, {"TRAIN_FILE": "t.parquet", "CPU_OFFLOAD": cpu_offload})
    assert result.returncode == 0, result.stderr
    assert flag(recorded_args(tmp_path / "train-local"), "--accelerate-config") == config
    values = yaml.safe_load((tmp_path / "outputs" / "qwen3-32b-judge" / "run_sft_rm.yaml").read_text())
    assert (values["cpu_offload"], values["master_weights"]) == (
        cpu_offload,
        "bf16_kahan" if cpu_offload == "none" else "fp32",
    )


def test_run_sft_rm_refuses_an_unknown_cpu_offload(tmp_path, fake_bin):
    result = run_script(RUN_SFT_RM, tmp_path, fake_bin, {"TRAIN_FILE": "t.parquet", "CPU_OFFLOAD": "yes"})
    assert result.returncode == 1
    assert result.stderr == (
        "run_sft_rm.sh: error: CPU_OFFLOAD is 'yes'; expected true, false, none, optimizer or all\n"
    )


def test_run_sft_rm_on_several_nodes_passes_this_nodes_rank(tmp_path, fake_bin):
    env = {
        "MODEL_PATH": "m",
        "TRAIN_FILE": "t.parquet",
        "VAL_FILE": "",
        "N_GPUS_PER_NODE": "4",
        "NNODES": "2",
        "NODE_RANK": "1",
        "MASTER_ADDR": "10.0.0.1",
        "MASTER_PORT": "6000",
    }
    result = run_script(RUN_SFT_RM, tmp_path, fake_bin, env)
    assert result.returncode == 0, result.stderr
    args = recorded_args(tmp_path / "train-local")
    assert flag(args, "--accelerate-config") == "zero3_multinode"
    assert [
        flag(args, name)
        for name in ("--num-processes", "--num-machines", "--machine-rank", "--main-process-ip", "--main-process-port")
    ] == ["8", "2", "1", "10.0.0.1", "6000"]
    values = yaml.safe_load((tmp_path / "outputs" / "m-judge" / "run_sft_rm.yaml").read_text())
    assert values["sp_size"] == 4  # the cookbook's rule: every GPU of a node with fewer than 8
    assert values["val_file"] is None and values["eval_strategy"] == "no" and values["cpu_offload"] == "none"


@pytest.fixture(scope="module")
def script_run(tmp_path_factory, small_vocab_model_dir):
    """One real launch through run_sft_rm.sh: tiny model, small data, the 2-process CPU accelerate config."""
    tmp_path = tmp_path_factory.mktemp("run_sft_rm")
    rows = [conversation(i, 1 + i % 3) for i in range(48)]
    metadata = {b"judge_sft.train_on": b"final"}
    env = {
        **clean_environment(),
        "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
        "MODEL_PATH": str(small_vocab_model_dir),
        "TRAIN_FILE": str(write_messages(tmp_path / "train.parquet", rows[:40], metadata)),
        "VAL_FILE": str(write_messages(tmp_path / "val.parquet", rows[40:], metadata)),
        "TOTAL_BATCH_SIZE": "8",
        "MICRO_BATCH_SIZE": "2",
        "SP_SIZE": "1",
        "TOTAL_EPOCHS": "1",
        "N_GPUS_PER_NODE": "2",
        "MAX_LENGTH": "1024",
        "OUTPUT_DIR": str(tmp_path / "out"),
        "MASTER_PORT": str(free_port()),
        "ACCELERATE_CONFIG": "cpu_zero3_2proc",
    }
    overrides = [
        "--bf16",
        "false",
        "--dtype",
        "float32",
        "--master_weights",
        "fp32",
        "--attn_implementation",
        "sdpa",
        "--max_steps",
        "3",
        "--eval_steps",
        "2",
        "--report_to",
        "none",
        "--eval_samples",  # the template's 4 greedy samples of 256 tokens take minutes on CPU (tests/test_samples.py)
        "0",
    ]
    result = subprocess.run(
        ["bash", str(RUN_SFT_RM), *overrides],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=REPO,
        timeout=900,
    )
    (tmp_path / "launch.log").write_text(result.stdout)
    assert result.returncode == 0, result.stdout[-6000:]
    return tmp_path / "out", result.stdout


@pytest.mark.launch
def test_run_sft_rm_trains_end_to_end_with_the_batch_arithmetic_of_its_variables(script_run):
    output_dir, log = script_run
    assert "world_size=2 sp_size=1 -> dp=2; global batch 8 = micro batch 2 x dp 2 x gradient accumulation 2" in log
    state = json.loads((output_dir / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3 and state["train_batch_size"] == 2
    assert [entry["step"] for entry in state["log_history"] if "eval_loss" in entry] == [2, 3]
    assert (output_dir / "model.safetensors").is_file()
    recipe = yaml.safe_load((output_dir / "run_sft_rm.yaml").read_text())
    assert (recipe["total_batch_size"], recipe["per_device_train_batch_size"], recipe["max_length"]) == (8, 2, 1024)


@pytest.mark.launch
def test_plot_of_the_real_run(script_run, tmp_path):
    output_dir, _ = script_run
    png = plot_losses(output_dir, tmp_path / "curve.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


# ---------------------------------------------------------------------------------------------------- launch.slurm


def test_launch_slurm_gives_each_node_its_own_machine_rank(tmp_path, fake_bin):
    # srun runs its command once per node, as Slurm would, each with that node's SLURM_NODEID / SLURM_PROCID.
    (fake_bin / "srun").write_text(
        "#!/bin/bash\nwhile [[ $1 == -* ]]; do shift; done\n"
        'for node in 0 1; do SLURM_NODEID=$node SLURM_PROCID=$node "$@" || exit; done\n'
    )
    (fake_bin / "scontrol").write_text('#!/bin/bash\nprintf "gpu-a\\ngpu-b\\n"\n')
    for tool in ("srun", "scontrol"):
        (fake_bin / tool).chmod(0o755)
    # The batch script itself runs on the first node, where SLURM_NODEID is 0: a rank expanded there would be 0 twice.
    env = {
        "SLURM_NNODES": "2",
        "SLURM_JOB_NODELIST": "gpu-[a-b]",
        "SLURM_NODEID": "0",
        "SLURM_PROCID": "0",
        "SLURM_SUBMIT_DIR": str(REPO),
        "MASTER_PORT": "6000",
    }
    result = run_script(LAUNCH_SLURM, tmp_path, fake_bin, env, "recipes/qwen3_32b.yaml", "--run_name", "two words")
    assert result.returncode == 0, result.stderr
    for node in (0, 1):
        assert recorded_args(tmp_path / f"train-{node}") == [
            "train",
            "recipes/qwen3_32b.yaml",
            "--run_name",
            "two words",
            "--accelerate-config",
            "zero3_multinode",
            "--num-machines",
            "2",
            "--num-processes",
            "16",
            "--main-process-ip",
            "gpu-a",
            "--main-process-port",
            "6000",
            "--machine-rank",
            str(node),
        ]


# The training as launch.slurm sees it: `judge-sft train` stands for torchrun (SIGTERM: it stops its workers, then exits 1;
# otherwise it exits FAKE_STATUS); `scancel --signal=TERM` signals it as Slurm signals the processes of a job's steps.
SLURM_FAKES = {
    "srun": 'while [[ $1 == -* ]]; do shift; done\nSLURM_NODEID=0 "$@"\n',
    "scontrol": 'if [[ $1 == show ]]; then echo gpu-a; else echo "$*" >> "$RECORD_DIR/scontrol"; fi\n',
    "scancel": 'echo "$*" >> "$RECORD_DIR/scancel"\nkill -TERM "$(cat "$RECORD_DIR/train.pid")"\n',
    "judge-sft": 'echo "$TORCH_ELASTIC_SHUTDOWN_TIMEOUT" > "$RECORD_DIR/grace"\ntrap \'kill $!; exit 1\' TERM\n'
    'echo $$ > "$RECORD_DIR/train.pid"\nsleep "$FAKE_SECONDS" & wait $!\nexit "$FAKE_STATUS"\n',
}
SLURM_JOB = {"SLURM_JOB_ID": "4242", "SLURM_NNODES": "1", "SLURM_JOB_NODELIST": "gpu-a", "SLURM_SUBMIT_DIR": str(REPO)}


@pytest.fixture
def slurm_bin(fake_bin):
    for tool, body in SLURM_FAKES.items():
        (fake_bin / tool).write_text("#!/bin/bash\n" + body)
        (fake_bin / tool).chmod(0o755)
    return fake_bin


def recorded_lines(path):
    return path.read_text().splitlines() if path.exists() else []


def test_launch_slurm_stops_the_training_on_slurms_warning_and_requeues_the_job(tmp_path, slurm_bin):
    env = {
        **clean_environment(),
        **SLURM_JOB,
        "PATH": f"{slurm_bin}:{os.environ['PATH']}",
        "RECORD_DIR": str(tmp_path),
        "FAKE_SECONDS": "60",
        "FAKE_STATUS": "0",
    }
    batch = subprocess.Popen(
        ["bash", str(LAUNCH_SLURM), "recipes/qwen3_32b.yaml"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        while not (tmp_path / "train.pid").exists():
            assert batch.poll() is None, batch.stderr.read()
            time.sleep(0.05)
        batch.send_signal(signal.SIGUSR1)  # what `#SBATCH --signal=B:USR1@SECONDS` sends the batch script
        _, stderr = batch.communicate(timeout=30)
    finally:
        batch.kill()
    assert batch.returncode == 1, stderr  # the launcher's status is passed on
    assert recorded_lines(tmp_path / "scancel") == ["--signal=TERM 4242"]  # every process of the job's steps
    assert recorded_lines(tmp_path / "scontrol") == ["requeue 4242"]
    header = LAUNCH_SLURM.read_text()
    [warning] = re.findall(r"^#SBATCH --signal=B:USR1@(\d+)$", header, re.M)
    assert "#SBATCH --requeue" in header.splitlines()
    assert (tmp_path / "grace").read_text().strip() == warning  # torchrun waits that long before it SIGKILLs


@pytest.mark.parametrize("status, requeued", [(0, False), (1, False), (75, True)])
def test_launch_slurm_requeues_a_training_that_exits_with_the_requeue_status_only(
    tmp_path, slurm_bin, status, requeued
):
    env = {**SLURM_JOB, "FAKE_SECONDS": "0", "FAKE_STATUS": str(status)}
    result = run_script(LAUNCH_SLURM, tmp_path, slurm_bin, env, "recipes/qwen3_32b.yaml")
    assert result.returncode == status, result.stderr
    assert recorded_lines(tmp_path / "scontrol") == (["requeue 4242"] if requeued else [])
    assert recorded_lines(tmp_path / "scancel") == []
