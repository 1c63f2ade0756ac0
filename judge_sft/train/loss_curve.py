"""The loss curve of a run: train and val loss against step, lr on a second axis, as a PNG (`judge-sft plot`, and
the model card). Read from OUTPUT_DIR/trainer_state.json, or the newest complete checkpoint's while a run is going."""

import io
import json
from pathlib import Path

from judge_sft.errors import JudgeSFTError
from judge_sft.files import write_atomically
from judge_sft.train.checkpoints import TRAINER_STATE_NAME, last_complete_checkpoint

PLOT_NAME = "loss_curve.png"
MARKERS_UP_TO = 60  # points per series; beyond that markers only clutter the line
# eval_judge's metrics (evaluation/during_training.py), drawn in a companion panel under the losses when logged
JUDGE_METRICS = {"accuracy": "tab:green", "parse_rate": "tab:purple", "mae": "tab:red", "spearman": "tab:brown"}


def find_trainer_state(output_dir):
    output_dir = Path(output_dir)
    if (output_dir / TRAINER_STATE_NAME).is_file():
        return output_dir / TRAINER_STATE_NAME
    if output_dir.is_file():
        raise JudgeSFTError(f"{output_dir}: is a file, expected a run's output_dir or one of its checkpoint-* folders")
    if not output_dir.is_dir():
        raise JudgeSFTError(f"{output_dir}: no such directory")
    checkpoint = last_complete_checkpoint(output_dir)
    if checkpoint is None:
        raise JudgeSFTError(f"{output_dir}: no {TRAINER_STATE_NAME} in it nor in a checkpoint-* folder")
    return Path(checkpoint) / TRAINER_STATE_NAME


def read_log_history(state_path):
    try:
        text = Path(state_path).read_text()
    except OSError as error:
        raise JudgeSFTError(f"{state_path}: cannot read ({error.strerror})")
    if not text.strip():
        raise JudgeSFTError(f"{state_path}: empty file")
    try:
        history = json.loads(text).get("log_history")
    except (ValueError, AttributeError):
        raise JudgeSFTError(f"{state_path}: not a trainer state (invalid JSON or not an object)")
    if not isinstance(history, list):
        raise JudgeSFTError(f"{state_path}: not a trainer state (no log_history list)")
    return history


def curves(history):
    """Metric -> [(step, value), ...], under the cookbook's names."""

    def points(*keys):
        return [
            (entry["step"], next(entry[key] for key in keys if key in entry))
            for entry in history
            if "step" in entry and any(key in entry for key in keys)
        ]

    series = {"train/loss": points("loss"), "val/loss": points("eval_loss"), "train/lr": points("lr", "learning_rate")}
    for name in JUDGE_METRICS:
        series[f"val/judge_{name}"] = points(f"eval_judge_{name}")
    return series


def draw(series, title, png_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    judged = [name for name in JUDGE_METRICS if series.get(f"val/judge_{name}")]
    if judged:
        figure, (loss_axis, judge_axis) = plt.subplots(
            2, 1, figsize=(8, 7), dpi=110, layout="constrained", sharex=True, height_ratios=(3, 2)
        )
        draw_judge_metrics(judge_axis, series, judged)
    else:
        figure, loss_axis = plt.subplots(figsize=(8, 4.5), dpi=110, layout="constrained")
    lines = []
    for name, color in (("train/loss", "tab:blue"), ("val/loss", "tab:orange")):
        if series[name]:
            marker = "o" if len(series[name]) <= MARKERS_UP_TO or name == "val/loss" else None
            lines += loss_axis.plot(
                *zip(*series[name]), color=color, marker=marker, markersize=3, linewidth=1.5, label=name
            )
    loss_axis.set_xlabel("step")
    loss_axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    loss_axis.set_ylabel("loss")
    loss_axis.grid(alpha=0.3)
    if series["train/lr"]:
        lr_axis = loss_axis.twinx()
        lines += lr_axis.plot(*zip(*series["train/lr"]), color="grey", linestyle="--", linewidth=1, label="train/lr")
        lr_axis.set_ylabel("lr")
        lr_axis.ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    figure.legend(
        lines, [line.get_label() for line in lines], loc="outside lower center", ncols=len(lines), frameon=False
    )
    loss_axis.set_title(title)
    png = io.BytesIO()
    figure.savefig(png, format="png")
    plt.close(figure)
    write_atomically(png_path, png.getvalue())  # never a half-written PNG where the model card points


def draw_judge_metrics(axis, series, judged):
    for name in judged:
        axis.plot(*zip(*series[f"val/judge_{name}"]), color=JUDGE_METRICS[name], marker="o", markersize=3, label=name)
    axis.set_xlabel("step")
    axis.set_ylabel("val/judge_*")
    axis.grid(alpha=0.3)
    axis.legend(frameon=False, fontsize="small")


def plot_losses(output_dir, png_path=None):
    """Write the loss curve of the run in OUTPUT_DIR to png_path (default OUTPUT_DIR/loss_curve.png); return its path."""
    state_path = find_trainer_state(output_dir)
    series = curves(read_log_history(state_path))
    if not series["train/loss"] and not series["val/loss"]:
        raise JudgeSFTError(f"{state_path}: log_history holds no `loss` or `eval_loss` yet")
    png_path = Path(png_path) if png_path else Path(output_dir) / PLOT_NAME
    png_path.parent.mkdir(parents=True, exist_ok=True)
    draw(series, Path(output_dir).resolve().name, png_path)
    return png_path
