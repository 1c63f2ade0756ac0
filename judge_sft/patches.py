"""Every change judge-sft makes to another library's behaviour, in one place.

Nothing here runs on import: run.py calls `install()` at start-up. Each patch names what it works around and the
upstream version it was checked against; tests/test_patches.py fails when an upgrade changes the patched code
(`PATCHED_SOURCES`), naming the patch to revisit.
"""

import contextlib
import functools
import warnings

import torch

CHECKED_AGAINST = {"transformers": "5.24.0", "accelerate": "1.15.0", "deepspeed": "0.19.8", "trl": "1.16.0"}

# "module:qualified name" of each upstream object a patch replaces or relies on -> sha256 of its source, as checked.
PATCHED_SOURCES = {
    "transformers.integrations.integration_utils:rewrite_logs": "c0d6c5a08ddd6d6d",
    "accelerate.data_loader:skip_first_batches": "c3e05a215cb63cad",
    "deepspeed.runtime.sequence_parallel.ulysses_sp:UlyssesSPAttentionHF.forward": "c4832fb77b88faf8",
    # not replaced, but ShardedLoader (train/sequence_parallel.py) subclasses these internals
    "deepspeed.runtime.sequence_parallel.ulysses_sp:UlyssesSPDataLoaderAdapter.refill": "4abbadb7d8275e93",
    "deepspeed.runtime.sequence_parallel.ulysses_sp:UlyssesSPDataLoaderAdapter.__next__": "add256eee90f73f5",
    # not replaced: outside_zero3_init swaps the weak reference these read
    "transformers.integrations.deepspeed:is_deepspeed_zero3_enabled": "3e3f9ededb3d709a",
    "transformers.integrations.deepspeed:unset_hf_deepspeed_config": "088d722afab96382",
    "deepspeed.runtime.compiler:compile": "41ba17e70620eebc",
}
PATCH_OF = {  # which patch to revisit when the source above changes
    "transformers.integrations.integration_utils:rewrite_logs": "cookbook_metric_names",
    "accelerate.data_loader:skip_first_batches": "skip_batches_of_sharded_loader",
    "deepspeed.runtime.sequence_parallel.ulysses_sp:UlyssesSPAttentionHF.forward": "ulysses_attention_for_judge_sft",
    "deepspeed.runtime.sequence_parallel.ulysses_sp:UlyssesSPDataLoaderAdapter.refill": "ShardedLoader",
    "deepspeed.runtime.sequence_parallel.ulysses_sp:UlyssesSPDataLoaderAdapter.__next__": "ShardedLoader",
    "transformers.integrations.deepspeed:is_deepspeed_zero3_enabled": "outside_zero3_init",
    "transformers.integrations.deepspeed:unset_hf_deepspeed_config": "outside_zero3_init",
    "deepspeed.runtime.compiler:compile": "compile_deepspeed_kernels_on_first_call",
}


def install():
    """Install every patch (idempotent)."""
    cookbook_metric_names()
    skip_batches_of_sharded_loader()
    ulysses_attention_for_judge_sft()
    each_warning_once()
    compile_deepspeed_kernels_on_first_call()


def cookbook_metric_names():
    """transformers' reporters (wandb, tensorboard, trackio, ...) share `rewrite_logs`, which files `eval_*` under
    `eval/` and the learning rate as `train/learning_rate`; the cookbook's dashboards read `val/loss` and `train/lr`."""
    from transformers.integrations import integration_utils

    stock = integration_utils.rewrite_logs
    if getattr(stock, "judge_sft", False):
        return

    @functools.wraps(stock)
    def rewrite_logs(logs):
        return cookbook_renamed(stock(logs))

    rewrite_logs.judge_sft = True
    integration_utils.rewrite_logs = rewrite_logs


def cookbook_renamed(logs):
    """transformers' `rewrite_logs` result under the cookbook's names."""
    return {
        "train/lr" if key == "train/learning_rate" else key.replace("eval/", "val/", 1): value
        for key, value in logs.items()
    }


def cookbook_names(logs):
    """A Trainer log under the names the reporters get, patched or not: the console uses them too (not a patch: the
    Trainer's progress callbacks are replaced in train/trainer.py)."""
    from transformers.integrations import integration_utils

    stock = getattr(integration_utils.rewrite_logs, "__wrapped__", integration_utils.rewrite_logs)
    return cookbook_renamed(stock(logs))


