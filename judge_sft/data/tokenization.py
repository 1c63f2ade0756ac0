"""Chat messages -> token ids and labels: the one place training, evaluation and `inspect-data` tokenise and mask.

Loss is on assistant tokens only (labels -100 elsewhere). With `train_on="final"` only the last assistant message is
trained (HelpSteer2 rates only the final response; earlier assistant turns are context). Rows are truncated on the
right at `max_length`; a row left with no trained token is dropped and counted under its reason (DROP_REASONS), never
trained with zero loss tokens.
"""

import hashlib
from collections import Counter

from judge_sft.data.validate import check_messages

IGNORE_INDEX = -100
NO_ASSISTANT, INVALID, TRUNCATED, UNTRAINED = "no assistant message", "invalid row", "truncation", "nothing marked"
DROP_REASONS = (NO_ASSISTANT, INVALID, TRUNCATED, UNTRAINED)  # UNTRAINED: the template marks no token for loss
CACHE_VERSION = 2  # of tokenize_messages' output: the datasets cache of tokenised rows is keyed on it


def keep_last_span(mask):
    """Zero every 1 of a 0/1 mask except the last contiguous run of 1s (the final assistant message)."""
    end = len(mask)
    while end > 0 and not mask[end - 1]:
        end -= 1
    start = end
    while start > 0 and mask[start - 1]:
        start -= 1
    return [0] * start + [1] * (end - start) + [0] * (len(mask) - end)


def drop_reason(messages, trained_untruncated, trained):
    """Why a row is dropped (one of DROP_REASONS, the first that applies), or None when it has a trained token."""
    if trained:
        return None
    if not any(isinstance(message, dict) and message.get("role") == "assistant" for message in messages or []):
        return NO_ASSISTANT
    if check_messages(messages):
        return INVALID
    return TRUNCATED if trained_untruncated else UNTRAINED


def count_drops(reasons):
    """{reason: rows} in DROP_REASONS order, reasons with no row left out."""
    counts = Counter(reason for reason in reasons if reason)
    return {reason: counts[reason] for reason in DROP_REASONS if counts[reason]}


def describe_drops(dropped):
    """'no assistant message 2, truncation 1', or 'none'."""
    return ", ".join(f"{reason} {count}" for reason, count in dropped.items()) or "none"


def tokenize_messages(messages, tokenizer, chat_template, max_length, train_on, truncation_mode="keep_start"):
    """One conversation -> {input_ids, labels, num_tokens, num_loss_tokens, truncated, drop_reason}.

    `truncation_mode` is SFTConfig's: "keep_start" cuts on the right (the cookbook's `truncation: right`)."""
    encoded = tokenizer.apply_chat_template(
        messages,
        chat_template=chat_template,
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    input_ids = list(encoded["input_ids"])
    mask = list(encoded["assistant_masks"])
    if train_on == "final":
        mask = keep_last_span(mask)
    trained_untruncated = sum(mask)
    truncated = max_length is not None and len(input_ids) > max_length
    if truncated:
        kept = slice(None, max_length) if truncation_mode == "keep_start" else slice(-max_length, None)
        input_ids, mask = input_ids[kept], mask[kept]
    labels = [token if trained else IGNORE_INDEX for token, trained in zip(input_ids, mask)]
    return {
        "input_ids": input_ids,
        "labels": labels,
        "num_tokens": len(input_ids),
        "num_loss_tokens": sum(mask),
        "truncated": truncated,
        "drop_reason": drop_reason(messages, trained_untruncated, sum(mask)),
    }


def tokenize_prompt(prompt, tokenizer):
    """A prompt (a conversation's messages before the answer) -> the token ids a judge completes, as inference renders
    them: the tokenizer's chat template with the generation prompt and no other option. Training's trained span starts
    right after `<|im_start|>assistant\n` and holds the model's own (empty) `<think>` block, so `enable_thinking` is
    left unset: these ids are exactly the context tokens of the same conversation in `tokenize_messages`."""
    encoded = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=True)
    return list(encoded["input_ids"])


def tokenize_dataset(
    dataset,
    tokenizer,
    chat_template,
    max_length,
    train_on,
    messages_key="messages",
    truncation_mode="keep_start",
    num_proc=None,
):
    """Tokenise a datasets.Dataset of conversations. Returns (trainable rows, {drop reason: rows dropped})."""
    settings = (chat_template, max_length, train_on, messages_key, truncation_mode)
    fingerprint = cache_fingerprint(dataset, tokenizer, settings)
    tokenized = dataset.map(
        lambda row: tokenize_messages(
            row[messages_key], tokenizer, chat_template, max_length, train_on, truncation_mode
        ),
        remove_columns=dataset.column_names,
        num_proc=num_proc,
        desc="Tokenizing",
        new_fingerprint=fingerprint,
    )
    trainable = tokenized.filter(
        lambda row: row["num_loss_tokens"] > 0,
        num_proc=num_proc,
        desc="Dropping rows with no trained token",
        new_fingerprint=f"{fingerprint}-trainable",
    )
    return trainable.remove_columns("drop_reason"), count_drops(tokenized["drop_reason"])


def cache_fingerprint(dataset, tokenizer, settings):
    """What the datasets cache keys the tokenised rows on. datasets would otherwise pickle and hash the closure, tokenizer
    included, on every call (1-8 s per file at every start); the tokenizer's serialised form is hashed instead."""
    digest = hashlib.sha256(dataset._fingerprint.encode())
    digest.update(tokenizer.backend_tokenizer.to_str().encode())
    digest.update(repr((settings, CACHE_VERSION)).encode())
    return digest.hexdigest()[:32]
