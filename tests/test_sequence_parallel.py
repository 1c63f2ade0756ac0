"""Sequence parallelism (judge_sft/train/sequence_parallel.py): sp_size 2 computes what sp_size 1 computes, on ZeRO 1, 2, 3.

The parity runs are real trainings through judge_sft/run.py on 2 CPU processes (gloo), the tiny Qwen3, SGD at a large
learning rate, no gradient clipping, 3 optimizer steps over variable-length rows. To keep the suite fast, one launch of
tests/driver.py trains several recipes one after the other in the same two processes, each ZeRO stage's with the
environment its accelerate config sets (`config_environment`): sp_size 1 and 2 at micro batch 1 and 2 (`runs`:
padded rows on ZeRO-1, the tiled MLP on ZeRO-3), a run interrupted and resumed (ZeRO-3), and a recipe that must be
refused. ZeRO-3's jobs also run the GPU-only branches with an H100's facts stated
(docs/gpu.md#gpu-branches-on-cpu): its sp_size 2 runs attend through `sdpa_with_document_mask`'s varlen branch (a CPU
kernel standing in for the flash kernel; ZeRO-1 and -2 keep the CPU branch), `auto` probes and trains torch_varlen
with eval samples, and plan's memory verdict refuses a recipe that does not fit. Each output directory holds what the
tests compare: the per-step loss, grad_norm and num_tokens and the val/loss (trainer_state.json of the final
checkpoint), and the final weights.

Same data: both sp_sizes launch 2 processes, so both shard the (seeded, shuffled) data the same way over 2 ranks. At
sp_size 1 the 2 ranks are dp 2; at sp_size 2 they are one SP group that trains rank 0's batch, then rank 1's: the same
rows in each optimizer step, with twice the gradient accumulation.
"""

import gc
import json

import pytest
import torch
from conftest import EXACT_SGD, tiny_recipe, write_messages
from driver import config_environment, launch_driver, output_under
from safetensors.torch import load_file

STAGES = {1: "cpu_zero1_2proc.yaml", 2: "cpu_zero2_2proc.yaml", 3: "cpu_zero3_2proc.yaml"}
TRAIN_ROWS, VAL_ROWS, TOTAL_BATCH, MAX_LENGTH = 12, 4, 4, 384  # the longest row: 318 tokens (small vocabulary)
STEPS = TRAIN_ROWS // TOTAL_BATCH
TOLERANCE = 1e-5
RUN_SETTINGS = dict(
    total_batch_size=TOTAL_BATCH,
    per_device_eval_batch_size=1,
    max_length=MAX_LENGTH,
    **EXACT_SGD,
    eval_strategy="steps",
    eval_steps=STEPS,
    save_strategy="steps",
    save_steps=STEPS,
    save_only_model=True,
    report_to="none",
    skip_doctor=True,
)
RUN_NAMES = [f"sp{sp}_mb{micro}" for sp in (1, 2) for micro in (1, 2)]


def runs(stage):
    """name -> recipe overrides; each sp_size 2 run is compared with the sp_size 1 run of its micro batch. Padding-free
    rows (a micro batch is one row), except micro batch 2 under ZeRO-1: padded rows, 2 side by side, whose shards are
    not contiguous (ZeRO-1 and 2 share DeepSpeed's reduction code). ZeRO-3's sp_size 2 micro batch 2 tiles the MLP."""
    overrides = {
        f"sp{sp}_mb{micro}": dict(sp_size=sp, per_device_train_batch_size=micro) for sp in (1, 2) for micro in (1, 2)
    }
    if stage == 1:
        overrides["sp1_mb2"]["padding_free"] = overrides["sp2_mb2"]["padding_free"] = False
    if stage == 3:
        overrides["sp2_mb2"]["tiled_mlp"] = True
        overrides["sp1_mb1"].update(SAMPLES)  # the greedy completions the stated-GPU torch_varlen run must equal
    return overrides


BAD_RECIPE = dict(sp_size=2, attn_implementation="eager")  # must stop before any weights load
# GPU-only branches on CPU (docs/gpu.md#gpu-branches-on-cpu): this GPU's facts, stated.
STATED_H100 = {"JUDGE_SFT_GPU": "NVIDIA H100 80GB;80;9.0"}
SAMPLES = dict(eval_samples=2, eval_samples_max_new_tokens=8)
STATED_GPU_RUNS = {
    # auto probes and takes torch_varlen; plan's memory verdict passes; eval samples decode with it
    "varlen": dict(sp_size=1, per_device_train_batch_size=1, attn_implementation="auto", skip_doctor=False, **SAMPLES),
    # plan's memory verdict refuses it before anything loads
    "too_long": dict(
        sp_size=1, per_device_train_batch_size=8, total_batch_size=16, max_length=2**21, skip_doctor=False
    ),
}


