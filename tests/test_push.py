"""Pushing to the Hub: the real huggingface_hub client, driven by judge-sft, against a loopback Hub (hub_server.py).

Two training launches: an every_save run that pushes while it trains and at the end, and an end-of-training push that
meets a server error; `judge-sft push` then completes it, and pushes a checkpoint after the fact.
"""

import ast
import hashlib
import io
import json
import os
import secrets
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
import yaml
from conftest import MULTI_TURN, REPO, launch, tiny_recipe
from hub_server import FakeHub
from huggingface_hub import ModelCard
from safetensors import safe_open

from judge_sft import __version__
from judge_sft.cli import main as cli_main
from judge_sft.hub.upload import apply_hub_defaults
from judge_sft.train.chat_templates import training_chat_template
from judge_sft.train.inference_template import inference_template

TOKEN = "hf_judgesfttest" + secrets.token_hex(12)
REPO_ID = "judge-org/tiny-judge"
TRAIN_SAMPLE = 16  # prepare-data --sample: 16 train rows, total_batch_size 8 -> 2 optimizer steps
RUN_SETTINGS = dict(max_length=384, eval_steps=100, save_steps=1, save_total_limit=2, logging_steps=1)
SAMPLES = dict(eval_samples=2, eval_samples_max_new_tokens=8)  # the every_save run's eval after its last step


@pytest.fixture(scope="module")
def hub():
    with FakeHub(TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def prepared_data(tmp_path_factory):
    """The bundled HelpSteer2 sample through the real prepare-data: train/val Parquet and stats.json."""
    directory = tmp_path_factory.mktemp("data")
    assert (
        cli_main(
            [
                "prepare-data",
                "--input",
                str(REPO / "judge_sft" / "data" / "helpsteer2_sample.jsonl"),
                "--output-dir",
                str(directory),
                "--sample",
                str(TRAIN_SAMPLE),
            ]
        )
        == 0
    )
    return directory


def hub_env(hub, home, token=""):
    """huggingface_hub pointed at the loopback Hub, with its own HF_HOME (no login token there unless written)."""
    return {**hub.env(), "HF_HOME": str(home), "HF_TOKEN": token}


def push(path, *args, env):
    return subprocess.run(
        [sys.executable, "-m", "judge_sft.cli", "push", str(path), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **env},
        cwd=REPO,
        timeout=300,
    )


@pytest.fixture(scope="module")
def every_save_run(tmp_path_factory, small_vocab_model_dir, prepared_data, hub):
    """push_to_hub with hub_strategy every_save; the token comes from the command line, as `--hub_token`, and
    wandb (offline) records the command line in its run files."""
    directory = tmp_path_factory.mktemp("every_save")
    recipe = tiny_recipe(
        directory,
        small_vocab_model_dir,
        prepared_data / "train.parquet",
        prepared_data / "val.parquet",
        push_to_hub=True,
        hub_model_id=REPO_ID,
        hub_strategy="every_save",
        report_to=["tensorboard", "wandb"],
        **RUN_SETTINGS,
        **SAMPLES,
    )
    wandb = {"WANDB_MODE": "offline", "WANDB_DIR": str(directory), "WANDB_PROJECT": "judge-sft-test"}
    result = launch(recipe, "--hub_token", TOKEN, env={**hub_env(hub, directory / "hf_home"), **wandb})
    result.hub_requests = list(hub.requests)  # this run's traffic, before later tests add theirs
    return directory, directory / "out", result


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tensor_shapes(source):
    """{name: shape} of a safetensors file (path) or its bytes."""
    if isinstance(source, bytes):
        from safetensors.torch import load

        return {name: tuple(tensor.shape) for name, tensor in load(source).items()}
    with safe_open(source, "pt") as weights:
        return {name: tuple(weights.get_slice(name).get_shape()) for name in weights.keys()}


def final_losses(state):
    train = [entry for entry in state["log_history"] if "loss" in entry][-1]
    val = [entry for entry in state["log_history"] if "eval_loss" in entry][-1]
    return train, val


# ---------------------------------------------------------------------------------------------------- every_save


@pytest.mark.launch
def test_every_save_run_pushes_while_training_and_at_the_end(every_save_run, hub, small_vocab_model_dir):
    _, output_dir, result = every_save_run
    repo = hub.repos[REPO_ID]
    messages = [commit.message for commit in repo.commits]
    # one process talks to the Hub: one create_repo when the trainer is built, one before the final upload, and
    # one commit request per commit (a second rank would add its own)
    paths = [path for _, path, _ in result.hub_requests]
    assert paths.count("/api/repos/create") == 2
    assert paths.count(f"/api/models/{REPO_ID}/commit/main") == len(messages) - 1
    assert messages[0] == "initial commit" and messages[-1] == "End of training"
    assert any(message.startswith("Training in progress, step ") for message in messages[1:-1]), messages
    assert repo.private  # hub_private_repo defaults to private
    files = hub.files(REPO_ID)
    for name in (
        "model.safetensors",
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "README.md",
        "recipe.yaml",
        "trainer_state.json",
        "training_args.bin",
    ):
        assert name in files, (name, sorted(files))
    # ZeRO-3 stays local: checkpoints hold partitioned shards and optimizer state, none of which is pushed
    assert list(output_dir.glob("checkpoint-*/global_step*/*optim_states.pt"))
    assert not [
        path
        for path in files
        if path.startswith(("checkpoint-", "global_step", "last-checkpoint"))
        or path.endswith(("optim_states.pt", "model_states.pt", "rng_state_0.pth", "scheduler.pt"))
    ]
    # the pushed weights are the consolidated model: the local file's bytes, every tensor at its full shape
    assert files["model.safetensors"] == (output_dir / "model.safetensors").read_bytes()
    assert tensor_shapes(files["model.safetensors"]) == tensor_shapes(small_vocab_model_dir / "model.safetensors")


@pytest.mark.launch
def test_final_model_checkpoints_and_hub_carry_the_template_without_training_tags(
    every_save_run, hub, small_vocab_model_dir
):
    from transformers import AutoTokenizer, GenerationConfig

    _, output_dir, _ = every_save_run
    training_template = training_chat_template(AutoTokenizer.from_pretrained(small_vocab_model_dir))
    saved = inference_template(training_template)
    folders = [output_dir, *sorted(output_dir.glob("checkpoint-*"))]
    assert [folder.name for folder in folders[1:]] == ["checkpoint-1", "checkpoint-2"]
    for folder in folders:
        assert (folder / "chat_template.jinja").read_text() == saved, folder
    assert hub.files(REPO_ID)["chat_template.jinja"].decode() == saved
    # the saved tokenizer prompts as training rendered, and generation stops at <|im_end|>
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    prompt = MULTI_TURN[:-1]
    assert tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True) == (
        tokenizer.apply_chat_template(
            prompt, chat_template=training_template, tokenize=False, add_generation_prompt=True
        )
    )
    stop = GenerationConfig.from_pretrained(output_dir).eos_token_id
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in (stop if isinstance(stop, list) else [stop])


