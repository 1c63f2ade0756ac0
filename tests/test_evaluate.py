"""`judge-sft evaluate` through the real entry point: prompts rendered as training rendered them, the tiny model
generating locally (its random weights write unparsable text), predictions files for the verdict paths, resume,
several judges side by side, the outputs on disk, the model card's section, and the one-line errors."""

import json
import shutil

import pyarrow.parquet as pq
import pytest
import torch
import yaml
from conftest import REPO, write_messages
from judge_files import write_completions, write_pairwise, write_pointwise

from judge_sft.cli import main
from judge_sft.data.tokenization import IGNORE_INDEX, tokenize_messages
from judge_sft.evaluation.card_section import CARD_METRICS_NAME
from judge_sft.evaluation.judge_data import read_judge_rows
from judge_sft.evaluation.local import LocalGenerator
from judge_sft.judges.verdicts import render_verdict
from judge_sft.train.chat_templates import load_tokenizer, training_chat_template
from judge_sft.train.inference_template import inference_template

STRENGTHS = [-3, 2, -1, 1, 3, -2]  # 6 pairs, 12 rows


def run(capsys, *argv):
    try:
        status = main([str(arg) for arg in argv])
    except SystemExit as exit:
        status = exit.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture(scope="module")
def judge_dir(tmp_path_factory, tiny_model_dir):
    """An output directory as training leaves it: weights, the tokenizer with the saved (inference) chat template,
    recipe.yaml."""
    folder = tmp_path_factory.mktemp("judge") / "out"
    shutil.copytree(tiny_model_dir, folder)
    tokenizer = load_tokenizer(folder)
    tokenizer.chat_template = inference_template(training_chat_template(tokenizer))
    tokenizer.save_pretrained(folder)
    (folder / "recipe.yaml").write_text(yaml.safe_dump({"model_name_or_path": str(tiny_model_dir)}))
    return folder


@pytest.fixture
def pairwise_file(tmp_path):
    return write_pairwise(tmp_path / "pairwise.parquet", STRENGTHS)


def letters(path):
    return pq.read_table(path, columns=["label"]).column("label").to_pylist()


