"""A LoRA run's adapters merged into its base model (PEFT's merge_and_unload), saved as a plain model that any server
loads without PEFT (`transformers serve`, vLLM without --enable-lora), with the run's inference chat template."""

import json
import os
import shutil
import tempfile
from pathlib import Path

from judge_sft.errors import JudgeSFTError, one_line
from judge_sft.train.model_config import require_model_source

ADAPTER_CONFIG = "adapter_config.json"


def default_output(adapter_dir):
    """OUTPUT_DIR-merged, beside the run (inside it, `judge-sft push OUTPUT_DIR` would upload it with the adapters)."""
    adapter_dir = Path(adapter_dir).absolute()
    return adapter_dir.with_name(f"{adapter_dir.name}-merged")


def merge_adapters(adapter_dir, output=None):
    """Merge the adapters of `adapter_dir` (a LoRA run's output directory or checkpoint) into the base model its
    adapter_config.json names; write the model and tokenizer to `output` whole or not at all. Returns
    (output, base model)."""
    adapter_dir = Path(adapter_dir)
    config_path = adapter_dir / ADAPTER_CONFIG
    if not config_path.is_file():
        raise JudgeSFTError(
            f"{adapter_dir}: no {ADAPTER_CONFIG}: not the output or checkpoint directory of a LoRA run (a full "
            "fine-tune is served as it is)"
        )
    output = Path(output) if output else default_output(adapter_dir)
    if output.exists():
        raise JudgeSFTError(f"{output}: already exists; name another --output")
    base_model = json.loads(config_path.read_text())["base_model_name_or_path"]
    require_model_source(base_model)
    model, tokenizer = merged_model(adapter_dir)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent)
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        os.replace(staging, output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output, base_model


def merged_model(adapter_dir):
    """(the merged model in the base model's dtype, the run's tokenizer with its inference chat template)."""
    from peft import AutoPeftModelForCausalLM

    from judge_sft.train.chat_templates import load_tokenizer
    from judge_sft.train.inference_template import has_training_tags

    tokenizer = load_tokenizer(str(adapter_dir))
    if has_training_tags(tokenizer.chat_template):  # a judge saved before judge-sft removed them
        raise JudgeSFTError(
            f"{adapter_dir}: its chat template has the training-only {{% generation %}} tags; run "
            f"`judge-sft fix-template {adapter_dir}` first"
        )
    try:
        model = AutoPeftModelForCausalLM.from_pretrained(adapter_dir, dtype="auto")
    except (OSError, ValueError, RuntimeError) as error:
        raise JudgeSFTError(f"{adapter_dir}: cannot load the adapters on their base model ({one_line(error)})")
    return model.merge_and_unload(), tokenizer
