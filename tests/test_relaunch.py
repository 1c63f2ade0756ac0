"""`judge-sft train` stopped and relaunched as a user does, on a LoRA run of max_steps 6 (1.5 epochs): Ctrl-C (SIGINT to
the launcher's process group) in the first epoch; the same command, which resumes to the end; the same command once
more, which has nothing to train. Then a full fine-tune into that output_dir, refused, and `judge-sft merge` of its
adapters. Real launches (2 CPU processes, ZeRO-3, the small-vocabulary tiny Qwen3); and the relaunch checks on output
directories written here."""

import ast
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch
from conftest import REPO, conversation, free_port, run_py, tiny_recipe, write_messages

ROWS, VAL_ROWS, STEPS_PER_EPOCH, MAX_STEPS = 16, 4, 4, 6  # 4 rows a step: micro batch 2 x dp 2
SETTINGS = dict(
    total_batch_size=4,
    per_device_train_batch_size=2,
    per_device_eval_batch_size=2,
    max_length=256,
    max_steps=MAX_STEPS,
    learning_rate=1e-2,
    warmup_steps=0,
    eval_steps=1000,  # evaluation after the last step only
    save_steps=1000,  # checkpoints: the stop's, and the last step's
    use_peft=True,
    lora_r=4,
    lora_alpha=8,
    lora_target_modules=["q_proj", "v_proj"],
    report_to="none",
)
GRACE = 300  # torchrun's wait for the stopping workers (TORCH_ELASTIC_SHUTDOWN_TIMEOUT), on busy cores


def train_command(recipe, *overrides):
    command = [sys.executable, "-m", "judge_sft.cli", "train", str(recipe), "--accelerate-config", "cpu_zero3_2proc"]
    return command + ["--main-process-port", str(free_port()), *overrides]


def judge_sft_train(recipe, *overrides):
    result = subprocess.run(
        train_command(recipe, *overrides),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "TORCH_ELASTIC_SHUTDOWN_TIMEOUT": str(GRACE)},
    )
    return result.returncode, result.stdout, result.stderr


def interrupted_in_the_first_epoch(recipe):
    """`judge-sft train` in a terminal of its own, Ctrl-C'd once its progress bar is up (step 1 in progress; the
    small-vocabulary model's steps are too quick to wait for a logged one): (status, output)."""
    process = subprocess.Popen(
        train_command(recipe),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "TORCH_ELASTIC_SHUTDOWN_TIMEOUT": str(GRACE)},
        start_new_session=True,
    )
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.time() + 600
        while not re.search(rf"\| 0/{MAX_STEPS} \[", "".join(lines)):
            assert process.poll() is None, "".join(lines)[-4000:]
            assert time.time() < deadline, "training never started"
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C does: SIGINT to the terminal's foreground process group
        process.wait(GRACE + 120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    reader.join()
    return process.returncode, "".join(lines)


def files_on_disk(folder):
    """{relative path: (size, mtime_ns, sha256)} of every file under `folder`."""
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns, sha256(path))
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def complete_checkpoints(output_dir):
    return sorted(int(path.parent.name.split("-")[1]) for path in output_dir.glob("checkpoint-*/trainer_state.json"))


@pytest.fixture(scope="module")
def relaunched(tmp_path_factory, small_vocab_model_dir):
    directory = tmp_path_factory.mktemp("relaunch")
    rows = [conversation(i, 1 + i % 3) for i in range(ROWS + VAL_ROWS)]
    metadata = {b"judge_sft.train_on": b"final"}
    train = write_messages(directory / "train.parquet", rows[:ROWS], metadata)
    val = write_messages(directory / "val.parquet", rows[ROWS:], metadata)
    recipe = tiny_recipe(directory, small_vocab_model_dir, train, val, **SETTINGS)
    output_dir = directory / "out"
    run = {"recipe": recipe, "output_dir": output_dir, "train": train}

    run["stopped"] = interrupted_in_the_first_epoch(recipe)
    run["after_stop"] = sorted(path.name for path in output_dir.iterdir())
    run["stop_step"] = (complete_checkpoints(output_dir) or [None])[-1]

    run["resumed"] = judge_sft_train(recipe)
    run["after_resume"] = files_on_disk(output_dir)
    run["resumed_log"] = read_state(output_dir)["log_history"] if run["resumed"][0] == 0 else []

    run["finished"] = judge_sft_train(recipe)
    run["after_finished"] = files_on_disk(output_dir)
    run["run_py"] = run_py(recipe)  # what `accelerate launch ... judge_sft/run.py` runs, as one plain process
    run["after_run_py"] = files_on_disk(output_dir)
    return run


