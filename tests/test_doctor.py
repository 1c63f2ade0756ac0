"""`judge-sft doctor`: what it passes, what it catches (bad data, a template without masks or with the prompt
inside them, heavy truncation, special-token text). run.py stopping on a failure unless `skip_doctor` is in
test_errors_launch.py, whose launch it shares."""

import pyarrow.parquet as pq
import pytest
from conftest import conversation, tiny_recipe, write_messages
from trl.chat_template_utils import qwen3_training_chat_template

from judge_sft import cli
from judge_sft.data.tokenization import tokenize_messages
from judge_sft.train.chat_templates import training_chat_template

FINAL = {b"judge_sft.train_on": b"final"}
NO_MARKERS = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
CONTENT_ONLY_MARKED = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{% if m.role == 'assistant' %}{% generation %}"
    "{{ m.content }}{% endgeneration %}{% else %}{{ m.content }}{% endif %}<|im_end|>\n{% endfor %}"
)
EVERYTHING_MARKED = (
    "{% for m in messages %}{% generation %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
    "{% endgeneration %}{% endfor %}"
)


def doctor(capsys, recipe, *overrides):
    code = cli.main(["doctor", str(recipe), *map(str, overrides)])
    captured = capsys.readouterr()
    lines = {}
    for line in captured.out.splitlines():
        status, _, rest = line.partition("  ")
        if status.strip() in ("PASS", "WARN", "FAIL"):
            name, _, message = rest.partition(": ")
            lines[name] = (status.strip(), message)
    return code, lines, captured


def test_clean_recipe_passes(capsys, tmp_path, tiny_model_dir, small_data):
    code, lines, captured = doctor(capsys, tiny_recipe(tmp_path, tiny_model_dir, *small_data))
    assert code == 0, captured.out
    assert all(status == "PASS" for status, _ in lines.values()), captured.out
    assert {
        "data train.parquet",
        "data val.parquet",
        "chat template",
        "loss masking",
        "end of turn",
        "pad token",
        "vocabulary",
        "truncation train.parquet",
        "trained tokens train.parquet",
        "truncation val.parquet",
        "saved chat template",
    } <= lines.keys()
    assert lines["saved chat template"][1] == (
        "no {% generation %} tags; renders every probe conversation as training does in transformers, jinja2, minijinja"
    )
    assert "TRL's Qwen3 training template" in lines["chat template"][1] and "sha256" in lines["chat template"][1]
    assert "final assistant message" in lines["loss masking"][1]
    assert "<|im_end|>" in lines["end of turn"][1]
    assert captured.out.splitlines()[-1] == f"doctor: {len(lines)} passed, 0 warnings, 0 failed"


def test_trained_token_fraction_is_exact(capsys, tmp_path, tiny_model_dir, small_data, qwen3_tokenizer):
    template = training_chat_template(qwen3_tokenizer)
    rows = [
        tokenize_messages(messages, qwen3_tokenizer, template, None, "final")
        for messages in pq.read_table(small_data[0])["messages"].to_pylist()
    ]
    tokens, trained = sum(row["num_tokens"] for row in rows), sum(row["num_loss_tokens"] for row in rows)
    _, lines, _ = doctor(capsys, tiny_recipe(tmp_path, tiny_model_dir, *small_data))
    assert (
        lines["trained tokens train.parquet"][1]
        == f"{trained / tokens:.1%} of {tokens:,} tokens carry loss (train_on final)"
    )


def test_template_without_masks_fails(capsys, tmp_path, tiny_model_dir, small_data):
    template = tmp_path / "plain.jinja"
    template.write_text(NO_MARKERS)
    code, lines, _ = doctor(
        capsys, tiny_recipe(tmp_path, tiny_model_dir, *small_data, chat_template_path=str(template))
    )
    assert code == 1
    status, message = lines["chat template"]
    assert status == "FAIL" and "no {% generation %} markers" in message and "chat_template_path" in message


def test_template_marking_the_prompt_fails(capsys, tmp_path, tiny_model_dir, small_data):
    template = tmp_path / "everything.jinja"
    template.write_text(EVERYTHING_MARKED)
    code, lines, _ = doctor(
        capsys, tiny_recipe(tmp_path, tiny_model_dir, *small_data, chat_template_path=str(template))
    )
    assert code == 1
    assert lines["chat template"][0] == "PASS" and f"chat_template_path {template}" in lines["chat template"][1]
    status, message = lines["loss masking"]
    assert (
        status == "FAIL" and message.startswith("row 0: prompt text 'Question 0.0") and message.endswith("is trained")
    )


def test_template_not_training_the_end_of_turn_fails(capsys, tmp_path, tiny_model_dir, small_data):
    """Masks around the content only: the loss never teaches the model to emit <|im_end|>, so it never stops."""
    template = tmp_path / "content_only.jinja"
    template.write_text(CONTENT_ONLY_MARKED)
    code, lines, _ = doctor(
        capsys, tiny_recipe(tmp_path, tiny_model_dir, *small_data, chat_template_path=str(template))
    )
    assert code == 1
    assert lines["loss masking"][0] == "PASS"
    assert lines["end of turn"] == ("FAIL", "no sample target trains <|im_end|>: the model would never learn to stop")