def judge_rows(count, start):
    """Judge-like rows: a long prompt of varying length, a short final verdict. The verdict (the only trained tokens)
    lies in the last quarter of every row, so when a micro batch of one row is split in 2 shards, one shard trains no
    token at all and the other all of them: the loss must be the mean over the group's tokens, not of shard means."""
    rows = []
    for index in range(start, start + count):
        prompt = f"Rate answer {index}: " + " ".join(f"claim{index % 7}-{word}" for word in range(18 + 3 * (index % 6)))
        rows.append([{"role": "user", "content": prompt}, {"role": "assistant", "content": f"Score: {index % 10}"}])
    return rows


@pytest.fixture(scope="module")
def sp_data(tmp_path_factory):
    directory = tmp_path_factory.mktemp("sp_data")
    metadata = {b"judge_sft.train_on": b"final"}
    return (
        write_messages(directory / "train.parquet", judge_rows(TRAIN_ROWS, 0), metadata),
        write_messages(directory / "val.parquet", judge_rows(VAL_ROWS, 100), metadata),
    )


def stage_jobs(stage, directory, model_dir, sp_data):
    """The driver jobs of one ZeRO stage, with its environment, and name -> output directory of the runs compared.
    ZeRO-3 also interrupts sp2_mb1 after its first step and resumes it (`sp2_resume`), runs its sp_size 2 recipes on
    a stated H100 (the GPU branch of `sdpa_with_document_mask`, the CPU kernel standing in) and adds
    `STATED_GPU_RUNS`."""
    jobs = []

    def job(name, overrides, env=None, recipe_name=None):
        (directory / name).mkdir(parents=True, exist_ok=True)
        recipe = tiny_recipe(directory / name, model_dir, *sp_data, **{**RUN_SETTINGS, **overrides})
        if recipe_name:
            recipe = recipe.rename(directory / name / recipe_name)
        env = env or (STATED_H100 if stage == 3 and overrides.get("sp_size", 1) > 1 else {})
        jobs.append((recipe, {**config_environment(STAGES[stage]), **env}))

    for name, overrides in runs(stage).items():
        job(name, overrides)
    job("bad", BAD_RECIPE)
    if stage == 3:
        settings = {**runs(3)["sp2_mb1"], "save_only_model": False}
        job("sp2_resume", {**settings, "max_steps": 1, "save_steps": 1}, recipe_name="stop.yaml")
        job("sp2_resume", settings)
        for name, overrides in STATED_GPU_RUNS.items():
            job(name, overrides, STATED_H100)
    names = RUN_NAMES + (["sp2_resume", *STATED_GPU_RUNS] if stage == 3 else [])
    return jobs, {name: directory / name / "out" for name in names}


@pytest.fixture(scope="module")
def every_stage_runs(tmp_path_factory, small_vocab_model_dir, sp_data):
    """Every ZeRO stage's jobs, one stage after the other in one launch: stage -> (name -> output directory, the
    launch's output of that stage's jobs, the bad recipe's directory)."""
    directory = tmp_path_factory.mktemp("sp_parity")
    jobs, outputs = [], {}
    for stage in sorted(STAGES):
        stage_jobs_of, outputs[stage] = stage_jobs(stage, directory / f"zero{stage}", small_vocab_model_dir, sp_data)
        jobs += stage_jobs_of
    refused = [directory / f"zero{stage}" / "bad" / "recipe.yaml" for stage in STAGES]
    refused.append(directory / "zero3" / "too_long" / "recipe.yaml")
    sections = launch_driver(jobs, directory, config=STAGES[3], refused=refused)
    return {
        stage: (
            outputs[stage],
            output_under(sections, directory / f"zero{stage}"),
            directory / f"zero{stage}" / "bad",
        )
        for stage in sorted(STAGES)
    }


@pytest.fixture(scope="module", params=sorted(STAGES), ids=lambda stage: f"zero{stage}")
def stage_runs(request, every_stage_runs):
    """One ZeRO stage's runs: name -> output directory, the launch's output of its jobs, the bad recipe's directory."""
    return every_stage_runs[request.param]


