"""What to change when a recipe does not fit: each of the cookbook's OOM knobs, and each placement of the model states
(placement.py), tried on the memory model alone and together, with its new estimate and step time; what fits comes
first, cheapest first (GPU-seconds per optimizer step)."""

import math
from dataclasses import dataclass, replace

from judge_sft.errors import JudgeSFTError
from judge_sft.planning.memory_model import GB, HEADROOM, estimate, training_flops
from judge_sft.planning.placement import OPTIONS, host_adam_seconds, pcie_bytes_per_step
from judge_sft.train.launch import plan_batch, sp_heads_problem

MAX_NODES_TRIED = 64
MAX_LENGTH_STEP = 256


@dataclass
class Advice:
    text: str
    overrides: dict  # recipe keys, and num_gpus / num_nodes for the machines
    estimate: object
    fits: bool
    step_seconds: float
    same_training: bool = True  # False: the change alters what is trained (max_length truncates rows)

    def cost(self):
        """What fits first, then what trains the same rows, then the fewest GPU-seconds per step, then fewest GPUs."""
        world = self.estimate.setup.world_size
        return (not self.fits, not self.same_training, self.step_seconds * world, world)


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

    def compute_seconds(self, setup):
        """Every row at max_length, at the stated MFU."""
        flops = training_flops(self.shape, [setup.max_length] * self.total_batch_size, setup.checkpointing)
        return flops / (setup.world_size * self.options.peak_tflops * 1e12 * self.options.mfu)

    def pcie_seconds(self, setup):
        moved = pcie_bytes_per_step(setup, self.shape.params, self.accumulation(setup) or 1)
        return moved / (self.options.pcie_gb_per_s * GB)

    def host_adam_seconds(self, setup):
        return host_adam_seconds(setup, self.shape.params, self.options.host_adam_gparams_per_s)

    def step_seconds(self, setup=None):
        """Compute, plus the offload's copies and host Adam step, none of them overlapped (an upper bound)."""
        setup = setup or self.setup
        return self.compute_seconds(setup) + self.pcie_seconds(setup) + self.host_adam_seconds(setup)

    def placements(self):
        """Each placement of the model states (placement.OPTIONS) for this recipe: bf16_kahan needs bf16."""
        options = [option for option in OPTIONS if self.setup.mixed_precision or option[1] == "fp32"]
        return [replace(self.setup, cpu_offload=offload, master_weights=master) for offload, master in options]

    def advice(self):
        found = [
            *self.placement_advice(),
            self.micro_batch_advice(),
            self.checkpointing_advice(),
            self.sp_advice(),
            self.more_gpus_advice(),
            self.max_length_advice(),
        ]
        found = [item for item in found if item is not None]
        if not any(item.fits for item in found):
            combined = self.combined_advice()
            if combined is not None:
                found.append(combined)
        return sorted(found, key=Advice.cost)

    def describe(self, memory, what):
        verdict = "fits" if self.fits(memory) else "not enough alone"
        if not memory.fits_host(self.options.cpu_memory_gb):
            verdict = (
                f"host RAM {memory.model_states.host_bytes_per_node / GB:.3g} GB > {self.options.cpu_memory_gb:g} GB"
            )
        return f"{what}: {memory.total / GB:.3g} GB per GPU -> {verdict}"

    def make(self, what, overrides, setup, same_training=True):
        memory = self.estimate(setup)
        step = self.step_seconds(setup)
        text = f"{self.describe(memory, what)}; {step:.1f} s per step"
        return Advice(text, overrides, memory, self.fits(memory), step, same_training)

    def nearest_fit(self, field, values, key, describe):
        """Advice setting `field` to the first value (in order) whose batch arithmetic works and that fits, else to the
        last workable value (the nearest to fitting); None when no value works. `key`: the recipe key it changes."""
        setups = [replace(self.setup, **{field: value}) for value in values]
        setups = [setup for setup in setups if self.accumulation(setup) and self.sp_allowed(setup.sp_size)]
        if not setups:
            return None
        setup = next((setup for setup in setups if self.fits(self.estimate(setup))), setups[-1])
        return self.make(describe(setup), {key: getattr(setup, field)}, setup, same_training=field != "max_length")

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

    def placement_advice(self):
        """Each other placement of the model states: what it keeps where, and its host RAM and copies."""
        found = []
        for setup in self.placements():
            if (setup.cpu_offload, setup.master_weights) == (self.setup.cpu_offload, self.setup.master_weights):
                continue
            overrides = {"cpu_offload": setup.cpu_offload, "master_weights": setup.master_weights}
            advice = self.make(describe_placement(setup), overrides, setup)
            if setup.cpu_offload != "none":
                advice.text += (
                    f"; needs {advice.estimate.model_states.host_bytes_per_node / GB:.3g} GB host RAM per node, "
                    f"{self.pcie_seconds(setup):.1f} s of PCIe copies and {self.host_adam_seconds(setup):.1f} s of "
                    "host Adam per step"
                )
            found.append(advice)
        return found

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
        """Nothing fits alone: gradient checkpointing, then each placement from the fastest, then smaller micro
        batches on the placement that needs the least GPU memory."""
        base, overrides = self.setup, {}
        if not base.checkpointing:
            base, overrides["activation_checkpointing"] = replace(base, checkpointing=True), True
        candidates = [
            replace(base, cpu_offload=s.cpu_offload, master_weights=s.master_weights) for s in self.placements()
        ]
        setup = next((candidate for candidate in candidates if self.fits(self.estimate(candidate))), candidates[-1])
        for micro_batch in range(setup.micro_batch - 1, 0, -1):
            if self.fits(self.estimate(setup)):
                break
            candidate = replace(setup, micro_batch=micro_batch)
            if self.accumulation(candidate):
                setup = candidate
        if not self.fits(self.estimate(setup)):
            return None
        overrides.update(cpu_offload=setup.cpu_offload, master_weights=setup.master_weights)
        if setup.micro_batch != base.micro_batch:
            overrides["per_device_train_batch_size"] = setup.micro_batch
        changes = ", ".join(f"{key} {str(value).lower()}" for key, value in overrides.items())
        return self.make(f"together: {changes}", overrides, setup)


PLACEMENT_TEXT = {
    ("none", "fp32"): "fp32 master weights and Adam states on the GPU (accelerate_configs/zero3.yaml)",
    ("none", "bf16_kahan"): "bf16 master weights, gradients and Adam states with Kahan-compensated AdamW, all on the "
    "GPU (accelerate_configs/zero3.yaml)",
    ("optimizer", "fp32"): "fp32 master weights and Adam states in host RAM, Adam on the CPU "
    "(accelerate_configs/zero3_offload_optimizer.yaml)",
    ("all", "fp32"): "optimizer states and parameters in host RAM, parameters fetched over PCIe every micro step "
    "(accelerate_configs/zero3_offload.yaml)",
}


def describe_placement(setup):
    option = (setup.cpu_offload, setup.master_weights)
    return f"cpu_offload {option[0]}, master_weights {option[1]} ({PLACEMENT_TEXT[option]})"