@pytest.mark.launch
def test_card_states_base_model_recipe_data_losses_version_and_licence(
    every_save_run, hub, prepared_data, small_vocab_model_dir
):
    _, output_dir, result = every_save_run
    files = hub.files(REPO_ID)
    card = ModelCard(files["README.md"].decode())
    assert files["README.md"] == (output_dir / "README.md").read_bytes()
    assert card.data.library_name == "transformers" and "judge-sft" in card.data.tags
    assert card.data.datasets == ["nvidia/HelpSteer2"]
    text = card.text
    assert f"fine-tuned from `{small_vocab_model_dir}`" in text
    assert f"judge-sft {__version__}" in text
    # the recipe, as YAML in the card, is the resolved recipe the run saved (no token in either)
    recipe_block = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    saved_recipe = yaml.safe_load((output_dir / "recipe.yaml").read_text())
    assert yaml.safe_load(recipe_block) == saved_recipe
    assert saved_recipe["push_to_hub"] is True and saved_recipe["hub_strategy"] == "every_save"
    assert saved_recipe["gradient_accumulation_steps"] == 2 and "hub_token" not in saved_recipe
    # the data: files, and prepare-data's stats
    stats = json.loads((prepared_data / "stats.json").read_text())
    assert f"`{prepared_data / 'train.parquet'}` ({TRAIN_SAMPLE} rows; {TRAIN_SAMPLE} trained on)" in text
    assert f"{stats['rows_read']} rows read, {stats['rows_kept']} kept" in text
    assert f"correctness >= {stats['options']['min']['correctness']}" in text
    assert "CC-BY-4.0" in text
    # the final losses, as the run logged them, and the loss curve, pushed beside the card
    train, val = final_losses(json.loads((output_dir / "trainer_state.json").read_text()))
    assert f"| final train loss | {train['loss']:.4f} | {train['step']} |" in text
    assert f"| final val loss | {val['eval_loss']:.4f} | {val['step']} |" in text
    plot_name = text.split("![Train and val loss against step](", 1)[1].split(")", 1)[0]
    assert files[plot_name][:8] == b"\x89PNG\r\n\x1a\n"
    # how to serve it: vLLM, and the OpenAI client asking with the prompt format training used
    assert "## Serve it\n\n" in text and f"```bash\nvllm serve {REPO_ID}\n```" in text
    request = text.split("```python\n", 1)[1].split("```", 1)[0]
    ast.parse(request)
    assert (
        f'model="{REPO_ID}"' in request and 'extra_body={"chat_template_kwargs": {"enable_thinking": False}}' in request
    )
    # no base_model_id in the recipe: the card names the local directory, and the push says so
    assert f"the model card names the base model by a local path ({small_vocab_model_dir})" in result.stdout


