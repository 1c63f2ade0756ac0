"""Per-GPU memory and compute of a ZeRO-3 run, from the model's shape and the recipe's settings. No GPU, no weights.

- Model states: the bytes per parameter DeepSpeed allocates for the recipe's `cpu_offload` and `master_weights`
  (placement.py; 16 on the GPU with bf16 mixed precision and no offload), sharded over all GPUs, plus one sub-group's
  gradients at the optimizer step and the largest layer gathered whole (bf16 params and grads, 4 bytes per
  parameter). Offloaded states are counted in host memory, x 1.5 as DeepSpeed's estimator allows for pinned buffers.
- Activations count the tensors autograd saves for backward in a Llama/Qwen-style dense decoder layer with flash
  attention (tests/test_plan.py checks the count against autograd's own saved tensors), at micro batch x
  max_length / sp_size tokens per rank.
- The loss is TRL's tiled log-probabilities (`SFTTrainer` calls the model with `fused_lm_head=True`): never the full
  logits, but the LM head's fp32 gradient and one logits tile.

GB is 2**30 bytes, as DeepSpeed's estimator prints it.
"""

import math
from dataclasses import dataclass

import numpy as np
from trl.kernels.chunked_logprob import TOKEN_CHUNK_SIZE
from trl.trainer.utils import _CHUNKED_LOGPROB_CHUNK_SIZE as VOCAB_CHUNK_SIZE

from judge_sft.planning.placement import FP32, SUB_GROUP_SIZE, placement

GB = 2**30
# DeepSpeed's `additional_buffer_factor`: pinned host buffers on top of the offloaded states.
HOST_BUFFER_FACTOR = 1.5
# Kept free for what no formula here counts: the CUDA context, NCCL buffers, allocator fragmentation and the
# transient activation gradients of the layer in backward.
HEADROOM = 0.10


@dataclass(frozen=True)
class ModelShape:
    params: int
    largest_layer_params: int
    largest_layer: str
    input_embedding_params: int  # a lookup, not a matmul: 0 when tied to the LM head
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    qk_norm: bool  # Qwen3's RMSNorm on each query / key head

    @property
    def matmul_params(self):
        return self.params - self.input_embedding_params


def model_shape(config):
    """Build the model on the meta device (shapes only, no memory) and read its sizes."""
    import torch
    from transformers import AutoModelForCausalLM

    from judge_sft.patches import outside_zero3_init

    with torch.device("meta"), outside_zero3_init():
        model = AutoModelForCausalLM.from_config(config)
    params = sum(parameter.numel() for parameter in model.parameters())  # a tied weight is listed once
    largest_layer, largest_layer_params = max(
        ((name, sum(p.numel() for p in module.parameters(recurse=False))) for name, module in model.named_modules()),
        key=lambda item: item[1],
    )
    text_config = config.get_text_config()
    embedding, head = model.get_input_embeddings(), model.get_output_embeddings()
    tied = head is not None and head.weight is embedding.weight
    first_layer = next(module for name, module in model.named_modules() if name.endswith("layers.0"))
    num_heads = text_config.num_attention_heads
    return ModelShape(
        params=params,
        largest_layer_params=largest_layer_params,
        largest_layer=largest_layer,
        input_embedding_params=0 if tied else embedding.weight.numel(),
        hidden_size=text_config.hidden_size,
        num_layers=text_config.num_hidden_layers,
        num_heads=num_heads,
        num_kv_heads=getattr(text_config, "num_key_value_heads", None) or num_heads,
        head_dim=getattr(text_config, "head_dim", None) or text_config.hidden_size // num_heads,
        intermediate_size=text_config.intermediate_size,
        vocab_size=text_config.vocab_size,
        qk_norm=any(name.endswith("q_norm") for name, _ in first_layer.named_modules()),
    )


@dataclass(frozen=True)
class Setup:
    """What decides the memory of one GPU: the recipe's settings and the machines."""

    num_gpus: int  # per node
    num_nodes: int
    micro_batch: int
    max_length: int
    sp_size: int
    checkpointing: bool
    cpu_offload: str  # none, optimizer, all
    mixed_precision: bool  # bf16/fp16 params and activations
    activation_bytes: int
    master_weights: str = "fp32"  # fp32, bf16_kahan

    @property
    def world_size(self):
        return self.num_gpus * self.num_nodes

    @property
    def tokens_per_rank(self):
        """Worst case: every sequence of the micro batch at max_length, split over the sp ranks."""
        return self.micro_batch * math.ceil(self.max_length / self.sp_size)


@dataclass(frozen=True)
class ModelStates:
    gpu_bytes: int
    host_bytes_per_node: int
    sharded_bytes_per_param: int  # on the GPU
    host_bytes_per_param: int
    gathered_bytes: int
    step_bytes: int  # one sub-group's gradients at the optimizer step


