"""Which checkpoint a relaunch resumes from."""

import os
import re

from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

CHECKPOINT_DIR = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


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
    return os.path.join(output_dir, f"{PREFIX_CHECKPOINT_DIR}-{max(steps)}") if steps else None