def read_state(folder):
    return json.loads((folder / "trainer_state.json").read_text())


@pytest.mark.launch
def test_ctrl_c_stops_with_a_checkpoint_exit_75_and_no_traceback(relaunched):
    status, output = relaunched["stopped"]
    stop, output_dir = relaunched["stop_step"], relaunched["output_dir"]
    assert status == 75, output[-4000:]
    assert 1 <= stop < STEPS_PER_EPOCH  # the step in progress when the signal came
    assert output.splitlines()[-1] == (
        f"judge-sft train: error: stopped by SIGINT after saving {output_dir / f'checkpoint-{stop}'} (status 75): "
        "relaunch the same command to resume"
    )
    assert "KeyboardInterrupt" not in output and "Traceback" not in output
    assert read_state(output_dir / f"checkpoint-{stop}")["global_step"] == stop


@pytest.mark.launch
def test_a_stop_leaves_no_model_card_where_there_is_no_model(relaunched):
    after_stop = relaunched["after_stop"]
    assert "README.md" not in after_stop and "adapter_model.safetensors" not in after_stop
    assert f"checkpoint-{relaunched['stop_step']}" in after_stop
    assert {"README.md", "adapter_model.safetensors"} <= set(relaunched["after_resume"])  # with the final model


@pytest.mark.launch
def test_num_tokens_counts_on_from_the_checkpoint(relaunched, small_vocab_model_dir):
    from datasets import Dataset
    from transformers import AutoTokenizer

    from judge_sft.data.tokenization import tokenize_dataset
    from judge_sft.train.chat_templates import training_chat_template

    status, out, err = relaunched["resumed"]
    assert status == 0, (out + err)[-4000:]
    tokenizer = AutoTokenizer.from_pretrained(small_vocab_model_dir)
    rows, _ = tokenize_dataset(
        Dataset.from_parquet(str(relaunched["train"])), tokenizer, training_chat_template(tokenizer), 256, "final"
    )
    assert len(rows) == ROWS
    logged = {entry["step"]: entry["num_tokens"] for entry in relaunched["resumed_log"] if "loss" in entry}
    assert sorted(logged) == list(range(1, MAX_STEPS + 1))
    # after the first epoch, trained on after the resume, every row once: what an uninterrupted run counts
    assert logged[STEPS_PER_EPOCH] == sum(len(ids) for ids in rows["input_ids"])
    assert all(logged[step] > logged[step - 1] for step in range(2, MAX_STEPS + 1))


def cookbook_line(entry):
    """The console's line for a log_history entry: the reporters' names, floats as the progress bar writes them."""
    names = {"learning_rate": "train/lr"}
    logs = {
        names.get(key) or (f"val/{key[5:]}" if key.startswith("eval_") else f"train/{key}"): value
        for key, value in entry.items()
        if key != "step"
    }
    return {key: f"{value:.4g}" if isinstance(value, float) else value for key, value in logs.items()}


@pytest.mark.launch
def test_the_console_logs_under_the_cookbooks_metric_names(relaunched):
    _, out, err = relaunched["resumed"]
    lines = re.split(r"[\r\n]+", out + err)  # the progress bar rewrites its line with \r
    console = [ast.literal_eval(line) for line in lines if line.startswith("{'") and line.endswith("}")]
    history = relaunched["resumed_log"]  # trainer_state.json: transformers' names
    train = [entry for entry in history if "loss" in entry and entry["step"] > relaunched["stop_step"]]
    [final_eval] = [entry for entry in history if "eval_loss" in entry]
    assert [line for line in console if "train/loss" in line] == [cookbook_line(entry) for entry in train]
    assert [line for line in console if "val/loss" in line] == [cookbook_line(final_eval)]
    assert {"train/loss", "train/lr"} <= set(console[0])
    assert not [line for line in console if {"loss", "learning_rate", "eval_loss", "train/total_flos"} & set(line)]


