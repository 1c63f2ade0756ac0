"""OUTPUT/evaluation.png: what a person would rather look at than metrics.json — each judge's confusion matrix per
attribute (pointwise), or its accuracy by |preference strength| with intervals next to its confusion matrix
(pairwise)."""

from pathlib import Path

PLOT_NAME = "evaluation.png"


def plot_evaluation(document, output_dir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = document["models"]
    panels = document["attributes"] if document["task"] == "pointwise" else ["by strength", "confusion"]
    figure, axes = plt.subplots(len(models), len(panels), figsize=(4.2 * len(panels), 4.4 * len(models)), squeeze=False)
    for row, model in enumerate(models):
        metrics = document["metrics"][model]
        if document["task"] == "pointwise":
            for column, attribute in enumerate(panels):
                draw_confusion(axes[row][column], metrics["confusion"][attribute], f"{model}\n{attribute}")
        else:
            draw_strengths(axes[row][0], metrics, model)
            draw_confusion(axes[row][1], metrics["confusion"], f"{model}\nverdicts")
    figure.tight_layout()
    path = Path(output_dir) / PLOT_NAME
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def draw_confusion(axis, matrix, title):
    counts = matrix["counts"]
    axis.imshow(counts, cmap="Blues")
    axis.set_xticks(range(len(matrix["predicted"])), [str(name) for name in matrix["predicted"]], rotation=30)
    axis.set_yticks(range(len(matrix["labels"])), [str(name) for name in matrix["labels"]])
    axis.set_xlabel("judge's verdict")
    axis.set_ylabel("human label")
    axis.set_title(title, fontsize=9)
    dark = max(max(line) for line in counts) / 2
    for row, line in enumerate(counts):
        for column, count in enumerate(line):
            color = "white" if count > dark else "black"
            axis.text(column, row, str(count), ha="center", va="center", fontsize=8, color=color)


def draw_strengths(axis, metrics, model):
    """Accuracy per |preference strength| with its interval (a bar without whisker: no interval)."""
    strengths = list(metrics["accuracy_by_strength"])
    entries = [metrics["accuracy_by_strength"][strength] for strength in strengths]
    values = [entry["value"] or 0.0 for entry in entries]
    low = [value - entry["ci"][0] if entry["ci"] else 0.0 for value, entry in zip(values, entries)]
    high = [entry["ci"][1] - value if entry["ci"] else 0.0 for value, entry in zip(values, entries)]
    axis.bar(strengths, values, yerr=[low, high], capsize=4, color="tab:blue")
    for index, entry in enumerate(entries):
        axis.text(index, 0.02, f"n={entry['n']}", ha="center", fontsize=8, color="white")
    axis.axhline(0.5, color="grey", linewidth=0.8, linestyle="--")
    axis.set_ylim(0, 1)
    axis.set_xlabel("|preference strength|")
    axis.set_ylabel("accuracy")
    axis.set_title(f"{model}\naccuracy by strength", fontsize=9)
