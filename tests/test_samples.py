"""Eval samples (`eval_samples`, judge_sft/train/samples.py): greedy completions of the first val rows at every
evaluation, in OUTPUT_DIR/samples/, the reporters, the model card and `judge-sft samples`.

The launch tests read three real 2-process ZeRO-3 CPU trainings of the small-vocabulary tiny Qwen3 (untied
embeddings: tied, its greedy output was newlines only), run one after the other in one launch: sp_size 1 (wandb and
tensorboard on), sp_size 2, and LoRA. Every final completion must equal what greedy `generate` writes with the saved
model and tokenizer. SGD at a large learning rate keeps the tiny model's greedy output changing from step to step, and
the sp_size 1 and 2 runs comparable step by step (as in test_sequence_parallel.py).
"""

import json
import logging
from pathlib import Path

import pytest
import torch
from conftest import EXACT_SGD, conversation, tiny_recipe, write_messages
from driver import launch_driver

from judge_sft.cli import main as cli_main
from judge_sft.errors import JudgeSFTError
from judge_sft.hub.card import write_model_card
from judge_sft.train.arguments import JudgeArguments, parse_recipe
from judge_sft.train.sample_files import read_samples, write_samples
from judge_sft.train.samples import sample_prompts

TRAIN_ROWS, VAL_ROWS, TOTAL_BATCH, MAX_LENGTH = 8, 6, 4, 256
STEPS = TRAIN_ROWS // TOTAL_BATCH
NEW_TOKENS = 12
TOO_LONG = [{"role": "user", "content": "long " * 400}, {"role": "assistant", "content": "cut"}]
RUN_SETTINGS = dict(
    total_batch_size=TOTAL_BATCH,
    per_device_train_batch_size=1,
    per_device_eval_batch_size=1,
    max_length=MAX_LENGTH,
    **EXACT_SGD,
    eval_steps=1,
    save_strategy="no",
    report_to="none",
    skip_doctor=True,
    eval_samples=3,
    eval_samples_max_new_tokens=NEW_TOKENS,
)


def sample_data(directory, val_rows):
    metadata = {b"judge_sft.train_on": b"final"}
    rows = [conversation(index, 1 + index % 3) for index in range(TRAIN_ROWS + VAL_ROWS)]
    return (
        write_messages(directory / "train.parquet", rows[:TRAIN_ROWS], metadata),
        write_messages(directory / "val.parquet", val_rows(rows[TRAIN_ROWS:]), metadata),
    )


# ---------------------------------------------------------------------------------------------------- no launch


@pytest.fixture(scope="module")
def training_tokenizer():
    """The tokenizer as run.py prepares it: the Qwen3 tokenizer with the training chat template."""
    from transformers import AutoTokenizer

    from judge_sft.tiny_model import qwen3_tokenizer_dir
    from judge_sft.train.chat_templates import training_chat_template

    tokenizer = AutoTokenizer.from_pretrained(qwen3_tokenizer_dir())
    tokenizer.chat_template = training_chat_template(tokenizer)
    return tokenizer


def test_prompt_is_every_message_before_the_final_answer_rendered_as_inference_renders_it(
    training_tokenizer, small_data
):
    _, val = small_data
    prompts = sample_prompts(JudgeArguments(val_file=str(val), eval_samples=2), training_tokenizer, MAX_LENGTH)
    second = conversation(41, 3)
    assert [prompt.row for prompt in prompts] == [0, 1]
    assert prompts[1].prompt == second[:-1] and prompts[1].reference == second[-1]["content"]
    rendered = training_tokenizer.apply_chat_template(second[:-1], add_generation_prompt=True, return_dict=True)
    assert prompts[1].input_ids == list(rendered["input_ids"])
    assert training_tokenizer.decode(prompts[1].input_ids).endswith(
        f"<|im_start|>user\n{second[-2]['content']}<|im_end|>\n<|im_start|>assistant\n"
    )


