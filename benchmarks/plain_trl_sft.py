"""The baseline for benchmarks/overhead.py: the same job as a plain TRL script, as a TRL user would write it.

accelerate launch --config_file accelerate_configs/cpu_zero3_2proc.yaml benchmarks/plain_trl_sft.py recipe.yaml
"""

import sys

import torch
from datasets import load_dataset
from transformers import AutoTokenizer
from trl import ModelConfig, SFTConfig, SFTTrainer, TrlParser
from trl.chat_template_utils import qwen3_training_chat_template

from judge_sft.train.arguments import JudgeArguments

if __name__ == "__main__":
    script_args, training_args, model_args = TrlParser((JudgeArguments, SFTConfig, ModelConfig)).parse_args_and_config(
        ["--config", sys.argv[1], *sys.argv[2:]]
    )
    files = {"train": script_args.train_file, **({"val": script_args.val_file} if script_args.val_file else {})}
    data = load_dataset("parquet", data_files=files)
    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path)
    tokenizer.chat_template = qwen3_training_chat_template  # TRL swaps it in too; set here so both runs render alike
    training_args.assistant_only_loss = True
    if training_args.padding_free:
        training_args.max_length = None  # TRL refuses max_length with padding_free; the benchmark data fits
    training_args.model_init_kwargs = {"attn_implementation": model_args.attn_implementation}
    trainer = SFTTrainer(
        model=model_args.model_name_or_path,
        args=training_args,
        train_dataset=data["train"].select_columns(["messages"]),
        eval_dataset=data["val"].select_columns(["messages"]) if "val" in data else None,
        processing_class=tokenizer,
    )
    trainer.train()
    if torch.cuda.is_available():  # as judge_sft/run.py logs it (benchmarks/gpu_throughput.py reads both)
        print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GB allocated (GB = 2^30 bytes)")
    trainer.save_model(training_args.output_dir)