def skip_batches_of_sharded_loader():
    """Resuming mid-epoch, transformers skips the trained batches with accelerate's `skip_first_batches`, which
    rebuilds a plain DataLoader from the loader's sampler; DeepSpeed's Ulysses adapter has none (accelerate#2016 is
    the same family of resume-order bugs). A ShardedLoader skips its own micro batches instead."""
    import transformers.trainer

    stock = transformers.trainer.skip_first_batches
    if getattr(stock, "judge_sft", False):
        return

    @functools.wraps(stock)
    def skip_first_batches(loader, num_batches=0):
        from judge_sft.train.sequence_parallel import ShardedLoader

        if isinstance(loader, ShardedLoader):
            return loader.skip_first(num_batches)
        return stock(loader, num_batches)

    skip_first_batches.judge_sft = True
    transformers.trainer.skip_first_batches = skip_first_batches


def ulysses_attention_for_judge_sft():
    """Wrap DeepSpeed's UlyssesSPAttentionHF.forward for judge-sft's batches:
    - SP in eval too: accelerate registers it with `disable_in_eval` (DeepSpeed#7823, transformers#43517), but
      judge-sft shards eval batches as well, so long-context val/loss fits in memory;
    - the batch size of each call (accelerate fixes the train micro batch; a padding-free row is one, eval differs);
    - sdpa gets the block-causal mask back (`sdpa_with_document_mask`)."""
    from deepspeed.runtime.sequence_parallel.ulysses_sp import UlyssesSPAttentionHF
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from judge_sft.train.sequence_parallel import sdpa_with_document_mask

    stock = UlyssesSPAttentionHF.forward
    if getattr(stock, "judge_sft", False):
        return

    @functools.wraps(stock)
    def forward(self, module, query, key, value, attention_mask, *args, **kwargs):
        self.disable_in_eval = False
        if self.attn is sdpa_attention_forward:
            self.attn = sdpa_with_document_mask
        batch_size = query.shape[0]
        if batch_size != self.batch_size:
            self.batch_size = batch_size
            for name in ("required_query_shape", "required_key_value_shape", "required_context_shape"):
                shape = getattr(self, name)
                setattr(self, name, torch.Size([shape[0], batch_size, *shape[2:]]))
        return stock(self, module, query, key, value, attention_mask, *args, **kwargs)

    forward.judge_sft = True
    UlyssesSPAttentionHF.forward = forward


def each_warning_once():
    """Python shows a warning once per place it comes from, but forgets what it showed whenever the warning filters
    change (every `catch_warnings` block): torch's all_gather_into_tensor FutureWarning, raised from one line, came 98
    times in `make demo`'s 12 steps. Show each warning (category and text) once per process."""
    stock = warnings.showwarning
    if getattr(stock, "judge_sft", False):
        return
    shown = set()

    @functools.wraps(stock)
    def showwarning(message, category, filename, lineno, file=None, line=None):
        if (category, str(message)) not in shown:
            shown.add((category, str(message)))
            stock(message, category, filename, lineno, file, line)

    showwarning.judge_sft = True
    warnings.showwarning = showwarning


def compile_deepspeed_kernels_on_first_call():
    """DeepSpeed decorates its Muon kernels with `@compiler.compile()`, i.e. torch.compile at import, and its ZeRO
    optimizers import Muon at every start-up to ask whether the optimizer is one: that imports inductor, ~0.35 s of
    CPU per process after transformers' own imports (a 2-process CPU launch: 12.5 -> 11.8 CPU s), for kernels
    judge-sft never calls. Compile on the first call instead: torch.compile does not compile before it either."""
    from deepspeed.runtime import compiler

    stock = compiler.compile
    if getattr(stock, "judge_sft", False):
        return

    @functools.wraps(stock)
    def compile():
        decorate = stock()

        def on_first_call(function):
            compiled = None

            @functools.wraps(function)
            def call(*args, **kwargs):
                nonlocal compiled
                if compiled is None:
                    compiled = decorate(function)
                return compiled(*args, **kwargs)

            return call

        return on_first_call

    compile.judge_sft = True
    compiler.compile = compile


@contextlib.contextmanager
def outside_zero3_init():
    """Build a model the plain way inside a ZeRO-3 launch: plan's meta-device shape and the attention probe's two-layer
    model are never trained by DeepSpeed. There SFTConfig has registered transformers' DeepSpeed config, so
    `from_config` enters `deepspeed.zero.Init`: on the meta device it fails ("Cannot copy out of meta tensor"), and on
    one rank its parameter broadcasts collide with the other ranks' collectives. accelerate's
    `zero3_init_context_manager(enable=False)` registers the same config again; unsetting transformers' weak reference
    to it for the build, and putting it back, does not."""
    from transformers.integrations import deepspeed

    registered = deepspeed._hf_deepspeed_config_weak_ref
    deepspeed.unset_hf_deepspeed_config()
    try:
        yield
    finally:
        deepspeed._hf_deepspeed_config_weak_ref = registered
