"""judge-sft: supervised fine-tuning of judge models on chat data, on top of TRL + DeepSpeed."""

__version__ = "0.1.0"
