"""A messages Parquet as training tokenises it, before truncation, so that any max_length can be asked about.

Training tokenises with `tokenization.tokenize_dataset` at the recipe's max_length; this runs its per-row function,
`tokenize_messages`, with no max_length and keeps, per row, the length and where the trained (label != -100) spans
lie. Cutting those at a max_length gives exactly what training keeps (tests/test_plan.py checks the parity).
"""

from dataclasses import dataclass

import numpy as np

from judge_sft.data.messages import read_conversations, resolve_train_on
from judge_sft.data.tokenization import IGNORE_INDEX, tokenize_messages
from judge_sft.train.chat_templates import training_chat_template


@dataclass(frozen=True)
class Truncation:
    """What tokenising at one max_length keeps."""

    max_length: int | None
    rows: int  # rows training keeps (at least one trained token left)
    rows_truncated: int  # of all trainable rows, those longer than max_length
    targets_cut: int  # of all trainable rows, those losing trained tokens
    rows_dropped: int  # of all trainable rows, those losing every trained token (training drops them)
    lengths: np.ndarray  # token counts of the rows kept, after truncation
    trained_tokens: int


@dataclass(frozen=True)
class TokenProfile:
    path: str
    train_on: str
    truncation_mode: str
    rows_in_file: int
    rows_without_target: int  # no trained token even untruncated: training drops them at any max_length
    num_tokens: np.ndarray  # per trainable row, untruncated
    span_starts: list  # per trainable row: start / end positions of its trained spans
    span_ends: list

    def at(self, max_length):
        lengths = self.num_tokens if max_length is None else np.minimum(self.num_tokens, max_length)
        trained = np.array(
            [self._trained_in_window(row, max_length) for row in range(len(self.num_tokens))], dtype=np.int64
        )
        total_trained = np.array([int((ends - starts).sum()) for starts, ends in zip(self.span_starts, self.span_ends)])
        kept = trained > 0
        return Truncation(
            max_length=max_length,
            rows=int(kept.sum()),
            rows_truncated=int((self.num_tokens > lengths).sum()),
            targets_cut=int((trained < total_trained).sum()),
            rows_dropped=int((~kept).sum()),
            lengths=lengths[kept],
            trained_tokens=int(trained.sum()),
        )

    def _trained_in_window(self, row, max_length):
        starts, ends = self.span_starts[row], self.span_ends[row]
        if max_length is None:
            low, high = 0, self.num_tokens[row]
        elif self.truncation_mode == "keep_start":
            low, high = 0, max_length
        else:  # keep_end
            low, high = max(0, self.num_tokens[row] - max_length), self.num_tokens[row]
        return int(np.clip(np.minimum(ends, high) - np.maximum(starts, low), 0, None).sum())


def trained_spans(labels):
    """Start and end positions of the runs of trained (label != -100) tokens."""
    trained = np.concatenate([[False], np.asarray(labels) != IGNORE_INDEX, [False]])
    edges = np.flatnonzero(np.diff(trained.astype(np.int8)))
    return edges[0::2], edges[1::2]


def profile_file(path, judge_args, training_args, tokenizer):
    """Tokenise `path` row by row with training's function and settings (training chat template, train_on,
    messages_key). Not through `datasets.map`: its fingerprint pickles the tokenizer, seconds per call."""
    conversations = read_conversations(path, judge_args.messages_key)
    train_on = resolve_train_on(judge_args.train_on, path)
    template = training_chat_template(tokenizer)
    num_tokens, span_starts, span_ends = [], [], []
    for messages in conversations:
        row = tokenize_messages(messages, tokenizer, template, None, train_on, training_args.truncation_mode)
        if row["num_loss_tokens"]:  # as tokenize_dataset: a row without a trained token is dropped
            starts, ends = trained_spans(row["labels"])
            num_tokens.append(row["num_tokens"])
            span_starts.append(starts)
            span_ends.append(ends)
    return TokenProfile(
        path=str(path),
        train_on=train_on,
        truncation_mode=training_args.truncation_mode,
        rows_in_file=len(conversations),
        rows_without_target=len(conversations) - len(num_tokens),
        num_tokens=np.asarray(num_tokens, dtype=np.int64),
        span_starts=span_starts,
        span_ends=span_ends,
    )
