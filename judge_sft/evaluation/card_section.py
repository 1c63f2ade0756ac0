"""The model card's "Judge evaluation" section: evaluating an output or checkpoint directory leaves its metrics in
FOLDER/judge_evaluation.json (and the plot in judge_evaluation.png), pushed with it, and the card shows them.
No numpy or scipy here: the trainer writes the card at every save."""

import json
import shutil
from pathlib import Path

from judge_sft.files import write_atomically

CARD_METRICS_NAME = "judge_evaluation.json"
CARD_PLOT_NAME = "judge_evaluation.png"


def is_result(node):
    return isinstance(node, dict) and "value" in node and "n" in node


def flat_results(tree, prefix=()):
    """[(name, result)] of an estimates tree, in its order; the confusion matrices left out."""
    rows = []
    for key, node in tree.items():
        if key == "confusion":
            continue
        if is_result(node):
            rows.append((metric_name((*prefix, key)), node))
        else:
            rows += flat_results(node, (*prefix, key))
    return rows


def metric_name(path):
    """("attributes", "helpfulness", "mae") -> "helpfulness mae"; ("accuracy_by_strength", "2") -> "accuracy, strength ±2"
    (no "|": the name is a cell of the card's Markdown table)."""
    if path[0] == "attributes":
        return " ".join(path[1:])
    if path[0] == "accuracy_by_strength":
        return f"accuracy, strength ±{path[1]}"
    return " ".join(path)


def save_for_card(folder, document, model, plot_path):
    """FOLDER/judge_evaluation.json: `model`'s metrics from metrics.json with what they were measured on; the plot."""
    keys = ("data", "task", "format", "attributes", "rows", "interval")
    record = {**{key: document[key] for key in keys}, "metrics": document["metrics"][model]}
    write_atomically(Path(folder) / CARD_METRICS_NAME, json.dumps(record, indent=2) + "\n")
    shutil.copyfile(plot_path, Path(folder) / CARD_PLOT_NAME)


def evaluation_section(folder):
    """The card's lines; nothing when the folder was never evaluated."""
    try:
        record = json.loads((Path(folder) / CARD_METRICS_NAME).read_text())
    except (OSError, ValueError):
        return []
    interval = record["interval"]
    lines = [
        "## Judge evaluation",
        "",
        f"`judge-sft evaluate` on {record['rows']} rows of `{record['data']}` ({record['task']} verdicts, "
        f"{record['format']} format), against the human labels. Intervals: {interval['confidence']:.0%} "
        f"{interval['method']}, {interval['resamples']} resamples, seed {interval['seed']}.",
        "",
        f"| metric | value | {interval['confidence']:.0%} interval | n |",
        "| --- | --- | --- | --- |",
    ]
    for name, entry in flat_results(record["metrics"]):
        value = "undefined" if entry["value"] is None else f"{entry['value']:.3f}"
        shown = f"[{entry['ci'][0]:.3f}, {entry['ci'][1]:.3f}]" if entry["ci"] else entry.get("reason", "none")
        lines.append(f"| {name} | {value} | {shown} | {entry['n']} |")
    if (Path(folder) / CARD_PLOT_NAME).is_file():
        lines += ["", f"![Judge evaluation]({CARD_PLOT_NAME})"]
    return [*lines, ""]
