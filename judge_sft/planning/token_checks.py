"""doctor's token-level checks: special tokens against the model's embedding, what max_length cuts, how many tokens
carry loss."""

import os
from dataclasses import dataclass

PASS, WARN, FAIL = "pass", "warn", "fail"
TARGETS_CUT_FAIL = 0.05  # rows losing trained tokens to max_length: a judge trained on cut verdicts never learns them
TRAINED_TOKENS_WARN = 0.01


@dataclass(frozen=True)
class Check:
    status: str
    name: str
    message: str
    skippable: bool = True  # training could go on despite it (`skip_doctor`); False: training would fail the same way

    def line(self):
        return f"{self.status.upper():4}  {self.name}: {self.message}"


def end_of_turn_ids(tokenizer, model_config):
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    configured = getattr(model_config, "eos_token_id", None) if model_config is not None else None
    ids.update(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    return ids


def check_special_tokens(tokenizer, model_config, conversations):
    checks = []
    vocab_rows = model_config.get_text_config().vocab_size if model_config is not None else None
    if vocab_rows is None:
        checks.append(Check(WARN, "vocabulary", "cannot read the model's config.json: embedding size unchecked"))
    elif len(tokenizer) > vocab_rows:
        message = f"the tokenizer has {len(tokenizer)} tokens, the model's embedding {vocab_rows} rows"
        checks.append(Check(FAIL, "vocabulary", message))
    else:
        checks.append(Check(PASS, "vocabulary", f"{len(tokenizer)} tokens fit the model's {vocab_rows} embedding rows"))
    if tokenizer.pad_token is None:
        checks.append(Check(WARN, "pad token", f"none: TRL pads with the eos token {tokenizer.eos_token!r}"))
    elif vocab_rows is not None and tokenizer.pad_token_id >= vocab_rows:
        checks.append(
            Check(FAIL, "pad token", f"{tokenizer.pad_token!r} has id {tokenizer.pad_token_id}, outside the embedding")
        )
    else:
        message = f"{tokenizer.pad_token!r} (id {tokenizer.pad_token_id}); padding is never trained"
        checks.append(Check(PASS, "pad token", message))
    specials = [token for token in tokenizer.all_special_tokens if token]
    rows = [
        row
        for row, messages in enumerate(conversations or [])
        if any(special in message["content"] for message in messages for special in specials)
    ]
    if rows:
        checks.append(
            Check(
                WARN,
                "special tokens in text",
                f"{len(rows)} rows (first: row {rows[0]}) contain special-token "
                "text, which tokenises as the control token itself",
            )
        )
    else:
        checks.append(Check(PASS, "special tokens in text", "no message contains special-token text"))
    return checks


def check_tokens(profile, max_length):
    """Truncation and trained-token fraction of one file, at the recipe's max_length."""
    cut = profile.at(max_length)
    trainable = len(profile.num_tokens)
    name = f"truncation {os.path.basename(profile.path)}"
    longest = int(profile.num_tokens.max()) if trainable else 0
    cut_fraction = cut.targets_cut / trainable if trainable else 0.0
    dropped = f"{cut.rows_dropped} lose all of them and are dropped" if cut.rows_dropped else "none loses all of them"
    detail = (
        f"{cut.targets_cut} of {trainable} rows ({cut_fraction:.1%}) lose trained tokens at max_length {max_length} "
        f"({dropped}); longest row {longest} tokens"
    )
    if not cut.targets_cut:
        detail = f"no row loses trained tokens at max_length {max_length}; longest row {longest} tokens"
    status = PASS if not cut.targets_cut else WARN if cut_fraction < TARGETS_CUT_FAIL else FAIL
    checks = [Check(status, name, detail)]
    if profile.rows_without_target:
        checks.append(
            Check(
                WARN,
                f"targets {os.path.basename(profile.path)}",
                f"{profile.rows_without_target} rows have no trained token at any length (dropped)",
            )
        )
    tokens = int(cut.lengths.sum())
    fraction = cut.trained_tokens / tokens if tokens else 0.0
    status = FAIL if not cut.trained_tokens else WARN if fraction < TRAINED_TOKENS_WARN else PASS
    checks.append(
        Check(
            status,
            f"trained tokens {os.path.basename(profile.path)}",
            f"{fraction:.1%} of {tokens:,} tokens carry loss (train_on {profile.train_on})",
        )
    )
    return checks


def model_positions(model_config):
    """The model's max_position_embeddings; None when its config cannot be read or names none."""
    return getattr(model_config.get_text_config(), "max_position_embeddings", None) if model_config else None


def positions_problem(model_config, max_length):
    """Why max_length is beyond the positions the model was built for, or None (also when either is unknown)."""
    positions = model_positions(model_config)
    if positions is None or max_length is None or max_length <= positions:
        return None
    return (
        f"max_length {max_length} is above the model's max_position_embeddings {positions}: positions past "
        f"{positions} were never trained; set max_length {positions} or less, or extend the context (rope_scaling)"
    )


def check_positions(model_config, max_length):
    positions = model_positions(model_config)
    if positions is None:
        return Check(WARN, "positions", "cannot read the model's max_position_embeddings: max_length unchecked")
    problem = positions_problem(model_config, max_length)
    if problem:
        return Check(WARN, "positions", problem)
    return Check(PASS, "positions", f"max_length {max_length} within the model's max_position_embeddings {positions}")