def test_a_val_row_whose_prompt_alone_exceeds_max_length_is_skipped_with_a_count(training_tokenizer, tmp_path, caplog):
    val = write_messages(tmp_path / "val.parquet", [conversation(0, 1), TOO_LONG, conversation(2, 2)])
    with caplog.at_level(logging.WARNING, logger="judge_sft"):
        prompts = sample_prompts(JudgeArguments(val_file=str(val), eval_samples=3), training_tokenizer, MAX_LENGTH)
    assert [prompt.row for prompt in prompts] == [0, 2]
    assert (
        f"{val}: eval_samples skips 1 of the first 3 rows, whose prompt alone exceeds max_length {MAX_LENGTH}: "
        "rows 1 (409 tokens)"
    ) in caplog.messages


def test_no_samples_without_a_val_file_or_with_eval_samples_0(training_tokenizer, small_data):
    _, val = small_data
    assert sample_prompts(JudgeArguments(val_file=None, eval_samples=4), training_tokenizer, MAX_LENGTH) == []
    assert sample_prompts(JudgeArguments(val_file=str(val), eval_samples=0), training_tokenizer, MAX_LENGTH) == []


@pytest.mark.parametrize(
    "override, error",
    [
        (["--eval_samples", "-1"], "recipe: eval_samples must be 0 (off) or more, not -1"),
        (["--eval_samples_max_new_tokens", "0"], "recipe: eval_samples_max_new_tokens must be 1 or more, not 0"),
    ],
)
def test_bad_eval_samples_keys_are_refused_before_anything_loads(override, error):
    with pytest.raises(JudgeSFTError) as raised:
        parse_recipe(["--train_file", "train.parquet", *override], for_launch=False)
    assert str(raised.value) == error


def records_at(step):
    return [
        {
            "step": step,
            "row": row,
            "prompt": [{"role": "user", "content": f"Rate answer {row} | of step {step}"}],
            "reference": f"Score: {row}",
            "completion": f"Verdict {step}.{row}\nScore: {row + 1}",
        }
        for row in range(2)
    ]


