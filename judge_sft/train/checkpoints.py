"""Which checkpoint a relaunch resumes from (and `judge-sft plot` reads while a run is going); whether a relaunch has
anything to train, and may resume the checkpoint at all."""

import json
import os
import re

from judge_sft.train.saved_recipe import check_resumable

# transformers' names (transformers.trainer.TRAINER_STATE_NAME, trainer_utils.PREFIX_CHECKPOINT_DIR), spelt out so
# that the plot and push commands need not import transformers (seconds) to find a checkpoint.
TRAINER_STATE_NAME = "trainer_state.json"
CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")
MODEL_FILES = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors")


def last_complete_checkpoint(output_dir):
    """The newest `checkpoint-N` whose save finished, or None.

    transformers' get_last_checkpoint takes the highest-numbered folder even when a crash cut its save short. The
    Trainer writes trainer_state.json after the weights, optimizer shards, scheduler and RNG states, so its presence
    marks a complete checkpoint.
    """
    if not os.path.isdir(output_dir):
        return None
    steps = [
        int(match.group(1))
        for name in os.listdir(output_dir)
        if (match := CHECKPOINT_DIR.match(name)) and os.path.isfile(os.path.join(output_dir, name, TRAINER_STATE_NAME))
    ]
    return os.path.join(output_dir, f"checkpoint-{max(steps)}") if steps else None


def checkpoint_step(checkpoint):
    return int(CHECKPOINT_DIR.match(os.path.basename(checkpoint)).group(1))


EPOCH_TOLERANCE = 1e-6  # trainer_state's epoch is a float sum of (step + 1) / steps_in_epoch


def finished_run(output_dir, max_steps, num_train_epochs):
    """The line saying there is nothing to train, when output_dir holds the final model of a run that reached this
    recipe's end (`max_steps`, else `num_train_epochs`); None otherwise. The final model is marked by the
    trainer_state.json written beside it with the card, after the last checkpoint."""
    state_path = os.path.join(output_dir, TRAINER_STATE_NAME)
    has_model = any(os.path.isfile(os.path.join(output_dir, name)) for name in MODEL_FILES)
    if not (has_model and os.path.isfile(state_path)):
        return None
    with open(state_path) as file:
        state = json.load(file)
    step = state.get("global_step", 0)
    checkpoint = last_complete_checkpoint(output_dir)
    if checkpoint and checkpoint_step(checkpoint) > step:  # trained on since that final model
        return None
    if max_steps > 0:
        done, target = step >= max_steps, ("max_steps", max_steps)
    else:
        # the epochs reached, not the saved max_steps: a run cut short by max_steps has fewer steps than its epochs
        done = state.get("epoch", 0) >= num_train_epochs - EPOCH_TOLERANCE
        target = ("num_train_epochs", f"{num_train_epochs:g}")
    if not done:
        return None
    return (
        f"{output_dir}: the run finished at step {step} ({target[0]} {target[1]}) and its final model is saved: "
        f"nothing to train; raise {target[0]} to train on, or use another output_dir"
    )


def check_relaunch(parsed):
    """Before a launch writes anything: that the checkpoint a relaunch would resume, or the final model it would keep,
    is of this recipe (saved_recipe.check_resumable); then the `finished_run` line, or None."""
    output_dir = parsed[1].output_dir
    finished = finished_run(output_dir, parsed[1].max_steps, parsed[1].num_train_epochs)
    checkpoint = last_complete_checkpoint(output_dir)
    if checkpoint or finished:
        check_resumable(checkpoint or output_dir, parsed)
    return finished
