"""OUTPUT_DIR/samples/step-NNNNNN.jsonl: the greedy completions of the sample val rows at one evaluation, one JSON line
per row (`step`, `row`, `prompt` messages, `reference` final assistant message, `completion`). Written by the trainer
(train/samples.py), read by `judge-sft samples` and the model card; no torch here."""

import json
import re
from pathlib import Path

from judge_sft.errors import JudgeSFTError
from judge_sft.files import write_atomically

SAMPLES_DIR = "samples"
STEP_FILE = re.compile(r"^step-(\d+)\.jsonl$")
CELL_WIDTH = 160  # characters of prompt, reference and completion in the card's table


def samples_path(output_dir, step):
    return Path(output_dir) / SAMPLES_DIR / f"step-{step:06d}.jsonl"


def write_samples(output_dir, step, records):
    text = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    return write_atomically(samples_path(output_dir, step), text)


def sample_steps(output_dir):
    """The steps that have a samples file, in order."""
    folder = Path(output_dir) / SAMPLES_DIR
    names = [path.name for path in folder.iterdir()] if folder.is_dir() else []
    return sorted(int(match.group(1)) for name in names if (match := STEP_FILE.match(name)))


def read_samples(output_dir, step=None):
    """(step, records) of the samples at `step`, or at the latest step when None."""
    steps = sample_steps(output_dir)
    if not steps:
        raise JudgeSFTError(
            f"{output_dir}: no {SAMPLES_DIR}/step-*.jsonl (the run had no val_file, eval_samples 0, or no evaluation yet)"
        )
    if step is None:
        step = steps[-1]
    elif step not in steps:
        raise JudgeSFTError(
            f"{output_dir}: no samples at step {step}; steps with samples: {', '.join(map(str, steps))}"
        )
    path = samples_path(output_dir, step)
    try:
        return step, [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError) as error:
        raise JudgeSFTError(f"{path}: not a samples file ({str(error).splitlines()[0]})")


def prompt_text(messages):
    """A prompt's messages as one text, each message after its role."""
    return "\n\n".join(f"{message['role']}: {message['content']}" for message in messages)


def shorten(text, width):
    """`text` on one line (line breaks shown as ↵), at most `width` characters: its start and end around an ellipsis
    (a judge's verdict, like the question of a prompt, is often at the end)."""
    text = " ".join(text.replace("\n", "↵").split())
    if len(text) <= width:
        return text
    head = (width - 3) // 2
    return f"{text[:head]} … {text[len(text) - (width - 3 - head) :]}"


def markdown_table(records, width=CELL_WIDTH):
    """The samples as a Markdown table, each cell shortened to `width` characters (the model card, tensorboard)."""

    def cell(text):
        return shorten(text, width).replace("\\", "\\\\").replace("|", "\\|") or " "

    lines = ["| row | prompt | reference | completion |", "| --- | --- | --- | --- |"]
    for record in records:
        prompt = " ".join(f"{message['role']}: {message['content']}" for message in record["prompt"])
        texts = (prompt, record["reference"], record["completion"])
        lines.append(f"| {record['row']} | " + " | ".join(cell(text) for text in texts) + " |")
    return lines
