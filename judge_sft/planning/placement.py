"""Where ZeRO-3 keeps the model states (`cpu_offload`, `master_weights`), and what each placement moves and computes
per optimizer step.

Bytes per parameter are what DeepSpeed 0.19.8 allocates, sharded over all GPUs; tests/test_plan.py counts its tensors
after one step on a small model. With bf16 (p = 2; 4 in fp32 training):

- none, fp32: params p + gradient partition p + fp32 master 4 + Adam m, v 8 = 16, on the GPU;
- none, bf16_kahan: params 2 + gradients 2 + bf16 master 2 + bf16 m, v 4 + bf16 Kahan buffer 2 = 12, on the GPU;
- optimizer: params p on the GPU; gradient partition p (pinned), fp32 gradients 4, master 4, Adam 8 = 18 in host RAM;
- all: params p + the 18 above = 20 in host RAM.

On the GPU, the optimizer step also flattens the gradients of one sub-group (at most DeepSpeed's `sub_group_size`, 1e9
elements) and casts them to the master weights' dtype: p + 4 bytes per element with fp32 master weights, p with bf16.
"""

from dataclasses import dataclass

FP32 = 4
SUB_GROUP_SIZE = 10**9  # DeepSpeed's zero_optimization.sub_group_size default
ADAM = 2 * FP32
# The placements plan compares, fastest first when they fit: (cpu_offload, master_weights).
OPTIONS = (("none", "fp32"), ("none", "bf16_kahan"), ("optimizer", "fp32"), ("all", "fp32"))
# Assumptions, not measurements (options of `judge-sft plan`): host<->GPU copy bandwidth per GPU with all 8 GPUs of a
# node copying at once (PCIe Gen5 x16 is 64 GB/s per direction, shared by two GPUs per switch on most 8-GPU nodes), and
# DeepSpeed's CPU Adam throughput per node (memory-bound: ~30 bytes of host memory traffic per parameter).
PCIE_GB_PER_S = 25.0
HOST_ADAM_GPARAMS_PER_S = 2.0


@dataclass(frozen=True)
class Placement:
    gpu_bytes_per_param: int  # sharded: per parameter of a rank's partition
    host_bytes_per_param: int
    step_bytes_per_element: int  # on the GPU, at the optimizer step, per element of one sub-group


def placement(cpu_offload, master_weights, mixed_precision):
    p = 2 if mixed_precision else FP32
    if master_weights == "bf16_kahan":  # bf16 master weights, m, v and Kahan buffer; DeepSpeed needs it on the GPU
        return Placement(p + p + 2 + 3 * 2, 0, p)
    offloaded = p + FP32 + FP32 + ADAM  # gradient partition, fp32 gradients, master weights, Adam
    if cpu_offload == "optimizer":
        return Placement(p, offloaded, 0)
    if cpu_offload == "all":
        return Placement(0, p + offloaded, 0)
    return Placement(p + p + FP32 + ADAM, 0, p + FP32)


def pcie_bytes_per_step(setup, params, grad_accum):
    """Bytes one GPU copies to or from host RAM per optimizer step. optimizer: each micro step's gradient partition
    out, the updated bf16 partition back. all: each micro step also fetches the partition for the forward, the backward
    and, with checkpointing, the recomputed forward."""
    p = 2 if setup.mixed_precision else FP32
    partition = params / setup.world_size
    if setup.cpu_offload == "optimizer":
        return (grad_accum * p + p) * partition
    if setup.cpu_offload == "all":
        fetches = 3 if setup.checkpointing else 2
        return grad_accum * (fetches * p + p) * partition
    return 0


def host_adam_seconds(setup, params, gparams_per_s):
    """DeepSpeed's CPU Adam over the node's share of the parameters, once per optimizer step."""
    if setup.cpu_offload == "none":
        return 0.0
    return params / setup.num_nodes / (gparams_per_s * 1e9)