def zero3_model_states(shape, setup):
    """DeepSpeed's ZeRO-3 allocations, with zero.Init (accelerate's `zero3_init_flag: true`)."""
    where = placement(setup.cpu_offload, setup.master_weights, setup.mixed_precision)
    partition = shape.params / setup.world_size
    param_bytes = 2 if setup.mixed_precision else FP32
    gathered_bytes = 2 * param_bytes * shape.largest_layer_params  # the largest layer's params and grads, whole
    step_bytes = where.step_bytes_per_element * min(SUB_GROUP_SIZE, partition)
    gpu = gathered_bytes + where.gpu_bytes_per_param * partition + step_bytes
    if where.host_bytes_per_param:
        host = shape.params * where.host_bytes_per_param / setup.num_nodes * HOST_BUFFER_FACTOR
    else:
        host = shape.largest_layer_params * FP32 * setup.num_gpus * HOST_BUFFER_FACTOR  # loading, layer by layer
    return ModelStates(
        int(gpu), int(host), where.gpu_bytes_per_param, where.host_bytes_per_param, gathered_bytes, int(step_bytes)
    )


def layer_activation_bytes_per_token(shape, activation_bytes):
    """Bytes one decoder layer saves for backward per token (flash attention, RMSNorm computed in fp32)."""
    a = activation_bytes
    q_width, kv_width = shape.num_heads * shape.head_dim, shape.num_kv_heads * shape.head_dim
    rms_norm = (FP32 + 2 * a) * shape.hidden_size  # the fp32 input, the normalised value, the output
    saved = 2 * rms_norm
    if shape.qk_norm:  # fp32 input and normalised value; RoPE after it keeps only cos / sin
        saved += (FP32 + a) * (q_width + kv_width)
    saved += 2 * a * q_width  # query after RoPE, attention output (= o_proj input)
    saved += 2 * a * kv_width  # key after RoPE, value
    saved += FP32 * shape.num_heads  # flash attention's log-sum-exp
    normalised_rows = 2 + (shape.num_heads + shape.num_kv_heads if shape.qk_norm else 0)
    saved += FP32 * normalised_rows  # RMSNorm's 1/rms per row
    saved += 4 * a * shape.intermediate_size  # gate, act(gate), up, act(gate) * up
    return saved


def activation_bytes(shape, setup, checkpointing):
    tokens = setup.tokens_per_rank
    a = setup.activation_bytes
    layer = layer_activation_bytes_per_token(shape, a) * tokens
    final_norm = ((FP32 + a) * shape.hidden_size + FP32) * tokens
    rotary = 2 * a * shape.head_dim * tokens  # cos and sin, shared by the layers
    if checkpointing:  # each layer's input, plus one layer recomputed in backward
        return shape.num_layers * a * shape.hidden_size * tokens + layer + final_norm + rotary
    return shape.num_layers * layer + final_norm + rotary


def loss_bytes(shape, setup):
    """Peak of TRL's tiled log-probs (at the start of backward): the final hidden states kept, their fp32 gradient
    and its cast, the LM head's fp32 gradient and its cast, one logits tile and per-token fp32 statistics."""
    tokens = setup.tokens_per_rank
    a = setup.activation_bytes
    hidden = tokens * shape.hidden_size * (2 * a + FP32)
    head_gradient = shape.vocab_size * shape.hidden_size * (FP32 + a)
    tile = min(tokens, TOKEN_CHUNK_SIZE) * min(shape.vocab_size, VOCAB_CHUNK_SIZE) * a
    return hidden + head_gradient + tile + 4 * FP32 * tokens


@dataclass(frozen=True)
class MemoryEstimate:
    setup: Setup
    model_states: ModelStates
    activations: int
    activations_without_checkpointing: int
    activations_with_checkpointing: int
    loss: int

    @property
    def total(self):
        return self.model_states.gpu_bytes + self.activations + self.loss

    def usable(self, gpu_memory_gb):
        return gpu_memory_gb * GB * (1 - HEADROOM)

    def fits_gpu(self, gpu_memory_gb):
        return self.total <= self.usable(gpu_memory_gb)

    def fits_host(self, cpu_memory_gb):
        return cpu_memory_gb is None or self.model_states.host_bytes_per_node <= cpu_memory_gb * GB

    def fits(self, gpu_memory_gb, cpu_memory_gb=None):
        return self.fits_gpu(gpu_memory_gb) and self.fits_host(cpu_memory_gb)


def estimate(shape, setup):
    with_checkpointing = activation_bytes(shape, setup, checkpointing=True)
    without_checkpointing = activation_bytes(shape, setup, checkpointing=False)
    return MemoryEstimate(
        setup=setup,
        model_states=zero3_model_states(shape, setup),
        activations=with_checkpointing if setup.checkpointing else without_checkpointing,
        activations_without_checkpointing=without_checkpointing,
        activations_with_checkpointing=with_checkpointing,
        loss=loss_bytes(shape, setup),
    )


def training_flops(shape, sequence_lengths, checkpointing):
    """6 x matmul params x tokens, plus causal attention (6 x layers x heads x head_dim x length^2 per sequence);
    gradient checkpointing runs the forward twice: x 4/3."""
    lengths = np.asarray(sequence_lengths, dtype=np.float64)
    tokens, squares = lengths.sum(), (lengths**2).sum()
    flops = 6 * shape.matmul_params * tokens + 6 * shape.num_layers * shape.num_heads * shape.head_dim * squares
    return flops * (4 / 3 if checkpointing else 1)