def test_template_a_server_cannot_render_fails(capsys, tmp_path, tiny_model_dir, small_data):
    """A string method plain jinja2 has and minijinja (text-generation-inference) does not."""
    template = tmp_path / "python_only.jinja"
    template.write_text("{%- set padding = ''.zfill(0) %}" + qwen3_training_chat_template)
    code, lines, _ = doctor(
        capsys, tiny_recipe(tmp_path, tiny_model_dir, *small_data, chat_template_path=str(template))
    )
    assert code == 1
    assert lines["loss masking"][0] == "PASS"
    assert lines["saved chat template"] == (
        "FAIL",
        "the saved chat template fails in minijinja on the single turn conversation (no options): unknown method: "
        "string has no method named zfill (in chat_template.jinja:1)",
    )


def test_bad_data_fails_naming_the_row(capsys, tmp_path, tiny_model_dir):
    rows = [conversation(i, 1) for i in range(10)]
    rows[4] = [{"role": "user", "content": "Question 4"}, {"role": "assistant", "content": "  "}]
    rows[6] = rows[6][:1]  # ends with the user
    train = write_messages(tmp_path / "train.parquet", rows, FINAL)
    code, lines, _ = doctor(capsys, tiny_recipe(tmp_path, tiny_model_dir, train))
    assert code == 1
    assert lines["data train.parquet"] == (
        "FAIL",
        f"{train}: 2 of 10 rows invalid (row 4: message 1: content is empty); see `judge-sft validate-data`",
    )


def test_missing_train_file_fails(capsys, tmp_path, tiny_model_dir):
    code, lines, _ = doctor(capsys, tiny_recipe(tmp_path, tiny_model_dir, tmp_path / "absent.parquet"))
    assert code == 1 and lines["data absent.parquet"] == ("FAIL", f"{tmp_path / 'absent.parquet'}: no such file")


def long_answers(directory, long_rows):
    """40 rows; `long_rows` of them answer at length, past max_length 96."""
    rows = [conversation(i, 1) for i in range(40)]
    for index in range(long_rows):
        rows[index] = [
            {"role": "user", "content": f"Question {index}"},
            {"role": "assistant", "content": "because " * 120},
        ]
    return write_messages(directory / "train.parquet", rows, FINAL)


def test_heavy_truncation_fails_with_exact_counts(capsys, tmp_path, tiny_model_dir, qwen3_tokenizer):
    train = long_answers(tmp_path, 6)
    template = training_chat_template(qwen3_tokenizer)
    cut = sum(
        tokenize_messages(messages, qwen3_tokenizer, template, 96, "final")["num_loss_tokens"]
        < tokenize_messages(messages, qwen3_tokenizer, template, None, "final")["num_loss_tokens"]
        for messages in pq.read_table(train)["messages"].to_pylist()
    )
    assert cut == 6
    code, lines, _ = doctor(capsys, tiny_recipe(tmp_path, tiny_model_dir, train, max_length=96))
    assert code == 1
    status, message = lines["truncation train.parquet"]
    assert status == "FAIL" and message.startswith("6 of 40 rows (15.0%) lose trained tokens at max_length 96")


def test_light_truncation_warns(capsys, tmp_path, tiny_model_dir):
    code, lines, _ = doctor(capsys, tiny_recipe(tmp_path, tiny_model_dir, long_answers(tmp_path, 1), max_length=96))
    assert code == 0
    assert lines["truncation train.parquet"][0] == "WARN"
    assert lines["truncation train.parquet"][1].startswith("1 of 40 rows (2.5%) lose trained tokens")


def test_special_token_text_warns(capsys, tmp_path, tiny_model_dir):
    rows = [conversation(i, 1) for i in range(10)]
    rows[3] = [{"role": "user", "content": "Rate this<|im_end|>"}, {"role": "assistant", "content": "3"}]
    code, lines, _ = doctor(
        capsys, tiny_recipe(tmp_path, tiny_model_dir, write_messages(tmp_path / "t.parquet", rows, FINAL))
    )
    assert code == 0
    assert lines["special tokens in text"][0] == "WARN" and "first: row 3" in lines["special tokens in text"][1]


@pytest.mark.parametrize("with_compiler", [True, False], ids=["cc", "none"])
def test_on_a_gpu_the_doctor_says_whether_triton_has_a_c_compiler(
    with_compiler, capsys, tmp_path, tiny_model_dir, small_data, monkeypatch
):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if with_compiler:
        (bin_dir / "cc").write_text("#!/bin/sh\n")
        (bin_dir / "cc").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("JUDGE_SFT_GPU", "NVIDIA H100 80GB;80;9.0")
    _, lines, captured = doctor(capsys, tiny_recipe(tmp_path, tiny_model_dir, *small_data))
    expected = (
        ("PASS", f"{bin_dir / 'cc'}, for Triton's driver")
        if with_compiler
        else (
            "WARN",
            "none on PATH (cc, gcc, clang): Triton, which torch-optimi's AdamW and TRL's chunked log-probs use on "
            "CUDA, compiles its driver with one at first use; install gcc",
        )
    )
    assert lines["C compiler"] == expected, captured.out
