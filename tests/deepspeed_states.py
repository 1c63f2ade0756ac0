"""What DeepSpeed's ZeRO-3 allocates per parameter for each placement of the model states (cpu_offload, master_weights):
one bf16 engine per placement over a model directory, one optimizer step, then the bytes of its tensors, on the GPU side
and the host side of the offload. Run as a script (one process, world size 1, CPU); prints one JSON object.

    python tests/deepspeed_states.py MODEL_DIR
"""

import json
import os
import sys

import deepspeed
import optimi
import torch
from deepspeed.ops.adam import DeepSpeedCPUAdam
from transformers import AutoModelForCausalLM

from judge_sft.planning.placement import OPTIONS
from judge_sft.train.master_weights import DEEPSPEED_BF16_OPTIONS


def engine_for(model_dir, cpu_offload, master_weights):
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16)
    params = sum(parameter.numel() for parameter in model.parameters())  # before ZeRO-3 empties them
    zero = {"stage": 3, "stage3_param_persistence_threshold": 0}
    config = {"train_micro_batch_size_per_gpu": 1, "bf16": {"enabled": True}, "zero_optimization": zero}
    config["zero_allow_untested_optimizer"] = True  # as transformers sets it for the Trainer's optimizer
    if cpu_offload in ("optimizer", "all"):
        zero["offload_optimizer"] = {"device": "cpu"}
        optimizer = DeepSpeedCPUAdam(model.parameters(), lr=1e-5)  # what accelerate maps AdamW to under offload
    elif master_weights == "bf16_kahan":
        config["bf16"].update(DEEPSPEED_BF16_OPTIONS)
        optimizer = optimi.AdamW(model.parameters(), lr=1e-5, kahan_sum=True)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    if cpu_offload == "all":
        zero["offload_param"] = {"device": "cpu"}
    engine, *_ = deepspeed.initialize(model=model, optimizer=optimizer, config=config)
    return engine, params


def storage_bytes(tensors):
    """Bytes of the distinct storages behind `tensors` (a view or an alias counted once)."""
    storages = {tensor.untyped_storage().data_ptr(): tensor.untyped_storage().nbytes() for tensor in tensors}
    return sum(storages.values())


def measure(model_dir, cpu_offload, master_weights):
    engine, params = engine_for(model_dir, cpu_offload, master_weights)
    ids = torch.arange(32).unsqueeze(0)
    engine.backward(engine(input_ids=ids, labels=ids).loss)
    engine.step()
    zero = engine.optimizer
    weights = list(zero.fp16_partitioned_groups_flat)
    weight_storages = {tensor.untyped_storage().data_ptr() for tensor in weights}
    masters = [
        tensor
        for tensor in zero.fp32_partitioned_groups_flat
        if tensor.untyped_storage().data_ptr() not in weight_storages
    ]
    optimizer_states = [
        value
        for state in zero.optimizer.state.values()
        for value in state.values()
        if torch.is_tensor(value) and value.numel() > 1
    ]
    gradients = [zero.grad_partitions_flat_buffer]
    master_gradients = [tensor.grad for tensor in zero.fp32_partitioned_groups_flat if tensor.grad is not None]
    held = {"weights": weights, "gradients": gradients, "master": masters + master_gradients + optimizer_states}
    on_host = {"weights": cpu_offload == "all", "gradients": cpu_offload != "none", "master": cpu_offload != "none"}
    sides = {"gpu": 0, "host": 0}
    for kind, tensors in held.items():
        sides["host" if on_host[kind] else "gpu"] += storage_bytes(tensors)
    return {
        "gpu_bytes_per_param": sides["gpu"] / params,
        "host_bytes_per_param": sides["host"] / params,
        "master_dtype": str(zero.fp32_partitioned_groups_flat[0].dtype),
        "optimizer_state_dtypes": sorted({str(value.dtype) for value in optimizer_states}),
    }


def main(model_dir):
    os.environ.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29561")
    measured = {f"{offload},{master}": measure(model_dir, offload, master) for offload, master in OPTIONS}
    print(json.dumps(measured))


if __name__ == "__main__":
    main(sys.argv[1])
