"""DeepSpeed-Ulysses sequence parallelism from the recipe's `sp_size`, computing exactly what sp_size 1 computes.

sp_size 1 runs none of this. What the stock accelerate + DeepSpeed + transformers stack gets wrong for judge-sft, and
how this module fixes it (gradients under ZeRO-1/2, the loss normaliser, SP in eval, padding-free batches, resume), is
in docs/sequence_parallelism.md.
"""

import contextlib
import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from accelerate import ParallelismConfig
from accelerate.utils import DeepSpeedSequenceParallelConfig
from deepspeed.runtime.sequence_parallel.ulysses_sp import UlyssesSPDataLoaderAdapter
from deepspeed.utils import groups
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import find_packed_sequence_indices
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from judge_sft.errors import JudgeSFTError
from judge_sft.train import attention, varlen_attention
from judge_sft.train.launch import sp_heads_problem
from judge_sft.train.model_config import load_model_config

# Keys of TRL's padding-free batches that describe the whole row, not one position each: they cannot be sharded along
# the sequence. Flash attention finds the documents from the gathered position_ids instead.
ROW_KEYS = ("cu_seq_lens_q", "cu_seq_lens_k", "max_length_q", "max_length_k", "seq_idx")
PAD_VALUES = {"labels": -100, "position_ids": 0, "attention_mask": 0}
PADDING_KEY = "sp_padding"  # how many padding tokens `SPBatches` appended to a batch (for TRL's num_tokens)


# ---- recipe checks and wiring, before any weights load


def configure(judge_args, training_args, model_args, world_size):
    """Check an SP recipe, then set accelerate's ParallelismConfig on the SFTConfig. Nothing at sp_size 1."""
    if judge_args.sp_size == 1:
        return
    plugin = training_args.deepspeed_plugin
    zero = plugin.deepspeed_config.get("zero_optimization", {}) if plugin is not None else None
    check_config(judge_args.sp_size, world_size, model_args, zero)

    training_args.parallelism_config = ParallelismConfig(
        sp_size=judge_args.sp_size,
        sp_backend="deepspeed",
        sp_handler=DeepSpeedSequenceParallelConfig(
            sp_seq_length_is_variable=True, sp_attn_implementation=model_args.attn_implementation or "sdpa"
        ),
    )


def check_config(sp_size, world_size, model_args, zero_optimization):
    """Every way an SP recipe can be wrong that is known before the weights load, each with its own error.
    `zero_optimization`: the DeepSpeed config's section, None without DeepSpeed."""
    if sp_size < 1:
        raise JudgeSFTError(f"recipe: sp_size must be 1 (off) or more, not {sp_size}")
    if world_size % sp_size:
        raise JudgeSFTError(f"recipe: sp_size {sp_size} does not divide the {world_size} launched processes")
    if zero_optimization is None:
        raise JudgeSFTError(
            f"recipe: sp_size {sp_size} is DeepSpeed-Ulysses sequence parallelism; launch with a DeepSpeed accelerate "
            "config (accelerate_configs/zero3.yaml)"
        )
    stage = int(zero_optimization.get("stage", 0))
    if stage not in (1, 2, 3):
        raise JudgeSFTError(f"recipe: sp_size {sp_size} needs ZeRO stage 1, 2 or 3 (the accelerate config has {stage})")
    if stage == 3 and not zero_optimization.get("reduce_scatter", True):
        raise JudgeSFTError(
            f"recipe: sp_size {sp_size} with ZeRO-3 needs reduce_scatter: true; without it DeepSpeed averages some "
            "gradient buckets over dp and others over sp x dp ranks"
        )
    name = model_args.attn_implementation or "sdpa"  # unset: transformers' default
    problem = attention.sp_problem(name, sp_size)
    if problem:
        raise JudgeSFTError(f"recipe: {problem}")
    try:
        DeepSpeedSequenceParallelConfig(sp_seq_length_is_variable=True, sp_attn_implementation=name)
    except ValueError as error:
        raise JudgeSFTError(f"recipe: attn_implementation {name}: {error}")

    model = model_args.model_name_or_path
    config = load_model_config(model_args).get_text_config()
    problem = sp_heads_problem(config.num_attention_heads, config.num_key_value_heads, sp_size)
    if problem:
        raise JudgeSFTError(f"{model}: {problem}")