def predictions(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_evaluated_prompt_tokens_equal_the_prompt_part_of_the_training_tokens(tmp_path, tiny_model_dir, judge_dir):
    files = [
        write_pairwise(tmp_path / "pairwise.parquet", STRENGTHS[:2], format_name="mt-bench"),
        write_pointwise(tmp_path / "pointwise.parquet", [{"helpfulness": 3}, {"helpfulness": 1}], "prometheus"),
    ]
    trained_with = load_tokenizer(tiny_model_dir)  # what run.py tokenises with: the base model's tokenizer
    template = training_chat_template(trained_with)
    generators = [LocalGenerator(judge_dir), LocalGenerator(tiny_model_dir)]  # the saved template; the stock one
    for path in files:
        messages = pq.read_table(path, columns=["messages"]).column("messages").to_pylist()
        data = read_judge_rows(path)
        for generator in generators:
            for row, conversation in enumerate(messages):
                training = tokenize_messages(conversation, trained_with, template, None, "final")
                first_trained = next(i for i, label in enumerate(training["labels"]) if label != IGNORE_INDEX)
                assert generator.prompt_ids(data.prompts[row]) == training["input_ids"][:first_trained]


def test_left_padded_batches_complete_each_row_as_it_completes_alone(tmp_path, tiny_model_dir, monkeypatch):
    data = read_judge_rows(write_pairwise(tmp_path / "pairwise.parquet", STRENGTHS[:2]))  # prompts of 2 lengths
    requests = list(enumerate(data.prompts))
    alone = dict(LocalGenerator(tiny_model_dir, batch_size=1, max_new_tokens=3).complete(requests))
    batched = dict(LocalGenerator(tiny_model_dir, batch_size=4, max_new_tokens=3).complete(requests))
    assert sorted(alone) == list(range(4)) and batched == alone
    monkeypatch.setenv("JUDGE_SFT_GPU", "NVIDIA H100 80GB;80;9.0")  # the GPU placement (bf16, device_map), on CPU
    on_gpu = LocalGenerator(tiny_model_dir, batch_size=4, max_new_tokens=3)
    model = on_gpu.load_model()
    assert model.dtype == torch.bfloat16 and model.device.type == "cpu"  # device_map "auto" with no GPU: the CPU
    assert sorted(dict(on_gpu.complete(requests))) == sorted(alone)


def test_a_predictions_file_is_scored_against_the_labels_with_every_output_written(capsys, tmp_path, pairwise_file):
    labels = letters(pairwise_file)
    verdicts = [labels[row] if row % 4 else "A" for row in range(len(labels))]
    completions = {
        row: f"<think>\nweighing\n</think>\n\nReasoning.\n<better>{verdict}</better>"
        for row, verdict in enumerate(verdicts)
    }
    completions[5] = "I cannot decide."
    source = write_completions(tmp_path / "vllm.jsonl", completions)
    output = tmp_path / "eval"

    status, out, err = run(capsys, "evaluate", "--data", pairwise_file, "--predictions", source, "--output", output)

    assert status == 0, err
    records = predictions(output / "predictions.jsonl")
    assert [record["row"] for record in records] == list(range(12))
    assert records[5] == {
        "row": 5,
        "model": str(source),
        "prompt_hash": read_judge_rows(pairwise_file).prompt_hash(5),
        "completion": "I cannot decide.",
        "verdict": None,
        "label": labels[5],
        "correct": False,
    }
    right = [row != 5 and verdicts[row] == labels[row] for row in range(12)]
    assert [record["correct"] for record in records] == right
    metrics = json.loads((output / "metrics.json").read_text())
    judged = metrics["metrics"][str(source)]
    assert (judged["accuracy"]["value"], judged["accuracy"]["n"]) == (sum(right) / 12, 12)
    assert judged["parse_failure_rate"]["value"] == 1 / 12
    assert metrics["models"] == [str(source)] and metrics["differences"] == {}
    assert metrics["interval"] == {"method": "percentile bootstrap", "confidence": 0.95, "resamples": 1000, "seed": 0}
    assert (output / "evaluation.png").read_bytes().startswith(b"\x89PNG")
    assert f"accuracy               {sum(right) / 12:.3f} [" in out
    assert "12/12" in err  # the progress bar


def test_a_rerun_skips_the_rows_already_done_and_completes_the_file_once(capsys, tmp_path, pairwise_file):
    labels = letters(pairwise_file)
    source = write_completions(tmp_path / "run.jsonl", {row: f"<better>{labels[row]}</better>" for row in range(12)})
    output = tmp_path / "eval"
    assert run(capsys, "evaluate", "--data", pairwise_file, "--predictions", source, "--output", output)[0] == 0
    log = output / "predictions.jsonl"
    kept = log.read_text().splitlines()[:4]
    log.write_text("\n".join(kept) + "\n" + kept[0][:30])  # killed while writing the fifth line
    # the same command again, its file now wrong everywhere: the 4 rows done keep their first completions
    wrong = {"A": "B", "B": "A"}
    write_completions(source, {row: f"<better>{wrong[labels[row]]}</better>" for row in range(12)})

    status, _, err = run(capsys, "evaluate", "--data", pairwise_file, "--predictions", source, "--output", output)

    assert status == 0, err
    records = predictions(log)
    assert sorted(record["row"] for record in records) == list(range(12))
    assert [record["correct"] for record in sorted(records, key=lambda record: record["row"])] == [True] * 4 + [
        False
    ] * 8
    assert "4/12" in err  # the bar starts at the rows already done


def test_limit_evaluates_the_first_rows_and_needs_completions_for_those_only(capsys, tmp_path, pairwise_file):
    labels = letters(pairwise_file)
    source = write_completions(tmp_path / "p.jsonl", {row: f"<better>{labels[row]}</better>" for row in range(4)})
    output = tmp_path / "eval"

    status, _, err = run(
        capsys, "evaluate", "--data", pairwise_file, "--predictions", source, "--output", output, "--limit", 4
    )

    assert status == 0, err
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["rows"] == 4
    assert metrics["metrics"][str(source)]["accuracy"] == {"value": 1.0, "n": 4, "ci": [1.0, 1.0]}
    assert metrics["metrics"][str(source)]["both_orders_correct"]["n"] == 2
    assert len(predictions(output / "predictions.jsonl")) == 4


def test_the_tiny_model_and_a_predictions_file_side_by_side_with_their_difference(capsys, tmp_path, tiny_model_dir):
    data = write_pointwise(tmp_path / "pointwise.parquet", [{"helpfulness": rating} for rating in [0, 3, 4, 2]])
    perfect = write_completions(
        tmp_path / "perfect.jsonl",
        {
            row: render_verdict("pointwise", "openjudge", {"helpfulness": rating})
            for row, rating in enumerate([0, 3, 4, 2])
        },
    )
    output = tmp_path / "eval"

    argv = [
        "evaluate",
        tiny_model_dir,
        "--data",
        data,
        "--predictions",
        perfect,
        "--output",
        output,
        "--resamples",
        300,
    ]
    status, out, err = run(capsys, *argv, "--max-new-tokens", 3, "--batch-size", 3)

    assert status == 0, err
    records = predictions(output / "predictions.jsonl")
    local = [record for record in records if record["model"] == str(tiny_model_dir)]
    assert sorted(record["row"] for record in local) == [0, 1, 2, 3]
    assert all(record["verdict"] is None and record["completion"] for record in local)  # random weights
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["models"] == [str(tiny_model_dir), str(perfect)]
    assert metrics["metrics"][str(tiny_model_dir)]["parse_failure_rate"]["value"] == 1.0
    delta = metrics["differences"][f"{perfect} - {tiny_model_dir}"]["attributes"]["helpfulness"]["exact_accuracy"]
    assert (delta["value"], delta["n"], delta["ci"]) == (1.0, 4, [1.0, 1.0])
    assert f"Δ {perfect} - {tiny_model_dir}" in out.splitlines()[1]


def test_evaluating_an_output_directory_adds_the_judge_evaluation_to_its_model_card(capsys, tmp_path, judge_dir):
    folder = tmp_path / "judge"
    shutil.copytree(judge_dir, folder)
    data = write_pairwise(tmp_path / "pairwise.parquet", STRENGTHS[:2])

    argv = ["evaluate", folder, "--data", data, "--output", tmp_path / "eval", "--max-new-tokens", 2]
    status, _, err = run(capsys, *argv)

    assert status == 0, err
    card = (folder / "README.md").read_text()
    section = card[card.index("## Judge evaluation") :]
    assert f"on 4 rows of `{data}` (pairwise verdicts, openjudge format)" in section
    assert "| parse_failure_rate | 1.000 | [1.000, 1.000] | 4 |" in section
    assert "![Judge evaluation](judge_evaluation.png)" in section
    table = [line for line in section.splitlines() if line.startswith("|")]
    assert len(table) > 3 and {line.count("|") for line in table} == {5}  # metric, value, interval, n: no stray "|"
    assert any(line.startswith("| accuracy, strength ±") for line in table)
    assert json.loads((folder / CARD_METRICS_NAME).read_text())["metrics"]["accuracy"]["value"] == 0.0


def fails(capsys, tmp_path, *argv):
    """(exit status, stderr) of a command that must fail before writing anything."""
    status, out, err = run(capsys, *argv, "--output", tmp_path / "eval")
    assert out == "" and not (tmp_path / "eval").exists()
    return status, err


def test_a_model_without_a_chat_template_is_one_line(capsys, tmp_path, tiny_model_dir, pairwise_file):
    model = tmp_path / "plain"
    shutil.copytree(tiny_model_dir, model)
    (model / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((model / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (model / "tokenizer_config.json").write_text(json.dumps(config))

    status, err = fails(capsys, tmp_path, "evaluate", model, "--data", pairwise_file)

    assert status == 1
    assert err == (
        f"judge-sft evaluate: error: {model}: has no chat template, so prompts cannot be rendered as training "
        "rendered them; evaluate a judge-sft output or checkpoint directory (it saves chat_template.jinja) or a model "
        "that ships one\n"
    )


def test_data_without_label_columns_is_not_a_judge_file(capsys, tmp_path):
    plain = write_messages(
        tmp_path / "val.parquet", [[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]]
    )
    source = write_completions(tmp_path / "p.jsonl", {0: "<better>A</better>"})

    status, err = fails(capsys, tmp_path, "evaluate", "--data", plain, "--predictions", source)

    assert status == 1
    assert err == (
        f"judge-sft evaluate: error: {plain}: not a judge file (no judge_sft.task pointwise or pairwise in its "
        "metadata); write one with `judge-sft prepare-data --task pointwise|pairwise`\n"
    )


def test_a_judge_file_missing_a_label_column_names_it(capsys, tmp_path, pairwise_file):
    table = pq.read_table(pairwise_file)
    pq.write_table(table.drop_columns(["preference_strength"]), tmp_path / "cut.parquet")
    source = write_completions(tmp_path / "p.jsonl", {0: "<better>A</better>"})

    status, err = fails(capsys, tmp_path, "evaluate", "--data", tmp_path / "cut.parquet", "--predictions", source)

    assert (status, err) == (
        1,
        f"judge-sft evaluate: error: {tmp_path / 'cut.parquet'}: no label column preference_strength: not a judge "
        "file; write one with `judge-sft prepare-data --task pointwise|pairwise`\n",
    )


@pytest.mark.parametrize(
    "line, message",
    [
        (
            '{"row": 0, "completion": "[[A]]"}\n{"row": 1, "completion": "[[B]]"\n',
            "line 2: not a JSON object (Expecting ',' delimiter: line 1 column 33 (char 32))",
        ),
        (
            '{"row": 0, "completion": "[[A]]"}\n{"row": "1", "completion": "x"}\n',
            'line 2: `row` must be a row index (an integer >= 0), got "1"',
        ),
        (
            '{"row": 0, "completion": "[[A]]"}\n{"row": 1, "completion": null}\n',
            "line 2 (row 1): `completion` must be a string, got null",
        ),
        (
            '{"row": 0, "completion": "[[A]]"}\n{"row": 12, "completion": "x"}\n',
            "line 2: row 12 is not in the data (it has 12 rows)",
        ),
        ('{"row": 0, "completion": "[[A]]"}\n{"row": 0, "completion": "x"}\n', "line 2: row 0 again (first on line 1)"),
        (
            '{"row": 0, "completion": "[[A]]"}\n',
            "no completion for row 1, 2, 3, 4, 5 and 6 more of the 12 evaluated; complete the file or pass --limit",
        ),
    ],
)
def test_a_bad_predictions_line_names_its_line_and_row(capsys, tmp_path, pairwise_file, line, message):
    source = tmp_path / "p.jsonl"
    source.write_text(line)

    status, err = fails(capsys, tmp_path, "evaluate", "--data", pairwise_file, "--predictions", source)

    assert status == 1
    assert err.startswith(f"judge-sft evaluate: error: {source}") and err.endswith(f"{message}\n")
    assert err.count("\n") == 1


def test_a_predictions_log_of_another_data_file_is_refused(capsys, tmp_path, pairwise_file):
    source = write_completions(tmp_path / "p.jsonl", {row: "[[A]]" for row in range(12)})
    output = tmp_path / "eval"
    assert run(capsys, "evaluate", "--data", pairwise_file, "--predictions", source, "--output", output)[0] == 0
    other = write_pointwise(tmp_path / "other.parquet", [{"helpfulness": rating % 5} for rating in range(12)])

    status, _, err = run(capsys, "evaluate", "--data", other, "--predictions", source, "--output", output)

    assert status == 1
    assert err == (
        f"judge-sft evaluate: error: {output / 'predictions.jsonl'} line 1: row 0 of model {source} has another prompt "
        f"than {other} row 0 (another data file?); pick another --output\n"
    )


def test_a_server_without_its_model_name_is_one_line(capsys, tmp_path, pairwise_file):
    status, err = fails(capsys, tmp_path, "evaluate", "--data", pairwise_file, "--base-url", "http://127.0.0.1:9/v1")
    assert (status, err) == (
        1,
        "judge-sft evaluate: error: --base-url and --model go together: the server, and the model name it serves\n",
    )


def test_a_hub_id_not_in_the_cache_offline_is_one_line(capsys, tmp_path, pairwise_file):
    status, err = fails(capsys, tmp_path, "evaluate", "judge-sft-tests/no-such-judge", "--data", pairwise_file)
    assert (status, err) == (
        1,
        "judge-sft evaluate: error: judge-sft-tests/no-such-judge: no such local directory, and not in the Hub cache "
        "(HF_HUB_OFFLINE is set)\n",
    )


def test_a_pairwise_file_prepare_data_wrote_is_evaluated_from_predictions(capsys, tmp_path):
    sample = REPO / "judge_sft" / "data" / "helpsteer2_preference_sample.jsonl"
    assert (
        run(capsys, "prepare-data", "--task", "pairwise", "--input", sample, "--output-dir", tmp_path / "judge")[0] == 0
    )
    val = tmp_path / "judge" / "val.parquet"
    rows = pq.read_table(val).to_pylist()
    # the reference verdicts prepare-data wrote, read back by evaluate's parser; row 0's letter swapped
    completions = {row: record["messages"][-1]["content"] for row, record in enumerate(rows)}
    swapped = {"A": "B", "B": "A"}[rows[0]["label"]]
    completions[0] = completions[0].replace(f"<better>{rows[0]['label']}</better>", f"<better>{swapped}</better>")
    source = write_completions(tmp_path / "references.jsonl", completions)
    output = tmp_path / "eval"

    status, _, err = run(capsys, "evaluate", "--data", val, "--predictions", source, "--output", output)

    assert status == 0, err
    metrics = json.loads((output / "metrics.json").read_text())["metrics"][str(source)]
    assert metrics["parse_failure_rate"]["value"] == 0.0
    assert (metrics["accuracy"]["value"], metrics["accuracy"]["n"]) == (pytest.approx(1 - 1 / len(rows)), len(rows))
    pairs = len({record["pair_id"] for record in rows})
    assert metrics["both_orders_correct"] == {
        **metrics["both_orders_correct"],
        "value": pytest.approx(1 - 1 / pairs),
        "n": pairs,
    }