def history(output_dir):
    state = json.loads((output_dir / f"checkpoint-{STEPS}" / "trainer_state.json").read_text())
    steps = [entry for entry in state["log_history"] if "loss" in entry]
    evals = [entry["eval_loss"] for entry in state["log_history"] if "eval_loss" in entry]
    return steps, evals


@pytest.mark.launch
@pytest.mark.parametrize("micro", [1, 2])
def test_sp2_trains_like_sp1_step_by_step(stage_runs, micro):
    outputs, _, _ = stage_runs
    reference, _ = history(outputs[f"sp1_mb{micro}"])
    sequence_parallel, _ = history(outputs[f"sp2_mb{micro}"])
    assert [entry["step"] for entry in sequence_parallel] == [entry["step"] for entry in reference] == [1, 2, 3]
    for sp1, sp2 in zip(reference, sequence_parallel):
        assert sp2["loss"] == pytest.approx(sp1["loss"], abs=TOLERANCE), (sp1, sp2)
        assert sp2["grad_norm"] == pytest.approx(sp1["grad_norm"], abs=TOLERANCE), (sp1, sp2)
        assert sp2["num_tokens"] == sp1["num_tokens"]  # every token trained once, SP padding not counted
    assert reference[-1]["loss"] < reference[0]["loss"] - 0.05  # the steps did train


@pytest.mark.launch
@pytest.mark.parametrize("micro", [1, 2])
def test_sp2_ends_with_the_weights_of_sp1(stage_runs, micro, small_vocab_model_dir):
    outputs, _, _ = stage_runs
    initial = load_file(small_vocab_model_dir / "model.safetensors")
    reference = load_file(outputs[f"sp1_mb{micro}"] / "model.safetensors")
    sequence_parallel = load_file(outputs[f"sp2_mb{micro}"] / "model.safetensors")
    assert sequence_parallel.keys() == reference.keys()
    moved = max((reference[name] - initial[name]).abs().max().item() for name in initial.keys() & reference.keys())
    assert moved > 100 * TOLERANCE  # the comparison below can tell a wrong step from a right one
    for name in reference:
        assert torch.allclose(sequence_parallel[name], reference[name], rtol=0, atol=TOLERANCE), name


@pytest.mark.launch
@pytest.mark.parametrize("micro", [1, 2])
def test_sp2_val_loss_equals_sp1(stage_runs, micro):
    outputs, _, _ = stage_runs
    _, reference = history(outputs[f"sp1_mb{micro}"])
    _, sequence_parallel = history(outputs[f"sp2_mb{micro}"])
    assert len(reference) == len(sequence_parallel) == 1
    assert sequence_parallel[0] == pytest.approx(reference[0], abs=TOLERANCE)


@pytest.mark.launch
def test_each_stages_runs_trained_under_that_zero_stage(stage_runs):
    outputs, _, _ = stage_runs
    trained = {name: out.parent for name, out in outputs.items() if not (out.parent / "error.txt").exists()}
    assert trained and all(
        json.loads((job / "trained_under.json").read_text())["zero_stage"] == int(job.parent.name.removeprefix("zero"))
        for job in trained.values()
    )


@pytest.mark.launch
def test_batch_arithmetic_is_logged_with_sp(stage_runs):
    _, output, _ = stage_runs
    assert "world_size=2 sp_size=2 -> dp=1; global batch 4 = micro batch 1 x dp 1 x gradient accumulation 4" in output
    assert "world_size=2 sp_size=1 -> dp=2; global batch 4 = micro batch 1 x dp 2 x gradient accumulation 2" in output


@pytest.mark.launch
def test_eager_attention_is_refused_before_the_weights_load(stage_runs):
    _, _, bad = stage_runs
    assert (
        "attn_implementation eager: not with sp_size 2: Ulysses drops the model's attention mask, which eager "
        "attention needs; set `attn_implementation: auto` on a GPU, or sdpa" in (bad / "error.txt").read_text()
    )
    assert not (bad / "out" / "model.safetensors").exists()


def test_verdicts_lie_where_one_shard_trains_no_token(small_vocab_model_dir, sp_data):
    """What the parity runs rely on to test the loss normalisation: in every row of 1-row micro batches, split in 2
    shards (padded to the longer row of the pair, at most the longest row), all trained tokens are in the second."""
    from datasets import Dataset
    from transformers import AutoTokenizer

    from judge_sft.data.tokenization import tokenize_dataset
    from judge_sft.train.chat_templates import training_chat_template

    tokenizer = AutoTokenizer.from_pretrained(small_vocab_model_dir)
    rows, _ = tokenize_dataset(
        Dataset.from_parquet(str(sp_data[0])), tokenizer, training_chat_template(tokenizer), MAX_LENGTH, "final"
    )
    longest = max(len(ids) for ids in rows["input_ids"])
    for labels in rows["labels"]:
        trained = [position for position, label in enumerate(labels) if label != -100]
        assert trained and min(trained) > (longest + 1) // 2