def test_samples_command_prints_the_latest_step_side_by_side(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    for step in (3, 10):
        write_samples(tmp_path, step, records_at(step))
    assert cli_main(["samples", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"step 10: 2 samples ({tmp_path / 'samples' / 'step-000010.jsonl'})"
    start = lines.index("── row 1 " + "─" * 49)
    assert lines[start + 1 : start + 6] == [
        "user: Rate answer 1 | of step 10",
        "",
        "REFERENCE                    │ COMPLETION",  # 2 columns of (60 - 3) // 2 = 28 characters
        "Score: 1                     │ Verdict 10.1",
        "                             │ Score: 2",
    ]


def test_samples_command_shows_the_step_asked_for_and_names_the_steps_it_has(tmp_path, capsys):
    for step in (3, 10):
        write_samples(tmp_path, step, records_at(step))
    assert cli_main(["samples", str(tmp_path), "--step", "3"]) == 0
    assert "Verdict 3.0" in capsys.readouterr().out
    assert cli_main(["samples", str(tmp_path), "--step", "4"]) == 1
    assert capsys.readouterr().err == (
        f"judge-sft samples: error: {tmp_path}: no samples at step 4; steps with samples: 3, 10\n"
    )
    assert cli_main(["samples", str(tmp_path / "elsewhere")]) == 1
    assert capsys.readouterr().err == (
        f"judge-sft samples: error: {tmp_path / 'elsewhere'}: no samples/step-*.jsonl (the run had no val_file, "
        "eval_samples 0, or no evaluation yet)\n"
    )


def test_card_shows_the_last_steps_samples_shortened_in_a_table(tmp_path):
    records = records_at(7)
    records[0]["completion"] = "x" * 100 + " middle " + "y" * 100
    write_samples(tmp_path, 7, records)
    text = write_model_card(tmp_path).read_text()
    assert "Greedy completions of the first val rows' prompts at step 7, shortened (whole in " in text
    assert "| row | prompt | reference | completion |" in text
    assert f"| 0 | user: Rate answer 0 \\| of step 7 | Score: 0 | {'x' * 78} … {'y' * 79} |" in text
    assert "| 1 | user: Rate answer 1 \\| of step 7 | Score: 1 | Verdict 7.1↵Score: 2 |" in text


# ---------------------------------------------------------------------------------------------------- launches


@pytest.fixture(scope="module")
def sample_runs(tmp_path_factory, small_vocab_model_dir):
    """The three runs, one after the other in one launch (tests/driver.py): sp_size 1 with wandb
    and tensorboard, sp_size 2 (val row 0's prompt alone is longer than max_length in both), and LoRA on a val file of
    2 rows with eval_samples 5 (both are sampled). Returns name -> (output directory, the job's output)."""
    directory = tmp_path_factory.mktemp("samples")
    lora = dict(use_peft=True, lora_r=4, lora_alpha=8, lora_target_modules=["q_proj", "v_proj"], learning_rate=1.0)
    runs = {
        "sp1": (lambda rows: [TOO_LONG, *rows], dict(report_to=["wandb", "tensorboard"])),
        "sp2": (lambda rows: [TOO_LONG, *rows], dict(sp_size=2)),
        "lora": (lambda rows: rows[:2], dict(eval_samples=5, **lora)),
    }
    jobs = []
    for name, (val_rows, overrides) in runs.items():
        (directory / name).mkdir()
        train, val = sample_data(directory / name, val_rows)
        recipe = tiny_recipe(directory / name, small_vocab_model_dir, train, val, **{**RUN_SETTINGS, **overrides})
        jobs.append(recipe)
    env = {"WANDB_MODE": "offline", "WANDB_DIR": str(directory / "sp1"), "WANDB_PROJECT": "judge-sft-test"}
    output = launch_driver(jobs, directory, env=env)
    return {name: (recipe.parent / "out", output[recipe]) for name, recipe in zip(runs, jobs)}


@pytest.fixture(scope="module")
def sp1_run(sample_runs):
    return sample_runs["sp1"]


@pytest.fixture(scope="module")
def sp2_run(sample_runs):
    return sample_runs["sp2"]


@pytest.fixture(scope="module")
def lora_run(sample_runs):
    return sample_runs["lora"]


def state(output_dir):
    return json.loads((output_dir / "trainer_state.json").read_text())["log_history"]


def greedy_completions(output_dir, records, base_model_dir=None):
    """What inference with the saved model and tokenizer writes for each record's prompt, greedily."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    if base_model_dir:
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_model_dir), output_dir)
    else:
        model = AutoModelForCausalLM.from_pretrained(output_dir)
    completions = []
    for record in records:
        prompt = tokenizer.apply_chat_template(record["prompt"], add_generation_prompt=True, return_dict=True)
        input_ids = torch.tensor([prompt["input_ids"]])
        output = model.generate(input_ids=input_ids, max_new_tokens=NEW_TOKENS, do_sample=False)
        completions.append(tokenizer.decode(output[0, input_ids.shape[1] :], skip_special_tokens=True))
    return completions


def check_samples_of_every_eval(output_dir, rows, base_model_dir=None):
    eval_steps = [entry["step"] for entry in state(output_dir) if "eval_loss" in entry]
    assert eval_steps == list(range(1, STEPS + 1))
    for step in eval_steps:
        assert [record["row"] for record in read_samples(output_dir, step)[1]] == rows
    final_step, final = read_samples(output_dir)
    assert final_step == STEPS
    assert [record["completion"] for record in final] == greedy_completions(output_dir, final, base_model_dir)
    # the tiny model's greedy output moved with training: the comparison is not one of constant strings
    assert [record["completion"] for record in read_samples(output_dir, 1)[1]] != [
        record["completion"] for record in final
    ]
    return final


@pytest.mark.launch
def test_every_eval_writes_samples_and_the_final_ones_are_what_the_saved_model_generates(sp1_run):
    output_dir, stdout = sp1_run
    final = check_samples_of_every_eval(output_dir, [1, 2])
    first_val_row = conversation(TRAIN_ROWS, 1 + TRAIN_ROWS % 3)
    assert final[0]["prompt"] == first_val_row[:-1] and final[0]["reference"] == first_val_row[-1]["content"]
    skipped = "eval_samples skips 1 of the first 3 rows, whose prompt alone exceeds max_length 256: rows 0 ("
    assert f"{output_dir.parent / 'val.parquet'}: {skipped}" in stdout


@pytest.mark.launch
def test_wandb_holds_the_samples_table_and_the_generation_time(sp1_run):
    from wandb_records import history

    output_dir, _ = sp1_run
    [run_file] = Path(output_dir.parent, "wandb").glob("offline-run-*/run-*.wandb")
    rows = history(run_file)
    # a logged table is a file beside the run; the history row holds its fields under val/samples/
    tables = [row for row in rows if row.get("val/samples/_type") == "table-file"]
    assert [row["train/global_step"] for row in tables] == list(range(1, STEPS + 1))
    table = json.loads((run_file.parent / "files" / tables[-1]["val/samples/path"]).read_text())
    _, final = read_samples(output_dir)
    assert table["columns"] == ["step", "row", "prompt", "reference", "completion"]
    assert [row[1:2] + row[3:] for row in table["data"]] == [
        [record["row"], record["reference"], record["completion"]] for record in final
    ]
    seconds = [row["val/samples_seconds"] for row in rows if "val/samples_seconds" in row]
    logged = [entry["eval_samples_seconds"] for entry in state(output_dir) if "eval_samples_seconds" in entry]
    assert seconds == logged and len(logged) == STEPS and all(value > 0 for value in logged)


@pytest.mark.launch
def test_tensorboard_and_the_model_card_show_the_final_samples(sp1_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    output_dir, _ = sp1_run
    [events] = {path.parent for path in output_dir.rglob("events.out.tfevents.*")}
    accumulator = EventAccumulator(str(events), size_guidance={"tensors": 0}).Reload()
    texts = accumulator.Tensors("val/samples/text_summary")
    assert [event.step for event in texts] == list(range(1, STEPS + 1))
    card = (output_dir / "README.md").read_text()
    _, final = read_samples(output_dir)
    assert f"at step {STEPS}, shortened (whole in `samples/step-{STEPS:06d}.jsonl`" in card
    for record in final:
        assert f"| {record['row']} | user: Question {TRAIN_ROWS + record['row'] - 1}.0" in card
        assert texts[-1].tensor_proto.string_val[0].decode().count(f"| {record['row']} | ") == 1


@pytest.mark.launch
def test_sp2_samples_are_what_the_saved_model_generates_and_sp_training_goes_on_unchanged(sp1_run, sp2_run):
    sp2_output, _ = sp2_run
    check_samples_of_every_eval(sp2_output, [1, 2])
    sp1, sp2 = ([entry for entry in state(output) if "loss" in entry] for output in (sp1_run[0], sp2_output))
    # generation at step 1 ran without Ulysses; the step after it trains as sp_size 1 does
    for one, two in zip(sp1, sp2, strict=True):
        assert two["loss"] == pytest.approx(one["loss"], abs=1e-5)
        assert two["grad_norm"] == pytest.approx(one["grad_norm"], rel=1e-4)


@pytest.mark.launch
def test_lora_samples_every_val_row_when_eval_samples_exceeds_them(lora_run, small_vocab_model_dir):
    output_dir, _ = lora_run
    check_samples_of_every_eval(output_dir, [0, 1], base_model_dir=small_vocab_model_dir)
