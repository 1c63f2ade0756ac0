"""Chat messages -> token ids and labels: the one place training, evaluation and `inspect-data` tokenise and mask.

Loss is on assistant tokens only (labels -100 elsewhere). With `train_on="final"` only the last assistant message is
trained (HelpSteer2 rates only the final response; earlier assistant turns are context). Rows are truncated on the
right at `max_length`; a row left with no trained token is dropped and counted, never trained with zero loss tokens.
"""

import hashlib

IGNORE_INDEX = -100


def keep_last_span(mask):
    """Zero every 1 of a 0/1 mask except the last contiguous run of 1s (the final assistant message)."""
    end = len(mask)
    while end > 0 and not mask[end - 1]:
        end -= 1
    start = end
    while start > 0 and mask[start - 1]:
        start -= 1
    return [0] * start + [1] * (end - start) + [0] * (len(mask) - end)


def tokenize_messages(messages, tokenizer, chat_template, max_length, train_on, truncation_mode="keep_start"):
    """One conversation -> {input_ids, labels, num_tokens, num_loss_tokens, truncated}.

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
    }


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
    """Tokenise a datasets.Dataset of conversations. Returns (trainable dataset, number of rows dropped because
    truncation cut off every trained token)."""
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
    return trainable, len(tokenized) - len(trainable)


def cache_fingerprint(dataset, tokenizer, settings):
    """What the datasets cache keys the tokenised rows on. datasets would otherwise pickle and hash the closure, tokenizer
    included, on every call (1-8 s per file at every start); the tokenizer's serialised form is hashed instead."""
    digest = hashlib.sha256(dataset._fingerprint.encode())
    digest.update(tokenizer.backend_tokenizer.to_str().encode())
    digest.update(repr(settings).encode())
    return digest.hexdigest()[:32]
