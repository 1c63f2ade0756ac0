"""`attn_implementation: torch_varlen`: the FlashAttention-2 kernel that ships inside PyTorch (torch.nn.attention.varlen,
torch >= 2.10), over the documents of a padding-free row. Nothing to install and no compile step; sp_size 1 only.

Registered in transformers' AttentionInterface (its public extension point) by `register()`; docs/gpu.md says where
it stands among the other backends.
"""

import contextlib
import functools
import inspect
import os
import weakref

import torch
import torch.nn.functional as F

NAME = "torch_varlen"
# "name;memory GiB;major.minor": the GPU facts judge-sft uses instead of asking torch, so that its GPU-only branches run
# in CPU tests (docs/gpu.md#gpu-branches-on-cpu); on CPU tensors a per-document sdpa then stands in for the flash kernel.
STATED_GPU = "JUDGE_SFT_GPU"
_last_documents = None  # (weakref to position_ids, documents): one computation per forward, not one per layer
# Inside `documents_once()`: [documents] of the forward's first attention call, or [] before it; None outside.
_forward_documents = None


@contextlib.contextmanager
def documents_once():
    """One model forward whose layers all attend over the same documents: find them at the first layer only. Under
    sequence parallelism DeepSpeed gathers position_ids into a new tensor in every layer, so the per-tensor cache
    misses in each one (a nonzero() and a host sync per layer); the SP trainer opens this around its forward."""
    global _forward_documents
    _forward_documents = []
    try:
        yield
    finally:
        _forward_documents = None


@functools.cache
def available():
    try:
        from torch.nn.attention.varlen import varlen_attn  # noqa: F401
    except ImportError:
        return False
    return True


def runs_on(tensor):
    """Whether torch's varlen flash kernel takes this tensor: bf16 or fp16 on an Ampere or newer GPU."""
    return tensor.is_cuda and tensor.dtype in (torch.bfloat16, torch.float16) and _ampere_or_newer(tensor.device.index)


@functools.cache
def _ampere_or_newer(device_index):
    return available() and torch.cuda.get_device_capability(device_index) >= (8, 0)


def kernel_for(tensor):
    """The varlen kernel that runs on this tensor: torch's flash kernel on an Ampere or newer GPU, its CPU stand-in
    on a CPU with a stated GPU; None elsewhere."""
    if runs_on(tensor):
        return flash_varlen
    if not tensor.is_cuda and os.environ.get(STATED_GPU):
        return reference_varlen
    return None


def register():
    """Make `attn_implementation: torch_varlen` loadable by from_pretrained, with its mask (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface

    AttentionInterface.register(NAME, varlen_attention_forward)
    AttentionMaskInterface.register(NAME, varlen_mask)


def varlen_mask(batch_size, q_length, kv_length, **kwargs):
    """The mask transformers builds for torch_varlen: FlashAttention's (None, or the [batch, tokens] padding mask)
    where query and key cover the same tokens; sdpa's where a decoding step attends over the cache."""
    from transformers.masking_utils import flash_attention_mask, sdpa_mask

    if q_length != kv_length:
        return sdpa_mask(batch_size, q_length, kv_length, **kwargs)
    return flash_attention_mask(batch_size, q_length, kv_length, **kwargs)


def varlen_attention_forward(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """transformers' attention interface: query [batch, heads, tokens, head_dim], key and value with kv heads ->
    ([batch, tokens, heads, head_dim], None). A decoding step (the key holds the cache) goes to sdpa."""
    if key.shape[2] != query.shape[2]:
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout, scaling, **kwargs)
    kernel = kernel_for(query) or flash_varlen  # elsewhere the flash kernel says why it cannot run
    return attend_by_document(query, key, value, attention_mask, scaling, kernel, **kwargs), None


