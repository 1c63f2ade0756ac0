"""Stopping a run on request: SIGTERM, SIGUSR1, SIGINT (Ctrl-C) or the `stop_after` deadline -> every rank finishes the
optimizer step it is in, a checkpoint of that step is saved, and run.py exits with REQUEUE_STATUS
(docs/training.md#stop-requeue-deadline).
"""

import logging
import re
import signal
import time

import torch
from transformers import TrainerCallback

from judge_sft.errors import JudgeSFTError

logger = logging.getLogger("judge_sft")

# sysexits.h EX_TEMPFAIL, "temporary failure, try again": recipes/launch.slurm requeues the job on it.
REQUEUE_STATUS = 75
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)
DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


def parse_duration(value):
    """`3h50m`, `90m`, `45s`, `1h30m15s`, or a number of seconds -> seconds."""
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    match = DURATION.fullmatch(text)
    if not text or not match:
        raise JudgeSFTError(f"recipe: stop_after `{value}` is not a duration such as 3h50m, 90m or 45s")
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return 3600 * hours + 60 * minutes + seconds


def agreed(flags, device):
    """Each flag raised on any rank, raised on all (a MAX all-reduce): one rank receiving a signal stops them all."""
    flags = torch.tensor(flags, dtype=torch.int32, device=device)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
    return [bool(flag) for flag in flags.tolist()]


class StopOnRequest(TrainerCallback):
    """Installs the signal handlers when made (run.py makes it first thing); acts at the end of each optimizer step."""

    def __init__(self, stop_after=None):
        self.stop_after = stop_after
        self.deadline = None if stop_after is None else time.monotonic() + parse_duration(stop_after)
        self.received = None  # the signal, once one has arrived in this process
        self.stopped_at = None  # the global step saved and stopped at
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._note)

    def _note(self, signum, frame):
        # Only a note: a handler runs between two bytecodes of the training loop, which must first finish its step.
        self.received = signum

    def on_step_end(self, args, state, control, **kwargs):
        past_deadline = self.deadline is not None and time.monotonic() >= self.deadline
        by_signal, by_deadline = agreed([self.received is not None, past_deadline], args.device)
        if not (by_signal or by_deadline):
            return
        if self.received is not None:
            logger.warning(f"rank {args.process_index}: {signal.Signals(self.received).name} received")
        reason = "a stop signal reached a training process" if by_signal else f"stop_after {self.stop_after} reached"
        logger.info(
            f"{reason}: saving checkpoint-{state.global_step}, then exiting with status {REQUEUE_STATUS}; "
            "relaunch the same command to resume"
        )
        self.stopped_at = state.global_step
        control.should_save = True
        control.should_training_stop = True
        args.push_to_hub = False  # no upload of this checkpoint: it could outlast the time left before the hard kill