def sdpa_with_document_mask(module, query, key, value, attention_mask, position_ids=None, **kwargs):
    """sdpa over the gathered sequence, documents apart. Ulysses drops the mask the model built for its shard; sdpa
    alone would then be plain causal, and the documents of a padding-free row would attend to each other. On a GPU,
    attend document by document with torch's varlen flash kernel (on a CPU with a stated GPU, its stand-in); elsewhere rebuild the [tokens, tokens] block-causal
    mask that transformers builds at sp_size 1 from the (gathered) position_ids."""
    kernel = varlen_attention.kernel_for(query)
    if attention_mask is None and kernel is not None:
        scaling = kwargs.get("scaling")
        out = varlen_attention.attend_by_document(query, key, value, None, scaling, kernel, position_ids=position_ids)
        return out, None
    if attention_mask is None and position_ids is not None:
        documents = find_packed_sequence_indices(position_ids)
        if documents is not None:
            causal = torch.ones(documents.shape[-1], documents.shape[-1], dtype=torch.bool, device=query.device).tril()
            attention_mask = ((documents[:, :, None] == documents[:, None, :]) & causal)[:, None]
    return sdpa_attention_forward(module, query, key, value, attention_mask, position_ids=position_ids, **kwargs)


# ---- the trainer's SP hooks


def attach(trainer):
    """The SP hooks of a trainer whose accelerator runs DeepSpeed SP, else None."""
    config = trainer.accelerator.parallelism_config
    return SequenceParallel(trainer) if config is not None and config.sp_enabled else None


class SequenceParallel:
    """Loaders, loss and token count of one trainer under SP (JudgeSFTTrainer calls these)."""

    def __init__(self, trainer):
        self.trainer = trainer
        self.sp_size = trainer.accelerator.parallelism_config.sp_size
        self.dp = trainer.args.world_size // self.sp_size
        # The loss is normalised by the trained tokens of the whole accumulated batch: no division by the steps.
        trainer.loss_is_scaled_for_ga = True
        # transformers wraps the train loader through this accelerator method once DeepSpeed made the SP groups.
        trainer.accelerator.deepspeed_ulysses_dl_adapter = lambda loader, model: self.shard(loader)

    @property
    def group(self):
        return groups._get_sequence_parallel_group()

    def shard(self, loader):
        """A loader whose every batch is processed by the whole SP group, one sequence shard per rank."""
        return ShardedLoader(
            loader,
            SPBatches(loader, self.group, self.sp_size, self.trainer.data_collator.pad_token_id),
            sp_rank=groups._get_sequence_parallel_rank(),
            sp_group=self.group,
            sp_world_size=self.sp_size,
            device=self.trainer.accelerator.device,
        )

    @contextlib.contextmanager
    def attention_without_sp(self):
        """The model's stock attention inside the block (generation: each rank runs whole sequences of its own).
        DeepSpeed installs Ulysses as a local override of transformers' attention registry, over the stock function;
        removing the override shows the stock one, and putting it back restores SP for the training that follows."""
        implementation = self.trainer.accelerator.parallelism_config.sp_handler.sp_attn_implementation
        ulysses = ALL_ATTENTION_FUNCTIONS[implementation]
        del ALL_ATTENTION_FUNCTIONS[implementation]
        try:
            yield
        finally:
            ALL_ATTENTION_FUNCTIONS[implementation] = ulysses

    def count_trained_tokens(self, batch_samples, device):
        """The trained tokens of the global batch of one optimizer step: every shard of every rank's micro batches."""
        tokens = sum((batch["shift_labels"] != -100).sum() for batch in batch_samples)
        return self.trainer.accelerator.gather(torch.as_tensor(tokens, device=device)).sum()

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The loss of TRL at sp_size 1, from this rank's shard. In training, `num_items_in_batch` is
        `count_trained_tokens`; in eval, the loss of each batch is the mean over its trained tokens."""
        padding = inputs.pop(PADDING_KEY, 0)
        inputs["use_cache"] = False
        with varlen_attention.documents_once():  # every layer attends over the documents the first one finds
            outputs = model(**inputs, fused_lm_head=True)  # shift_labels from the adapter: log-probs of this shard
        shard_sum = -outputs.log_probs.sum()
        group_sum = self._sum_over_group(shard_sum.detach())
        if self.trainer.model.training:
            tokens = torch.as_tensor(num_items_in_batch).clamp(min=1)
            # Logged: the group's sum x dp, so that the mean over ranks that transformers logs is the global mean.
            logged = group_sum * self.dp / tokens
            # Differentiated: this shard's tokens only, times the ranks DeepSpeed divides the gradient sum by.
            differentiated = shard_sum * gradient_divisor(model, self.sp_size) / tokens
            loss = logged + differentiated - differentiated.detach()
        else:
            loss = group_sum / self._sum_over_group(outputs.label_mask.sum()).clamp(min=1)
        self._log_token_metrics(outputs, inputs, padding)
        return (loss, outputs) if return_outputs else loss

    def _sum_over_group(self, tensor):
        tensor = tensor.clone()
        dist.all_reduce(tensor, group=self.group)
        return tensor

    def _log_token_metrics(self, outputs, inputs, padding):
        """TRL's entropy, mean_token_accuracy and num_tokens over all shards; SP padding is not counted as tokens."""
        mode = "train" if self.trainer.model.training else "eval"
        gather = self.trainer.accelerator.gather_for_metrics
        metrics = self.trainer._metrics[mode]
        trained = gather(outputs.label_mask.sum()).sum()
        entropy = gather(outputs.entropy.detach().sum()).sum()
        correct = gather(outputs.is_top1.sum()).sum()
        metrics["entropy"].append((entropy / trained).item() if trained > 0 else 0.0)
        metrics["mean_token_accuracy"].append((correct / trained).item() if trained > 0 else 0.0)
        if mode == "train":
            if "attention_mask" in inputs:  # padded rows: the collator's padding is not counted, nor is SP's
                shard_tokens = inputs["attention_mask"].sum().double()
            else:  # padding-free rows: each SP rank subtracts its share of the SP padding; the shares add up to it
                shard_tokens = torch.tensor(
                    inputs["position_ids"].shape[1] - padding / self.sp_size, dtype=torch.float64
                )
            self.trainer._total_train_tokens += round(gather(shard_tokens.to(outputs.log_probs.device)).sum().item())
        metrics["num_tokens"] = [self.trainer._total_train_tokens]