@pytest.mark.launch
@pytest.mark.parametrize("stage_runs", [3], indirect=True, ids=["zero3"])
def test_sp_run_resumed_mid_epoch_ends_like_an_uninterrupted_one(stage_runs):
    outputs, output, _ = stage_runs
    resumed, uninterrupted = outputs["sp2_resume"], outputs["sp2_mb1"]
    assert f"resuming from {resumed / 'checkpoint-1'}" in output
    steps, _ = history(resumed)
    reference, _ = history(uninterrupted)
    assert [entry["step"] for entry in steps] == [1, 2, 3]
    for before, after in zip(reference, steps):
        assert after["loss"] == pytest.approx(before["loss"], abs=TOLERANCE)
    weights, reference_weights = (
        load_file(resumed / "model.safetensors"),
        load_file(uninterrupted / "model.safetensors"),
    )
    for name in reference_weights:
        assert torch.allclose(weights[name], reference_weights[name], rtol=0, atol=TOLERANCE), name


@pytest.mark.launch
@pytest.mark.parametrize("stage_runs", [3], indirect=True, ids=["zero3"])
def test_on_a_stated_h100_auto_probes_and_trains_torch_varlen_as_sdpa_trains(stage_runs):
    """Every rank takes the main process's choice (no collective of the probe's model collides with theirs); the CPU
    kernel standing in for torch's flash kernel trains what sdpa trains, and the eval samples decode as sdpa's do."""
    outputs, output, _ = stage_runs
    assert "attention: auto -> torch_varlen on NVIDIA H100 80GB (compute capability 9.0), sp_size 1" in output
    steps, evals = history(outputs["varlen"])
    reference, reference_evals = history(outputs["sp1_mb1"])
    assert [entry["step"] for entry in steps] == [1, 2, 3]
    for sdpa, varlen in zip(reference, steps):
        assert varlen["loss"] == pytest.approx(sdpa["loss"], abs=TOLERANCE), (sdpa, varlen)
        assert varlen["grad_norm"] == pytest.approx(sdpa["grad_norm"], abs=TOLERANCE), (sdpa, varlen)
    assert evals == pytest.approx(reference_evals, abs=TOLERANCE)
    completions = [
        [json.loads(line)["completion"] for line in (out / "samples" / f"step-{STEPS:06d}.jsonl").open()]
        for out in (outputs["sp1_mb1"], outputs["varlen"])
    ]
    assert len(completions[0]) == SAMPLES["eval_samples"] and completions[1] == completions[0]


@pytest.mark.launch
@pytest.mark.parametrize("stage_runs", [3], indirect=True, ids=["zero3"])
def test_on_a_stated_h100_plan_refuses_a_run_that_will_not_fit_before_anything_loads(stage_runs):
    import psutil

    from judge_sft.planning.plan import Machines, memory_verdict
    from judge_sft.train.arguments import parse_recipe

    outputs, _, _ = stage_runs
    recipe = outputs["too_long"].parent / "recipe.yaml"
    machines = Machines(num_gpus=2, gpu_memory_gb=80.0, cpu_memory_gb=psutil.virtual_memory().total / 2**30)
    verdict = memory_verdict(*parse_recipe([str(recipe)], for_launch=False), machines)
    assert verdict.startswith("plan: this run needs ")
    error = (outputs["too_long"].parent / "error.txt").read_text()
    assert error == f"{verdict}; or set `skip_doctor: true` to try anyway"
    assert not (outputs["too_long"] / "recipe.yaml").exists()


# ---- checks before any weights load


@pytest.fixture(scope="module")
def odd_heads_model(tmp_path_factory):
    """A config (no weights needed) with 6 attention heads and 3 kv heads."""
    from transformers import Qwen3Config

    directory = tmp_path_factory.mktemp("odd_heads")
    Qwen3Config(hidden_size=48, num_attention_heads=6, num_key_value_heads=3, head_dim=8).save_pretrained(directory)
    return directory


ZERO3 = {"stage": 3}


