"""What one checkpoint writes, and how early a stop must be asked for to save it before the hard kill (`judge-sft plan`).

A checkpoint of a ZeRO-3 run (transformers' Trainer under DeepSpeed, accelerate's `zero3_save_16bit_model: true`):
- model.safetensors: the weights in the training dtype (2 bytes per parameter in bf16, 4 in fp32), gathered whole into
  rank 0's host memory and written by rank 0;
- global_stepN/*_optim_states.pt: every rank's shard of the fp32 master weights and Adam's two moments, 12 bytes per
  parameter over all ranks (8 with `master_weights: bf16_kahan`: bf16 master weights, moments and Kahan buffer; the
  *_model_states.pt beside them hold no weights under ZeRO-3);
- the tokenizer, scheduler, RNG states and trainer_state.json: megabytes, not counted.
tests/test_training.py checks the two counted parts against a real checkpoint.
"""

import math
from dataclasses import dataclass

from judge_sft.planning.memory_model import FP32, GB

OPTIMIZER_SHARD_BYTES_PER_PARAM = {"fp32": 3 * FP32, "bf16_kahan": 4 * 2}  # master weights, Adam m and v (+ Kahan)
WRITE_GB_PER_S = 1.0  # the stated default: one node's sustained write bandwidth to the checkpoint file system
STOP_MARGIN = 1.5  # the step in progress and the save can both run slower than estimated


@dataclass(frozen=True)
class CheckpointSize:
    weights_bytes: int  # model.safetensors, also rank 0's host memory while it gathers them
    optimizer_bytes: int  # the shards of all ranks
    num_nodes: int

    @property
    def total_bytes(self):
        return self.weights_bytes + self.optimizer_bytes

    @property
    def first_node_bytes(self):
        """Node 0 writes the most: its ranks' shards and the whole weights file. Nodes write side by side."""
        return self.weights_bytes + self.optimizer_bytes / self.num_nodes

    def save_seconds(self, write_gb_per_s):
        return self.first_node_bytes / (write_gb_per_s * GB)


def checkpoint_size(shape, setup):
    weight_bytes_per_param = 2 if setup.mixed_precision else FP32
    return CheckpointSize(
        weights_bytes=shape.params * weight_bytes_per_param,
        optimizer_bytes=shape.params * OPTIMIZER_SHARD_BYTES_PER_PARAM[setup.master_weights],
        num_nodes=setup.num_nodes,
    )


def stop_warning_seconds(step_seconds, save_seconds):
    """How long before the hard kill to ask for a stop (Slurm's `--signal=...@SECONDS`, torchrun's grace): the
    optimizer step in progress, then the save, with STOP_MARGIN to spare, in whole minutes."""
    return 60 * math.ceil(STOP_MARGIN * (step_seconds + save_seconds) / 60)
