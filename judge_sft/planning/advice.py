"""What to change when a recipe does not fit: each of the cookbook's OOM knobs tried on the memory model, alone and
together, with its new estimate."""

import math
from dataclasses import dataclass, replace

from judge_sft.errors import JudgeSFTError
from judge_sft.planning.memory_model import GB, HEADROOM, estimate
from judge_sft.train.launch import plan_batch, sp_heads_problem

MAX_NODES_TRIED = 64
MAX_LENGTH_STEP = 256


@dataclass
class Advice:
    text: str
    overrides: dict  # recipe keys, and num_gpus / num_nodes for the machines
    estimate: object
    fits: bool


class Planner:
    def __init__(self, shape, setup, total_batch_size, options, profile=None):
        self.shape, self.setup, self.total_batch_size = shape, setup, total_batch_size
        self.options, self.profile = options, profile

    def estimate(self, setup=None):
        return estimate(self.shape, setup or self.setup)

    def fits(self, memory):
        return memory.fits(self.options.gpu_memory_gb, self.options.cpu_memory_gb)

    def usable_gb(self):
        return self.options.gpu_memory_gb * (1 - HEADROOM)

    def accumulation(self, setup):
        """Gradient accumulation for `setup`, or None when the global batch does not divide."""
        try:
            return plan_batch(self.total_batch_size, setup.micro_batch, setup.world_size, setup.sp_size).grad_accum
        except JudgeSFTError:
            return None

    def sp_allowed(self, sp_size):
        return sp_heads_problem(self.shape.num_heads, self.shape.num_kv_heads, sp_size) is None

    def advice(self):
        found = [
            self.micro_batch_advice(),
            self.checkpointing_advice(),
            self.max_length_advice(),
            self.offload_advice(),
            self.sp_advice(),
            self.more_gpus_advice(),
        ]
        found = [item for item in found if item is not None]
        if not any(item.fits for item in found):
            combined = self.combined_advice()
            if combined is not None:
                found.append(combined)
        return sorted(found, key=lambda item: not item.fits)  # what fits first, in the cookbook's order

    def describe(self, memory, what):
        verdict = "fits" if self.fits(memory) else "not enough alone"
        if not memory.fits_host(self.options.cpu_memory_gb):
            verdict = (
                f"host RAM {memory.model_states.host_bytes_per_node / GB:.3g} GB > {self.options.cpu_memory_gb:g} GB"
            )
        return f"{what}: {memory.total / GB:.3g} GB per GPU -> {verdict}"

    def make(self, what, overrides, setup):
        memory = self.estimate(setup)
        return Advice(self.describe(memory, what), overrides, memory, self.fits(memory))

    def nearest_fit(self, field, values, key, describe):
        """Advice setting `field` to the first value (in order) whose batch arithmetic works and that fits, else to the
        last workable value (the nearest to fitting); None when no value works. `key`: the recipe key it changes."""
        setups = [replace(self.setup, **{field: value}) for value in values]
        setups = [setup for setup in setups if self.accumulation(setup) and self.sp_allowed(setup.sp_size)]
        if not setups:
            return None
        setup = next((setup for setup in setups if self.fits(self.estimate(setup))), setups[-1])
        return self.make(describe(setup), {key: getattr(setup, field)}, setup)

    def micro_batch_advice(self):
        return self.nearest_fit(
            "micro_batch",
            range(self.setup.micro_batch - 1, 0, -1),
            "per_device_train_batch_size",
            lambda setup: (
                f"per_device_train_batch_size {setup.micro_batch} (gradient accumulation "
                f"{self.accumulation(setup)} keeps the global batch of {self.total_batch_size})"
            ),
        )

    def checkpointing_advice(self):
        if self.setup.checkpointing:
            return None
        return self.make(
            "activation_checkpointing true (~1/3 more compute)",
            {"activation_checkpointing": True},
            replace(self.setup, checkpointing=True),
        )

    def max_length_advice(self):
        step = MAX_LENGTH_STEP * self.setup.sp_size // math.gcd(MAX_LENGTH_STEP, self.setup.sp_size)
        lengths = range((self.setup.max_length - 1) // step * step, 0, -step)
        return self.nearest_fit("max_length", lengths, "max_length", self.describe_max_length)

    def describe_max_length(self, setup):
        if self.profile is None:
            return f"max_length {setup.max_length}"
        cut = self.profile.at(setup.max_length)
        return (
            f"max_length {setup.max_length} (truncates {cut.rows_truncated} of {len(self.profile.num_tokens)} rows: "
            f"{cut.targets_cut} lose trained tokens, {cut.rows_dropped} lose all and are dropped)"
        )

    def offload_advice(self):
        if self.setup.cpu_offload:
            return None
        advice = self.make(
            "cpu_offload true (launch with accelerate_configs/zero3_offload.yaml: optimizer states and "
            "parameters in host RAM)",
            {"cpu_offload": True},
            replace(self.setup, cpu_offload=True),
        )
        advice.text += f"; needs {advice.estimate.model_states.host_bytes_per_node / GB:.3g} GB host RAM per node"
        return advice

    def sp_advice(self):
        return self.nearest_fit(
            "sp_size",
            range(self.setup.sp_size + 1, self.setup.world_size + 1),
            "sp_size",
            lambda setup: (
                f"sp_size {setup.sp_size} ({setup.tokens_per_rank} tokens per rank, dp "
                f"{setup.world_size // setup.sp_size}, gradient accumulation {self.accumulation(setup)})"
            ),
        )

    def more_gpus_advice(self):
        return self.nearest_fit(
            "num_nodes",
            range(self.setup.num_nodes + 1, MAX_NODES_TRIED + 1),
            "num_nodes",
            lambda setup: (
                f"{setup.num_nodes} nodes x {self.setup.num_gpus} GPUs (world size {setup.world_size}, dp "
                f"{setup.world_size // setup.sp_size}, gradient accumulation {self.accumulation(setup)})"
            ),
        )

    def combined_advice(self):
        """Nothing fits alone: apply the memory savers one after another until it fits."""
        setup, overrides = self.setup, {}
        steps = [("activation_checkpointing", "checkpointing", True), ("cpu_offload", "cpu_offload", True)]
        for key, field, value in steps:
            if getattr(setup, field) != value:
                setup, overrides[key] = replace(setup, **{field: value}), value
            if self.fits(self.estimate(setup)):
                break
        else:
            for micro_batch in range(setup.micro_batch - 1, 0, -1):
                candidate = replace(setup, micro_batch=micro_batch)
                if self.accumulation(candidate):
                    setup, overrides["per_device_train_batch_size"] = candidate, micro_batch
                    if self.fits(self.estimate(setup)):
                        break
        if not overrides or not self.fits(self.estimate(setup)):
            return None
        changes = ", ".join(f"{key} {str(value).lower()}" for key, value in overrides.items())
        return self.make(f"together: {changes}", overrides, setup)
