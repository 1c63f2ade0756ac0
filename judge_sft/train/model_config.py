"""The base model's config.json, read once the same way by run.py's checks, doctor and plan."""

from judge_sft.errors import JudgeSFTError


def load_model_config(model_args):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(model_args.model_name_or_path, revision=model_args.model_revision)
    except (OSError, ValueError) as error:
        reason = str(error).splitlines()[0]
        raise JudgeSFTError(f"{model_args.model_name_or_path}: cannot read the model's config.json ({reason})")