@pytest.mark.launch
def test_relaunching_a_finished_run_trains_nothing_and_touches_nothing(relaunched):
    output_dir, after_resume = relaunched["output_dir"], relaunched["after_resume"]
    status, out, err = relaunched["finished"]
    assert status == 0, err
    assert out.splitlines()[-1] == (
        f"judge-sft train: {output_dir}: the run finished at step {MAX_STEPS} (max_steps {MAX_STEPS}) and its final "
        "model is saved: nothing to train; raise max_steps to train on, or use another output_dir"
    )
    assert relaunched["after_finished"] == after_resume
    assert read_state(output_dir)["global_step"] == MAX_STEPS
    assert complete_checkpoints(output_dir) == [relaunched["stop_step"], MAX_STEPS]
    run_py = relaunched["run_py"]  # plain `accelerate launch` of run.py stops at the same check
    assert run_py.returncode == 0, run_py.stderr[-4000:]
    assert f"judge_sft: {output_dir}: the run finished at step {MAX_STEPS}" in run_py.stderr
    assert relaunched["after_run_py"] == after_resume


@pytest.mark.launch
def test_a_full_fine_tune_into_a_lora_runs_output_dir_is_one_line_before_anything_is_written(relaunched):
    output_dir = relaunched["output_dir"]
    before = files_on_disk(output_dir)
    status, out, err = judge_sft_train(relaunched["recipe"], "--use_peft", "false", "--max_steps", "8")
    assert status == 1
    assert err == (
        f"judge-sft train: error: {output_dir / f'checkpoint-{MAX_STEPS}'} was made by a different recipe (use_peft "
        f"True there, False now; see {output_dir / 'recipe.yaml'}): use another output_dir, or move what it holds away "
        "to start over\n"
    )
    assert files_on_disk(output_dir) == before  # recipe.yaml included