@pytest.mark.parametrize(
    "sp_size, world_size, model, attention, zero, message",
    [
        (3, 4, "tiny", "sdpa", ZERO3, "sp_size 3 does not divide the 4 launched processes"),
        (2, 2, "tiny", "sdpa", None, "sp_size 2 is DeepSpeed-Ulysses sequence parallelism; launch with a DeepSpeed"),
        (2, 2, "tiny", "sdpa", {"stage": 0}, "needs ZeRO stage 1, 2 or 3 (the accelerate config has 0)"),
        (2, 2, "tiny", "sdpa", {"stage": 3, "reduce_scatter": False}, "with ZeRO-3 needs reduce_scatter: true"),
        (2, 2, "tiny", "eager", ZERO3, "eager: not with sp_size 2: Ulysses drops the model's attention mask"),
        (2, 2, "tiny", "flex_attention", ZERO3, "flex_attention: not with sp_size 2: accelerate's DeepSpeed-Ulysses"),
        (
            2,
            2,
            "tiny",
            "flash_attention_4",
            ZERO3,
            "flash_attention_4: not with sp_size 2: accelerate's DeepSpeed-Ulysses",
        ),
        (2, 2, "tiny", "torch_varlen", ZERO3, "torch_varlen: not with sp_size 2: accelerate's DeepSpeed-Ulysses"),
        (8, 8, "tiny", "sdpa", ZERO3, "4 attention heads are not divisible by sp_size 8"),
        (2, 2, "odd", "sdpa", ZERO3, "3 key/value heads and sp_size 2: one must divide the other"),
    ],
)
def test_bad_sp_configs_fail_with_a_clear_error(
    sp_size, world_size, model, attention, zero, message, small_vocab_model_dir, odd_heads_model
):
    from trl import ModelConfig

    from judge_sft.errors import JudgeSFTError
    from judge_sft.train.sequence_parallel import check_config

    model_args = ModelConfig(
        model_name_or_path=str(small_vocab_model_dir if model == "tiny" else odd_heads_model),
        attn_implementation=attention,
    )
    with pytest.raises(JudgeSFTError) as error:
        check_config(sp_size, world_size, model_args, zero)
    assert message in str(error.value)


@pytest.mark.parametrize("sp_size, stage", [(2, 1), (2, 2), (4, 3)])
def test_good_sp_configs_pass(sp_size, stage, small_vocab_model_dir):
    from trl import ModelConfig

    from judge_sft.train.sequence_parallel import check_config

    # 4 heads, 2 kv heads: sp 2 splits both; sp 4 splits the heads and replicates the kv heads
    check_config(
        sp_size,
        4,
        ModelConfig(model_name_or_path=str(small_vocab_model_dir), attn_implementation="sdpa"),
        {"stage": stage},
    )


def test_left_padded_batches_are_refused():
    from judge_sft.errors import JudgeSFTError
    from judge_sft.train.sequence_parallel import SPBatches

    batch = {
        "input_ids": torch.tensor([[0, 5, 6, 7], [4, 5, 6, 7]]),
        "attention_mask": torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]]),
    }
    with pytest.raises(JudgeSFTError, match="needs batches padded on the right"):
        SPBatches([batch], group=None, sp_size=2, pad_token_id=0).even(batch)


# ---- ALST tiled MLP


def test_tiled_mlp_leaves_loss_and_gradients_unchanged(small_vocab_model_dir):
    from transformers import AutoModelForCausalLM

    from judge_sft.train.tiled_mlp import tile_mlp

    torch.manual_seed(0)
    input_ids = torch.randint(0, 1000, (2, 200))  # 200 tokens / hidden 64 -> 4 tiles per MLP call
    results = []
    for tiled in (False, True):
        model = AutoModelForCausalLM.from_pretrained(small_vocab_model_dir, attn_implementation="sdpa")
        if tiled:
            assert tile_mlp(model) == model.config.num_hidden_layers
        loss = model(input_ids=input_ids, labels=input_ids).loss
        loss.backward()
        results.append((loss.item(), {name: param.grad.clone() for name, param in model.named_parameters()}))
        del model
        gc.collect()
    (plain_loss, plain_grads), (tiled_loss, tiled_grads) = results
    assert tiled_loss == pytest.approx(plain_loss, abs=TOLERANCE)
    for name, grad in plain_grads.items():
        assert torch.allclose(tiled_grads[name], grad, rtol=0, atol=TOLERANCE), name
    assert any("mlp" in name and grad.abs().max() > 0 for name, grad in plain_grads.items())
