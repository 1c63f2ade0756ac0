"""`judge-sft plot`: the loss curve PNG from a hand-written trainer_state.json (a real run's: test_recipe_command.py)."""

import json
import math

import matplotlib.image
import pytest

from judge_sft.cli import main
from judge_sft.train.loss_curve import PLOT_NAME, curves, find_trainer_state, plot_losses

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def log_history(steps=40, eval_every=10):
    """What JudgeSFTTrainer logs: loss / lr / grad_norm per step, eval_loss every eval_every, a train summary last."""
    history = []
    for step in range(1, steps + 1):
        lr = 1e-5 * min(step / 4, 0.5 * (1 + math.cos(math.pi * step / steps)))
        history.append(
            {"step": step, "epoch": step / steps, "loss": 2.0 * math.exp(-step / 15) + 0.5, "lr": lr, "grad_norm": 1.0}
        )
        if step % eval_every == 0:
            history.append({"step": step, "epoch": step / steps, "eval_loss": 2.1 * math.exp(-step / 18) + 0.55})
    history.append({"step": steps, "train_loss": 1.0, "train_runtime": 12.0})
    return history


def write_state(folder, history):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": history[-1]["step"], "log_history": history}))
    return folder


def run_plot(capsys, *args):
    status = main(["plot", *map(str, args)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_curves_are_the_logged_metrics_under_the_cookbook_names():
    history = log_history(steps=20, eval_every=10)
    series = curves(history)
    assert [step for step, _ in series["train/loss"]] == list(range(1, 21))  # the train_loss summary is not a point
    assert series["val/loss"] == [(10, history[10]["eval_loss"]), (20, history[21]["eval_loss"])]
    assert series["train/lr"][:2] == [(1, pytest.approx(2.5e-6)), (2, pytest.approx(5e-6))]
    stock = [{"step": 1, "loss": 1.0, "learning_rate": 3e-5}]  # transformers' own name, from the stock Trainer
    assert curves(stock)["train/lr"] == [(1, 3e-5)]


def test_plot_writes_a_png_into_the_output_dir(tmp_path, capsys):
    run = write_state(tmp_path / "run", log_history())
    status, out, err = run_plot(capsys, run)
    assert (status, err) == (0, "")
    png = run / PLOT_NAME
    assert out == f"loss curve written to {png}\n"
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    assert matplotlib.image.imread(png).shape[:2] == (495, 880)  # 8 x 4.5 inches at 110 dpi, decodable


def test_plot_losses_takes_a_png_path_and_returns_it(tmp_path):
    run = write_state(tmp_path / "run", log_history())
    png = plot_losses(run, tmp_path / "figures" / "curve.png")
    assert png == tmp_path / "figures" / "curve.png"
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    assert not (run / PLOT_NAME).exists()
    assert [path.name for path in png.parent.iterdir()] == ["curve.png"]  # no temporary file left beside it


def test_without_a_top_level_state_the_newest_complete_checkpoint_is_read(tmp_path):
    run = tmp_path / "run"
    write_state(run / "checkpoint-2", log_history(steps=2))
    write_state(run / "checkpoint-10", log_history(steps=10))
    (run / "checkpoint-12").mkdir()  # a save cut short: no trainer_state.json yet
    assert find_trainer_state(run) == run / "checkpoint-10" / "trainer_state.json"
    assert plot_losses(run).read_bytes()[:8] == PNG_SIGNATURE


@pytest.mark.parametrize(
    "state, message",
    [
        (None, "{run}: no trainer_state.json in it nor in a checkpoint-* folder"),
        ("", "{run}/trainer_state.json: empty file"),
        ("{not json", "{run}/trainer_state.json: not a trainer state (invalid JSON or not an object)"),
        ('{"global_step": 0}', "{run}/trainer_state.json: not a trainer state (no log_history list)"),
        (
            '{"log_history": [{"step": 1, "lr": 1e-5}]}',
            "{run}/trainer_state.json: log_history holds no `loss` or `eval_loss` yet",
        ),
    ],
)
def test_a_missing_or_unusable_state_is_a_one_line_error(tmp_path, capsys, state, message):
    run = tmp_path / "run"
    run.mkdir()
    if state is not None:
        (run / "trainer_state.json").write_text(state)
    status, out, err = run_plot(capsys, run)
    assert (status, out, err) == (1, "", f"judge-sft plot: error: {message.format(run=run)}\n")
    assert not (run / PLOT_NAME).exists()


def test_a_missing_output_dir_is_a_one_line_error(tmp_path, capsys):
    assert run_plot(capsys, tmp_path / "nope") == (
        1,
        "",
        f"judge-sft plot: error: {tmp_path / 'nope'}: no such directory\n",
    )