@pytest.mark.launch
def test_token_is_used_but_never_written_locally_logged_or_pushed(every_save_run, hub):
    directory, output_dir, result = every_save_run
    assert hub.requests and all(authorised for _, _, authorised in hub.requests)
    assert TOKEN not in result.stdout
    local = [path for path in directory.rglob("*") if path.is_file()]  # output, checkpoints, tensorboard, wandb
    assert list(directory.glob("wandb/offline-run-*/run-*.wandb")) and list(output_dir.glob("runs/*/events.out.*"))
    leaks = [str(path) for path in local if holds_token(path.read_bytes())]
    leaks += [name for name, content in hub.files(REPO_ID).items() if holds_token(content)]
    assert leaks == []
    args = torch.load(output_dir / "training_args.bin", weights_only=False)
    assert args.hub_token is None


def holds_token(content):
    """The token in the bytes, or in any member of a zip (torch.save writes zip archives)."""
    if TOKEN.encode() in content:
        return True
    if content[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            return any(TOKEN.encode() in archive.read(name) for name in archive.namelist())
    return False


def test_transformers_pickles_hub_token_in_clear_until_taken(tmp_path, monkeypatch):
    """Why the token leaves the arguments: training_args.bin is torch.save(args), which keeps it in clear."""
    from trl import SFTConfig

    monkeypatch.delenv("HF_TOKEN", raising=False)
    args = SFTConfig(output_dir=str(tmp_path), hub_token=TOKEN, report_to=[], bf16=False)
    torch.save(args, tmp_path / "before.bin")
    assert holds_token((tmp_path / "before.bin").read_bytes())
    apply_hub_defaults(args)
    torch.save(args, tmp_path / "after.bin")
    assert not holds_token((tmp_path / "after.bin").read_bytes())
    assert os.environ["HF_TOKEN"] == TOKEN and args.hub_private_repo is True


# ---------------------------------------------------------------------------------------------------- judge-sft push


@pytest.mark.launch
def test_push_checkpoint_after_the_fact_keeps_zero3_state_local(every_save_run, hub, tmp_path):
    _, output_dir, _ = every_save_run
    checkpoint = sorted(output_dir.glob("checkpoint-*"))[-1]
    assert list(checkpoint.glob("global_step*")) and list(checkpoint.glob("rng_state_*.pth"))
    result = push(
        checkpoint,
        "--repo-id",
        "judge-org/tiny-judge-checkpoint",
        "--public",
        env=hub_env(hub, tmp_path / "hf_home", TOKEN),
    )
    assert result.returncode == 0, result.stdout
    repo = hub.repos["judge-org/tiny-judge-checkpoint"]
    assert not repo.private
    files = hub.files(repo.repo_id)
    assert files["model.safetensors"] == (checkpoint / "model.safetensors").read_bytes()
    assert "chat_template.jinja" in files and "README.md" in files
    assert not [
        path
        for path in files
        if path.startswith(("global_step", "rng_state", "zero_to_")) or path in ("latest", "scheduler.pt")
    ]
    # the card of a checkpoint: its own losses, and the run's recipe from the directory above
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    train = [entry for entry in state["log_history"] if "loss" in entry][-1]
    card = files["README.md"].decode()
    assert (
        f"| final train loss | {train['loss']:.4f} | {train['step']} |" in card and "hub_strategy: every_save" in card
    )


@pytest.mark.launch
def test_push_carries_the_eval_samples_and_the_card_shows_them(every_save_run, hub, tmp_path):
    _, output_dir, _ = every_save_run
    [samples] = [str(path.relative_to(output_dir)) for path in output_dir.glob("samples/step-*.jsonl")]
    assert hub.files(REPO_ID)[samples] == (output_dir / samples).read_bytes()  # the end-of-training push
    result = push(output_dir, "--repo-id", "judge-org/tiny-judge-samples", env=hub_env(hub, tmp_path / "hf", TOKEN))
    assert result.returncode == 0, result.stdout
    files = hub.files("judge-org/tiny-judge-samples")
    assert files[samples] == (output_dir / samples).read_bytes()
    card = files["README.md"].decode()
    assert f"(whole in `{samples}`, one file per evaluation" in card
    assert "| row | prompt | reference | completion |" in card and "\n| 1 | user: " in card


@pytest.mark.launch
def test_push_with_a_wrong_token_says_what_failed(every_save_run, hub, tmp_path):
    _, output_dir, _ = every_save_run
    result = push(output_dir, "--repo-id", "judge-org/other", env=hub_env(hub, tmp_path / "hf_home", "hf_wrong"))
    assert result.returncode == 1
    assert "judge-sft push: error: Hub repo judge-org/other: cannot create or reach it: " in result.stdout
    assert "401" in result.stdout and "HF_TOKEN, or `hf auth login`" in result.stdout
    assert "judge-org/other" not in hub.repos


def test_push_refuses_partitioned_zero3_shards(tmp_path, capsys):
    folder = tmp_path / "out"
    (folder / "global_step4").mkdir(parents=True)
    (folder / "global_step4" / "zero_pp_rank_0_mp_rank_00_model_states.pt").write_bytes(b"shard")
    (folder / "config.json").write_text("{}")
    assert cli_main(["push", str(folder), "--repo-id", "judge-org/x"]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"judge-sft push: error: {folder}: holds only ZeRO-3 partitioned shards (global_step*/)")
    assert not (folder / "README.md").exists()


def test_push_refuses_a_training_only_template_until_fix_template_rewrites_it(tmp_path, small_vocab_model_dir, hub):
    """A judge saved before judge-sft stopped saving the {% generation %} tags."""
    from trl.chat_template_utils import qwen3_training_chat_template

    folder = tmp_path / "old-judge"
    shutil.copytree(small_vocab_model_dir, folder)
    (folder / "chat_template.jinja").write_text(qwen3_training_chat_template)
    env = hub_env(hub, tmp_path / "hf_home", TOKEN)
    refused = push(folder, "--repo-id", "judge-org/old-judge", env=env)
    assert refused.returncode == 1
    assert refused.stdout.splitlines()[-1] == (
        f"judge-sft push: error: {folder}/chat_template.jinja: has the training-only {{% generation %}} tags, which "
        "servers that do not render through transformers reject as a syntax error; run "
        f"`judge-sft fix-template {folder}` first"
    )
    assert "judge-org/old-judge" not in hub.repos and not (folder / "README.md").exists()
    assert cli_main(["fix-template", str(folder)]) == 0
    pushed = push(folder, "--repo-id", "judge-org/old-judge", env=env)
    assert pushed.returncode == 0, pushed.stdout
    saved = hub.files("judge-org/old-judge")["chat_template.jinja"].decode()
    assert saved == inference_template(qwen3_training_chat_template)


# ---------------------------------------------------------------------------------------------------- failure


@pytest.mark.launch
def test_server_error_mid_push_keeps_local_results_and_push_completes_it(
    tmp_path, small_vocab_model_dir, prepared_data, hub
):
    repo_id, branch = "judge-org/tiny-judge-end", "candidate"
    recipe = tiny_recipe(
        tmp_path,
        small_vocab_model_dir,
        prepared_data / "train.parquet",
        prepared_data / "val.parquet",
        push_to_hub=True,
        hub_model_id=repo_id,
        hub_strategy="end",
        hub_revision=branch,
        **{**RUN_SETTINGS, "max_steps": 1, "save_strategy": "no", "eval_strategy": "no"},
    )
    hub.fail_commits = 1  # the end-of-training commit answers 500, after its files were uploaded
    result = launch(recipe, check=False, env=hub_env(hub, tmp_path / "hf_home", TOKEN))
    output_dir = tmp_path / "out"
    assert result.returncode != 0
    assert (
        f"judge-sft run: error: push of {output_dir} to {repo_id}@{branch} failed: Server error '500 Internal "
        "Server Error'"
    ) in result.stdout
    assert "simulated outage while committing" in result.stdout
    assert (
        f"re-run `judge-sft push {output_dir} --repo-id {repo_id} --revision {branch}` to complete it" in result.stdout
    )
    # local results are whole; nothing reached the branch
    for name in (
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "chat_template.jinja",
        "README.md",
        "recipe.yaml",
        "trainer_state.json",
    ):
        assert (output_dir / name).is_file(), name
    assert tensor_shapes(output_dir / "model.safetensors") == tensor_shapes(small_vocab_model_dir / "model.safetensors")
    assert set(hub.files(repo_id, branch)) == {".gitattributes"} and set(hub.files(repo_id)) == {".gitattributes"}
    weights = sha256(output_dir / "model.safetensors")

    # the second push completes it; credentials from the huggingface_hub login (the token file), not HF_TOKEN
    home = tmp_path / "hf_home"
    home.mkdir(exist_ok=True)
    (home / "token").write_text(TOKEN)
    retry = push(output_dir, "--repo-id", repo_id, "--revision", branch, env=hub_env(hub, home))
    assert retry.returncode == 0, retry.stdout
    files = hub.files(repo_id, branch)
    assert files["model.safetensors"] == (output_dir / "model.safetensors").read_bytes()
    assert sha256(output_dir / "model.safetensors") == weights
    assert ModelCard(files["README.md"].decode()).data.library_name == "transformers"
    assert set(hub.files(repo_id)) == {".gitattributes"}  # main untouched: the push went to the branch
