"""OUTPUT/metrics.json (its keys: docs/evaluation.md#metricsjson) and the printed table: every judge's metrics on the
same rows, side by side, and each later judge's difference from the first with its paired-bootstrap interval."""

import json
from pathlib import Path

from judge_sft.evaluation.card_section import flat_results
from judge_sft.evaluation.metrics import (
    CONFIDENCE,
    RESAMPLES,
    SEED,
    confusion,
    difference,
    estimate,
    map_tree,
    statistics,
)
from judge_sft.files import write_atomically

METRICS_NAME = "metrics.json"


def metrics_document(data, verdicts, resamples=RESAMPLES):
    """metrics.json's content; `verdicts`: {model: each evaluated row's parsed verdict (None: unparsable)}, the first
    model the one the others are compared with."""
    models = list(verdicts)
    statistic_trees = {model: statistics(data, verdicts[model]) for model in models}
    first = models[0]
    return {
        "data": str(data.path),
        "task": data.task,
        "format": data.format_name,
        "attributes": list(data.attributes),
        "rows": len(data),
        "interval": {"method": "percentile bootstrap", "confidence": CONFIDENCE, "resamples": resamples, "seed": SEED},
        "models": models,
        "metrics": {
            model: {
                **map_tree(lambda leaf: estimate(leaf, resamples), statistic_trees[model]),
                "confusion": confusion(data, verdicts[model]),
            }
            for model in models
        },
        "differences": {
            f"{model} - {first}": map_tree(
                lambda base, other: difference(base, other, resamples), statistic_trees[first], statistic_trees[model]
            )
            for model in models[1:]
        },
    }


def write_metrics(output_dir, document):
    return write_atomically(Path(output_dir) / METRICS_NAME, json.dumps(document, indent=2) + "\n")


def cell(entry):
    if entry["value"] is None:
        return f"undefined (n={entry['n']})"
    interval = entry["ci"]
    shown = f"[{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "[no interval]"
    return f"{entry['value']:.3f} {shown} n={entry['n']}"


def metrics_table(document):
    """The printed table: one line per metric, a column per judge, then a column per difference."""
    columns = [document["metrics"][model] for model in document["models"]]
    columns += list(document["differences"].values())
    headers = ["metric", *document["models"], *(f"Δ {name}" for name in document["differences"])]
    names = [name for name, _ in flat_results(columns[0])]
    cells = [dict(flat_results(column)) for column in columns]
    lines = [headers] + [[name, *(cell(column[name]) for column in cells)] for name in names]
    widths = [max(len(line[index]) for line in lines) for index in range(len(headers))]
    text = ["  ".join(value.ljust(width) for value, width in zip(line, widths)).rstrip() for line in lines]
    interval = document["interval"]
    caption = (
        f"{document['task']} judge on {document['rows']} rows of {document['data']} ({document['format']} format); "
        f"value [{interval['confidence']:.0%} {interval['method']} interval] n"
    )
    return "\n".join([caption, *text])
