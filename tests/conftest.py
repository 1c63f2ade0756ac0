"""Shared fixtures: the two tiny random Qwen3 models, small messages Parquet files, and a helper that runs the real
launch command (`accelerate launch ... judge_sft/run.py recipe.yaml`) on CPU.

Which tiny model when (docs/development.md#which-tiny-model):
- `tiny_model_dir`: the real Qwen3 tokenizer (151,669 tokens). For every test where tokenisation, masks, templates,
  truncation or token counts are what it checks, and for those whose thresholds (max_length, trained-token fractions)
  were set in real Qwen3 tokens.
- `small_vocab_model_dir`: the same Qwen3 architecture (embeddings untied, as in the 14B and 32B), chat template and
  added tokens over a 1,777-token BPE trained on the bundled sample (judge_sft.tiny_model.write_small_vocab_tokenizer).
  For launches that test training, saving, resuming, stopping, pushing, sampling and parity, not the tokenizer: the LM
  head and log-probs over 151,669 tokens were more than half of each micro step.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from judge_sft.train.launch import put_this_venv_first_on_path

REPO = Path(__file__).resolve().parent.parent
CPU_CONFIG = REPO / "accelerate_configs" / "cpu_zero3_2proc.yaml"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("WANDB_MODE", "offline")
# As run.py does, for the processes the tests start that are not run.py (tests/deepspeed_states.py builds CPU Adam).
put_this_venv_first_on_path()


# The files that take longest (launches), longest first, from a `make test` on 2 cores: under `--dist loadfile` each
# file is one unit of work, handed out in collection order, and the last one to start decides when the run ends.
LONGEST_FIRST = [
    "test_training.py",
    "test_train_command.py",
    "test_evaluation_endpoint.py",
    "test_memory_options.py",
    "test_relaunch.py",
    "test_sequence_parallel.py",
    "test_preemption.py",
    "test_push.py",
    "test_plan.py",
    "test_errors_before_launch.py",
    "test_recipe_command.py",
    "test_samples.py",
    "test_judge_training.py",
    "test_errors_launch.py",
    "test_doctor.py",
    "test_evaluate.py",
    "test_eval_judge.py",
]


def pytest_collection_modifyitems(config, items):
    """Files in LONGEST_FIRST order, then the rest as collected (a stable sort keeps each file's tests together and
    in order). `gpu`-marked tests need a CUDA GPU: skipped without one, so `pytest` and CI never wait on them."""
    import torch

    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
    if torch.cuda.is_available():
        return
    no_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(no_gpu)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from judge_sft.tiny_model import build_tiny_model

    return Path(build_tiny_model(tmp_path_factory.mktemp("tiny_model")))


@pytest.fixture(scope="session")
def small_vocab_model_dir(tmp_path_factory):
    from judge_sft.tiny_model import build_tiny_model, write_small_vocab_tokenizer

    tokenizer_dir = write_small_vocab_tokenizer(tmp_path_factory.mktemp("small_vocab_tokenizer"))
    # untied, as the 14B and 32B judges are: a tied random model's greedy output repeats the prompt's last token (a
    # newline here), so eval samples could not show that training moved them
    model_dir = tmp_path_factory.mktemp("small_vocab_model")
    return Path(build_tiny_model(model_dir, tokenizer_dir=tokenizer_dir, tie_word_embeddings=False))


@pytest.fixture(scope="session")
def qwen3_tokenizer():
    from transformers import AutoTokenizer

    from judge_sft.tiny_model import qwen3_tokenizer_dir

    return AutoTokenizer.from_pretrained(qwen3_tokenizer_dir())


@pytest.fixture
def quiet_imports(capsys):
    """The commands' heavy imports done and their import-time notices (transformers' "Running in WANDB offline mode",
    DeepSpeed's accelerator warning) drained: a test's captured stdout holds only what the command printed."""
    import transformers.integrations.integration_utils  # noqa: F401

    import judge_sft.commands.doctor  # noqa: F401
    import judge_sft.commands.inspect_data  # noqa: F401
    import judge_sft.commands.plan  # noqa: F401

    capsys.readouterr()


SINGLE_TURN = [{"role": "user", "content": "Is 7 prime?"}, {"role": "assistant", "content": "Yes."}]
MULTI_TURN = [
    {"role": "user", "content": "Is 7 prime?"},
    {"role": "assistant", "content": "Yes."},
    {"role": "user", "content": "And 9?"},
    {"role": "assistant", "content": "No, 9 = 3 x 3."},
]


def conversation(index, turns):
    messages = []
    for turn in range(turns):
        messages.append(
            {"role": "user", "content": f"Question {index}.{turn}: is {index} + {turn} even?" + " why" * (index % 7)}
        )
        messages.append(
            {
                "role": "assistant",
                "content": f"Answer {index}.{turn}: "
                + ("yes" if (index + turn) % 2 == 0 else "no")
                + " because" * (index % 5),
            }
        )
    return messages


def write_messages(path, conversations, metadata=None):
    table = pa.table({"messages": conversations})
    if metadata:
        table = table.replace_schema_metadata(metadata)
    pq.write_table(table, path)
    return path


def write_small_data(directory):
    """40 train / 8 val conversations of 1-3 turns, as prepare-data would write them (loss on the final answer), in
    DIRECTORY/{train,val}.parquet. Returns both paths."""
    rows = [conversation(i, 1 + i % 3) for i in range(48)]
    metadata = {b"judge_sft.train_on": b"final"}
    return write_messages(directory / "train.parquet", rows[:40], metadata), write_messages(
        directory / "val.parquet", rows[40:], metadata
    )


@pytest.fixture
def small_data(tmp_path):
    return write_small_data(tmp_path)


def tiny_recipe(tmp_path, model_dir, train_file, val_file=None, **overrides):
    """The tiny CPU recipe (recipes/tiny_cpu.yaml) pointed at test data, with overrides."""
    recipe = yaml.safe_load((REPO / "recipes" / "tiny_cpu.yaml").read_text())
    recipe.update(model_name_or_path=str(model_dir), train_file=str(train_file), output_dir=str(tmp_path / "out"))
    recipe["val_file"] = str(val_file) if val_file else None
    recipe.update(overrides)
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


# Plain SGD at a constant, large step, no clipping or decay: runs that should compute the same thing end with the same
# weights to float precision (sequence-parallel parity, eval samples against the saved model).
EXACT_SGD = dict(
    optim="sgd",
    learning_rate=0.1,
    lr_scheduler_type="constant",
    warmup_steps=0,
    weight_decay=0.0,
    max_grad_norm=0.0,
)


def run_py(recipe, timeout=300):
    """judge_sft/run.py as one plain process (no launcher): its own parsing and start-up checks."""
    command = [sys.executable, str(REPO / "judge_sft" / "run.py"), str(recipe)]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=timeout)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch_command(recipe, *overrides, config=CPU_CONFIG, num_processes=None):
    """`accelerate launch --config_file CONFIG judge_sft/run.py RECIPE [--key value ...]` on a free port."""
    command = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(config),
        "--main_process_port",
        str(free_port()),
    ]
    if num_processes:
        command += ["--num_processes", str(num_processes)]
    return command + [str(REPO / "judge_sft" / "run.py"), str(recipe), *map(str, overrides)]


def launch(recipe, *overrides, config=CPU_CONFIG, num_processes=None, timeout=600, check=True, env=None):
    """Run the real launch command and return the CompletedProcess (stdout+stderr in .stdout)."""
    result = subprocess.run(
        launch_command(recipe, *overrides, config=config, num_processes=num_processes),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=REPO,
    )
    Path(recipe).with_suffix(".log").write_text(result.stdout)  # the whole output, for a failing test's reader
    if check and result.returncode != 0:
        raise AssertionError(f"launch failed ({result.returncode}):\n{result.stdout[-6000:]}")
    return result