def gradient_divisor(engine, sp_size):
    """How many ranks DeepSpeed divides the gradient sum of the sequence-data-parallel group (sp x dp ranks) by.
    ZeRO-3 reduce-scatters with reduce_scatter_coalesced, which divides by the whole group. ZeRO-1/2 divide by the group
    size / sp (stage_1_and_2.py: `world_size / sequence_parallel_size`): they add up the SP ranks' gradients."""
    ranks = engine.seq_dp_world_size
    return ranks if engine.zero_optimization_stage() == 3 else ranks // sp_size


# ---- batches


class SPBatches:
    """One rank's batches, made shardable: row-level keys dropped, padding checked to be on the right (Ulysses drops
    the attention mask), then padded on the right to a multiple of sp_size (under gloo: of the SP group's longest
    batch). The pad tokens are trained on by nothing (labels -100) and seen by no real token (causal)."""

    def __init__(self, loader, group, sp_size, pad_token_id):
        self.loader, self.group, self.sp_size = loader, group, sp_size
        self.pad_values = {**PAD_VALUES, "input_ids": pad_token_id}

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            yield self.even(batch)

    def even(self, batch):
        for key in ROW_KEYS:
            batch.pop(key, None)
        mask = batch.get("attention_mask")
        if mask is not None and (mask[:, 1:] > mask[:, :-1]).any():
            raise JudgeSFTError(
                "sequence parallelism needs batches padded on the right: Ulysses attends by position_ids and drops the "
                "attention mask, so left padding would be attended to"
            )
        length = batch["input_ids"].shape[1]
        longest = torch.tensor([length], device=batch["input_ids"].device)
        # DeepSpeed's adapter all-gathers batches of different lengths; only gloo insists on equal sizes. Padding every
        # batch to the group's longest would waste ~28% of compute at sp_size 8 on HelpSteer2 lengths (token_efficiency).
        if dist.get_backend(self.group) == "gloo":
            dist.all_reduce(longest, op=dist.ReduceOp.MAX, group=self.group)
        padding = math.ceil(longest.item() / self.sp_size) * self.sp_size - length
        for key, value in batch.items():
            if torch.is_tensor(value) and value.dim() == 2 and value.shape[1] == length:
                batch[key] = F.pad(value, (0, padding), value=self.pad_values.get(key, 0))
        batch[PADDING_KEY] = padding
        return batch


class ShardedLoader(UlyssesSPDataLoaderAdapter):
    """DeepSpeed's adapter over `SPBatches`, with contiguous shards and the wrapped loader's set_epoch."""

    def __init__(self, loader, batches, **kwargs):
        super().__init__(batches, **kwargs)
        self.loader = loader

    def refill(self):
        super().refill()
        for micro_batch in self.micro_batches:
            for key, value in micro_batch.items():
                if torch.is_tensor(value):
                    micro_batch[key] = value.contiguous()

    def set_epoch(self, epoch):
        if hasattr(self.loader, "set_epoch"):
            self.loader.set_epoch(epoch)

    def skip_first(self, micro_batches):
        """Resume: skip micro batches on the first `next`, after the trainer's `set_epoch` chose the epoch's order."""
        self.to_skip = micro_batches
        return self

    def __next__(self):
        while getattr(self, "to_skip", 0):
            self.to_skip -= 1
            super().__next__()
        return super().__next__()