def attend_by_document(query, key, value, attention_mask, scaling, kernel, position_ids=None, **kwargs):
    """Causal attention within each document: the rows of a padded batch (`attention_mask` [batch, tokens]), or the
    documents of a padding-free row (TRL's `cu_seq_lens_q`, else where `position_ids` restart). `kernel(q, k, v,
    cu_seq_lens, max_length, scale)` attends over packed [tokens, heads, head_dim] tensors."""
    batch, heads, length, head_dim = query.shape
    packed = [
        tensor.transpose(1, 2).reshape(batch * length, tensor.shape[1], head_dim) for tensor in (query, key, value)
    ]
    if attention_mask is not None:  # padded rows: their real tokens, in order
        keep = attention_mask.reshape(-1).bool()
        packed = [tensor[keep] for tensor in packed]
        lengths = attention_mask.sum(-1)
        cu_seq_lens = F.pad(lengths.cumsum(0), (1, 0)).to(torch.int32)
        max_length = int(lengths.max())
    elif kwargs.get("cu_seq_lens_q") is not None and batch == 1:
        cu_seq_lens = kwargs["cu_seq_lens_q"].to(query.device, torch.int32, non_blocking=True)
        max_length = int(kwargs["max_length_q"])
    else:
        cu_seq_lens, max_length = documents(position_ids, batch, length, query.device)
    scale = scaling if scaling is not None else head_dim**-0.5
    out = kernel(*packed, cu_seq_lens, max_length, scale)
    if attention_mask is not None:
        full = out.new_zeros(batch * length, heads, head_dim)
        full[keep] = out
        out = full
    return out.reshape(batch, length, heads, head_dim)


def documents(position_ids, batch, length, device):
    """(cu_seq_lens, longest) of the documents in a [batch, tokens] batch: a document starts at each row's start and
    wherever position_ids do not continue by 1."""
    global _last_documents
    if _forward_documents:
        return _forward_documents[0]
    if _last_documents is not None and position_ids is not None and _last_documents[0]() is position_ids:
        return _last_documents[1]
    if position_ids is None:
        starts = torch.arange(0, batch * length, length, device=device)
    else:
        positions = position_ids.expand(batch, length).reshape(-1)
        new_document = torch.ones_like(positions, dtype=torch.bool)
        new_document[1:] = positions[1:] != positions[:-1] + 1
        new_document[::length] = True
        starts = new_document.nonzero().flatten()
    cu_seq_lens = torch.cat([starts, starts.new_tensor([batch * length])]).to(torch.int32)
    result = cu_seq_lens, int(cu_seq_lens.diff().max())
    if position_ids is not None:
        _last_documents = weakref.ref(position_ids), result
    if _forward_documents is not None:
        _forward_documents.append(result)
    return result


def flash_varlen(query, key, value, cu_seq_lens, max_length, scale):
    """torch's varlen_attn, whose keyword arguments changed across torch releases (2.10: `is_causal`, no scale and no
    GQA; later: `window_size=(-1, 0)` for causal, `scale`, `enable_gqa`)."""
    from torch.nn.attention.varlen import varlen_attn

    options = {}
    parameters = varlen_parameters()
    if "is_causal" in parameters:
        options["is_causal"] = True
    else:
        options["window_size"] = (-1, 0)
    if "scale" in parameters:
        options["scale"] = scale
    elif scale != query.shape[-1] ** -0.5:
        query = query * (scale * query.shape[-1] ** 0.5)
    if key.shape[1] != query.shape[1]:
        if "enable_gqa" in parameters:
            options["enable_gqa"] = True
        else:
            groups = query.shape[1] // key.shape[1]
            key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    return varlen_attn(query, key, value, cu_seq_lens, cu_seq_lens, max_length, max_length, **options)


@functools.cache
def varlen_parameters():
    from torch.nn.attention.varlen import varlen_attn

    return set(inspect.signature(varlen_attn).parameters)


def reference_varlen(query, key, value, cu_seq_lens, max_length, scale):
    """What the flash kernel computes, with sdpa one document at a time: the CPU stand-in under a stated GPU."""
    outputs = []
    for start, end in zip(cu_seq_lens[:-1].tolist(), cu_seq_lens[1:].tolist()):
        q, k, v = (tensor[start:end].transpose(0, 1) for tensor in (query, key, value))
        outputs.append(F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, enable_gqa=True))
    return torch.cat([out.transpose(0, 1) for out in outputs])
