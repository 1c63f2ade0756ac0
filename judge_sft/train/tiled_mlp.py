"""ALST tiled MLP (`tiled_mlp: true`): long-context activation memory of the decoder MLPs, same loss and gradients."""

import functools
import math

import torch
import torch.distributed as dist
from deepspeed.runtime.sequence_parallel.ulysses_sp import TiledMLP

from judge_sft.errors import JudgeSFTError


def tile_mlp(model):
    """DeepSpeed's TiledMLP on every decoder MLP: it runs over sequence tiles of about hidden_size tokens and recomputes
    them in backward, so the [tokens, intermediate_size] activations never exist whole. Same loss and gradients."""
    tiled = 0
    for module in model.modules():
        if type(module).__name__.endswith("MLP") and hasattr(module, "down_proj"):
            module.forward = functools.partial(_tiled_mlp_forward, module, type(module).forward)
            tiled += 1
    if not tiled:
        raise JudgeSFTError(f"tiled_mlp: {type(model).__name__} has no *MLP module with a down_proj to tile")
    return tiled


def _tiled_mlp_forward(module, stock_forward, hidden_states):
    tiles = torch.tensor(math.ceil(hidden_states.shape[-2] / hidden_states.shape[-1]), device=hidden_states.device)
    if dist.is_initialized():  # under ZeRO-3 every tile gathers the weights: all ranks must run as many
        dist.all_reduce(tiles, op=dist.ReduceOp.MAX)
    return TiledMLP.apply(stock_forward, module, hidden_states, int(tiles), list(module.parameters()))
