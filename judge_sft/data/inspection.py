"""What training sees of each row (`judge-sft inspect-data`): tokens, truncation and the trained text, through
training's own tokenise-and-mask function."""

import numpy as np

from judge_sft.data.tokenization import (
    IGNORE_INDEX,
    INVALID,
    NO_ASSISTANT,
    count_drops,
    describe_drops,
    tokenize_messages,
)
from judge_sft.data.validate import check_messages
from judge_sft.errors import JudgeSFTError

PERCENTILES = (50, 90, 99)


def inspect_row(index, messages, tokenizer, chat_template, max_length, train_on, truncation_mode, where):
    try:
        tokenized = tokenize_messages(messages, tokenizer, chat_template, max_length, train_on, truncation_mode)
    except Exception as error:  # jinja, tokenizer and type errors alike: name the row, not a traceback
        raise JudgeSFTError(
            f"{where} row {index}: cannot tokenise ({type(error).__name__}: {str(error).splitlines()[0]})"
        )
    trained = [token for token in tokenized["labels"] if token != IGNORE_INDEX]
    report = {
        "row": index,
        "num_tokens": tokenized["num_tokens"],
        "num_loss_tokens": tokenized["num_loss_tokens"],
        "truncated": tokenized["truncated"],
        "dropped": tokenized["drop_reason"],  # why training drops the row (no trained token left), or None
        "loss_text": decode(tokenizer, trained),
    }
    return report, tokenized


def decode(tokenizer, token_ids):
    return tokenizer.decode(token_ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def render(tokenized, tokenizer, markers):
    """The row's text with each run of trained tokens wrapped in markers."""
    pieces, run, run_trained = [], [], None
    for token, label in zip(tokenized["input_ids"], tokenized["labels"]):
        trained = label != IGNORE_INDEX
        if run and trained != run_trained:
            pieces.append(wrap(decode(tokenizer, run), markers if run_trained else None))
            run = []
        run.append(token)
        run_trained = trained
    if run:
        pieces.append(wrap(decode(tokenizer, run), markers if run_trained else None))
    return "".join(pieces)


def wrap(text, markers):
    return f"{markers[0]}{text}{markers[1]}" if markers else text


def header(report):
    state = "TRUNCATED" if report["truncated"] else "not truncated"
    if report["dropped"]:
        state += f", DROPPED ({report['dropped']})"
    return f"=== row {report['row']}: {report['num_tokens']} tokens, {report['num_loss_tokens']} trained, {state}"


def summary(reports, max_length, train_on):
    if not reports:
        return ["no rows"]
    tokens = np.array([report["num_tokens"] for report in reports])
    trained = np.array([report["num_loss_tokens"] for report in reports])
    truncated = sum(report["truncated"] for report in reports)

    def spread(values):
        cuts = "  ".join(f"p{p} {np.percentile(values, p):.0f}" for p in PERCENTILES)
        return f"mean {values.mean():.0f}  {cuts}  max {values.max()}"

    return [
        f"{len(reports)} row{'s' * (len(reports) != 1)}, loss on {train_on} assistant message(s), max_length {max_length}",
        f"tokens:         {spread(tokens)}",
        f"trained tokens: {spread(trained)}",
        f"truncated: {truncated} of {len(reports)} rows ({truncated / len(reports):.1%})",
        f"dropped: {describe_drops(count_drops(report['dropped'] for report in reports))}",
    ]


def invalid_row_problem(report, messages):
    """'row N: <first problem>' when training drops the row for its data (not for truncation), else None."""
    if report["dropped"] in (NO_ASSISTANT, INVALID):
        return f"row {report['row']}: {check_messages(messages)[0]}"
    return None


def invalid_rows_error(path, reports, first_problem):
    invalid = sum(report["dropped"] in (NO_ASSISTANT, INVALID) for report in reports)
    return JudgeSFTError(
        f"{path}: {invalid} of {len(reports)} rows cannot be trained ({first_problem}); see `judge-sft validate-data`"
    )