@pytest.mark.launch
def test_merge_writes_a_plain_model_with_the_adapters_logits(relaunched, tmp_path):
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from judge_sft.train.inference_template import has_training_tags

    output_dir, merged_dir = relaunched["output_dir"], tmp_path / "merged"
    result = subprocess.run(
        [sys.executable, "-m", "judge_sft.cli", "merge", str(output_dir), "--output", str(merged_dir)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    base = json.loads((output_dir / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert result.stdout.splitlines()[-1] == (
        f"{merged_dir}: {output_dir}'s adapters merged into {base}; serve it as it is (docs/inference.md)"
    )
    assert not (merged_dir / "adapter_config.json").exists()
    assert AutoConfig.from_pretrained(merged_dir).model_type == "qwen3"  # what `transformers serve` needs
    template = (merged_dir / "chat_template.jinja").read_text()
    assert template == (output_dir / "chat_template.jinja").read_text() and not has_training_tags(template)

    tokens = AutoTokenizer.from_pretrained(output_dir)(
        "<|im_start|>user\nWhat is 7?<|im_end|>", return_tensors="pt"
    ).input_ids
    with torch.no_grad():
        adapted = AutoPeftModelForCausalLM.from_pretrained(output_dir, dtype=torch.float32).eval()(tokens).logits
        merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).eval()(tokens).logits
        plain = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32).eval()(tokens).logits
    torch.testing.assert_close(merged, adapted, atol=1e-5, rtol=1e-4)
    assert (merged - plain).abs().max() > 1e-3  # the adapters were trained: merging changed the model

    again = subprocess.run(
        [sys.executable, "-m", "judge_sft.cli", "merge", str(output_dir), "--output", str(merged_dir)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 1
    assert again.stderr == f"judge-sft merge: error: {merged_dir}: already exists; name another --output\n"


# ---------------------------------------------------------------------------------- the checks, on directories made here


def finished_output_dir(tmp_path, global_step=4, max_steps=4, epochs=1, checkpoints=(4,), epoch=1.0):
    """What a run leaves: the final model with trainer_state.json beside it, complete checkpoints."""
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    (output_dir / "model.safetensors").write_bytes(b"weights")
    state = {"global_step": global_step, "max_steps": max_steps, "num_train_epochs": epochs, "epoch": epoch}
    (output_dir / "trainer_state.json").write_text(json.dumps(state))
    for step in checkpoints:
        (output_dir / f"checkpoint-{step}").mkdir()
        (output_dir / f"checkpoint-{step}" / "trainer_state.json").write_text(
            json.dumps({**state, "global_step": step})
        )
    return output_dir


def test_an_epoch_based_run_is_finished_until_its_epochs_or_max_steps_are_raised(tmp_path):
    from judge_sft.train.checkpoints import finished_run

    output_dir = finished_output_dir(tmp_path)
    assert finished_run(output_dir, -1, 1.0) == (
        f"{output_dir}: the run finished at step 4 (num_train_epochs 1) and its final model is saved: nothing to "
        "train; raise num_train_epochs to train on, or use another output_dir"
    )
    assert finished_run(output_dir, 4, 3.0).startswith(f"{output_dir}: the run finished at step 4 (max_steps 4)")
    assert finished_run(output_dir, -1, 2.0) is None and finished_run(output_dir, 5, 1.0) is None
    (output_dir / "checkpoint-5").mkdir()  # begun, not complete: still finished
    assert finished_run(output_dir, -1, 1.0) is not None
    (output_dir / "checkpoint-5" / "trainer_state.json").write_text("{}")  # trained on since the final model
    assert finished_run(output_dir, -1, 1.0) is None


def test_a_run_cut_short_by_max_steps_is_not_finished_for_an_epoch_based_relaunch(tmp_path):
    from judge_sft.train.checkpoints import finished_run

    output_dir = finished_output_dir(tmp_path, global_step=1, max_steps=1, checkpoints=(1,), epoch=1 / 3)
    assert finished_run(output_dir, 1, 1.0) is not None  # the same recipe: done
    assert finished_run(output_dir, -1, 1.0) is None  # epoch-based: 2 of the epoch's 3 steps to go


def test_a_stop_at_the_last_step_is_not_finished_until_the_final_model_is_saved(tmp_path):
    from judge_sft.train.checkpoints import finished_run

    output_dir = finished_output_dir(tmp_path)
    (output_dir / "model.safetensors").unlink()
    assert finished_run(output_dir, 4, 1.0) is None


def test_other_adapter_shapes_are_named_with_both_values(tmp_path):
    import yaml

    from judge_sft.errors import JudgeSFTError
    from judge_sft.train.arguments import parse_recipe
    from judge_sft.train.checkpoints import check_relaunch

    output_dir = finished_output_dir(tmp_path, checkpoints=(2,), max_steps=8)
    lora = {"model_name_or_path": "Qwen/Qwen3-0.6B", "use_peft": True, "lora_r": 4, "lora_target_modules": ["q_proj"]}
    (output_dir / "recipe.yaml").write_text(yaml.safe_dump(lora))  # as run.py saves it: the keys the run was given
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({**lora, "train_file": "train.parquet", "output_dir": str(output_dir)}))
    parsed = parse_recipe([str(recipe), "--max_steps", "8"], for_launch=False)
    assert check_relaunch(parsed) is None  # the same recipe resumes
    with pytest.raises(JudgeSFTError) as error:
        check_relaunch(parse_recipe([str(recipe), "--lora_r", "8", "--use_peft", "true"], for_launch=False))
    assert str(error.value) == (
        f"{output_dir / 'checkpoint-2'} was made by a different recipe (lora_r 4 there, 8 now; see "
        f"{output_dir / 'recipe.yaml'}): use another output_dir, or move what it holds away to start over"
    )
    with pytest.raises(
        JudgeSFTError, match=r"\(model_name_or_path Qwen/Qwen3-0.6B there, Qwen/Qwen3-1.7B now; use_peft"
    ):
        check_relaunch(parse_recipe([str(recipe), "--model_name_or_path", "Qwen/Qwen3-1.7B", "--use_peft", "false"],
                                    for_launch=False))  # fmt: skip


def test_merge_of_a_directory_without_adapters_is_one_line(tmp_path, capsys):
    from judge_sft import cli

    output_dir = finished_output_dir(tmp_path)  # a full fine-tune's
    assert cli.main(["merge", str(output_dir)]) == 1
    assert capsys.readouterr().err == (
        f"judge-sft merge: error: {output_dir}: no adapter_config.json: not the output or checkpoint directory of a "
        "LoRA run (a full fine-tune is served as it is)\n"
    )
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]
