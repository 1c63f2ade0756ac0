"""The small-vocabulary tiny model the launch tests train: the real Qwen3 template, added tokens and masks over a
BPE trained on the bundled sample, built the same every time."""

import json

import pytest
from conftest import MULTI_TURN, SINGLE_TURN

from judge_sft.data.tokenization import IGNORE_INDEX, tokenize_messages
from judge_sft.tiny_model import write_small_vocab_tokenizer
from judge_sft.train.chat_templates import training_chat_template


@pytest.fixture(scope="module")
def small_tokenizer(small_vocab_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(small_vocab_model_dir)


def trained_text(tokenizer, messages, train_on):
    row = tokenize_messages(messages, tokenizer, training_chat_template(tokenizer), None, train_on)
    return tokenizer.decode([label for label in row["labels"] if label != IGNORE_INDEX])


def test_two_builds_write_the_same_tokenizer_byte_for_byte(tmp_path, small_vocab_model_dir):
    write_small_vocab_tokenizer(tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        assert (tmp_path / name).read_bytes() == (small_vocab_model_dir / name).read_bytes(), name


def test_the_vocabulary_is_small_and_the_model_head_matches_it(small_tokenizer, small_vocab_model_dir):
    config = json.loads((small_vocab_model_dir / "config.json").read_text())
    assert config["vocab_size"] == len(small_tokenizer) == 1777
    assert config["eos_token_id"] == small_tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert (
        config["pad_token_id"] == small_tokenizer.pad_token_id == small_tokenizer.convert_tokens_to_ids("<|endoftext|>")
    )


def test_every_qwen3_added_token_is_one_token_with_the_same_string_and_kind(small_tokenizer, qwen3_tokenizer):
    real = {token.content: token.special for token in qwen3_tokenizer.added_tokens_decoder.values()}
    small = {}
    for content in real:
        ids = small_tokenizer(content, add_special_tokens=False)["input_ids"]
        assert small_tokenizer.convert_ids_to_tokens(ids) == [content]
        small[content] = small_tokenizer.added_tokens_decoder[ids[0]].special
    assert small == real and len(real) == 26
    assert small_tokenizer.special_tokens_map == qwen3_tokenizer.special_tokens_map
    assert small_tokenizer.chat_template == qwen3_tokenizer.chat_template


@pytest.mark.parametrize("messages", [SINGLE_TURN, MULTI_TURN], ids=["single", "multi"])
def test_the_training_template_renders_and_masks_the_same_text_as_with_the_real_tokenizer(
    small_tokenizer, qwen3_tokenizer, messages
):
    assert training_chat_template(small_tokenizer) == training_chat_template(qwen3_tokenizer)
    rendered = small_tokenizer.apply_chat_template(messages, tokenize=False)
    assert rendered == qwen3_tokenizer.apply_chat_template(messages, tokenize=False)
    assert small_tokenizer.decode(small_tokenizer(rendered)["input_ids"]) == rendered
    for train_on in ("final", "all"):
        assert trained_text(small_tokenizer, messages, train_on) == trained_text(qwen3_tokenizer, messages, train_on)
    assert trained_text(small_tokenizer, messages, "final").startswith("<think>\n\n</think>\n\n")
