"""Which checkpoint a relaunch resumes from (and `judge-sft plot` reads while a run is going)."""

import os
import re

# transformers' names (transformers.trainer.TRAINER_STATE_NAME, trainer_utils.PREFIX_CHECKPOINT_DIR), spelt out so
# that the plot and push commands need not import transformers (seconds) to find a checkpoint.
TRAINER_STATE_NAME = "trainer_state.json"
CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")


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
