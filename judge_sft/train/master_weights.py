"""`master_weights: bf16_kahan`: DeepSpeed keeps ZeRO-3's master weights, gradients and optimizer states in bf16
(its `bf16.bf16_master_weights_and_grads` and `bf16.bf16_optimizer_states`), and torch-optimi's AdamW adds a bf16 Kahan
compensation buffer that carries the part of each update bf16 cannot hold, instead of dropping it. 12 bytes per
parameter on the GPU instead of 16; docs/planning.md#memory has the measurements."""

from judge_sft.errors import JudgeSFTError
from judge_sft.train.launch import check_master_weights

DEEPSPEED_BF16_OPTIONS = {"bf16_master_weights_and_grads": True, "bf16_optimizer_states": True}


def configure(judge_args, training_args):
    """Check the recipe against the launch, set DeepSpeed's bf16 options, and return the trainer's
    `optimizer_cls_and_kwargs` (None: transformers' own AdamW, with DeepSpeed's fp32 master weights)."""
    plugin = training_args.deepspeed_plugin
    deepspeed_config = plugin.deepspeed_config if plugin else None
    check_master_weights(judge_args, training_args.bf16, deepspeed_config, training_args.optim)
    if judge_args.master_weights == "fp32":
        return None
    require_deepspeed_options()
    deepspeed_config["bf16"] = {**deepspeed_config.get("bf16", {}), "enabled": True, **DEEPSPEED_BF16_OPTIONS}
    return kahan_adamw(training_args)


def kahan_adamw(training_args):
    """torch-optimi's AdamW with the recipe's hyperparameters; Kahan summation on (bf16 parameters)."""
    import optimi

    kwargs = {
        "lr": training_args.learning_rate,
        "betas": (training_args.adam_beta1, training_args.adam_beta2),
        "eps": training_args.adam_epsilon,
        "kahan_sum": True,
    }
    return optimi.AdamW, kwargs


def require_deepspeed_options():
    import deepspeed
    from deepspeed.runtime.precision_config import DeepSpeedBF16Config

    if not set(DEEPSPEED_BF16_OPTIONS) <= set(DeepSpeedBF16Config.model_fields):
        raise JudgeSFTError(
            f"recipe: master_weights bf16_kahan needs DeepSpeed's bf16 master-weight options, which DeepSpeed "
            f"{deepspeed.__version__} lacks; upgrade DeepSpeed or set `master_weights: fp32`"
        )
