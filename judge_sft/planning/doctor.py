"""The cookbook's "loss not decreasing" checks, before any GPU hour (`judge-sft doctor`, and run.py at start-up).

An attention backend that runs here, data that validates, a chat template that masks what `train_on` asks for, sane
special tokens, what max_length cuts, and how many tokens carry loss: one PASS / WARN / FAIL check each. run.py stops on a failure unless `skip_doctor`.
"""

import logging
import os
import shutil

from trl.chat_template_utils import has_generation_markers

from judge_sft.data.messages import read_conversations, resolve_train_on
from judge_sft.data.token_profile import profile_file
from judge_sft.data.tokenization import IGNORE_INDEX, tokenize_messages
from judge_sft.data.validate import check_messages
from judge_sft.errors import JudgeSFTError
from judge_sft.planning.token_checks import (
    FAIL,
    PASS,
    WARN,
    Check,
    check_positions,
    check_special_tokens,
    check_tokens,
    end_of_turn_ids,
)
from judge_sft.train import attention
from judge_sft.train.chat_templates import (
    KNOWN_STOCK_TEMPLATES,
    recipe_tokenizer,
    saved_by_judge_sft,
    template_sha256,
    training_chat_template,
)
from judge_sft.train.inference_template import check_inference_template, inference_template
from judge_sft.train.launch import decided_by_main_process
from judge_sft.train.model_config import load_model_config

logger = logging.getLogger("judge_sft")

SAMPLE_ROWS = 8  # rows whose rendering is checked token by token
MIN_DISTINCT_CHARS = 20  # user text shorter than this may legitimately reappear in an answer


def check_data(path, messages_key):
    """(check, conversations or None): validate-data's rules, row by row."""
    name = f"data {os.path.basename(path)}"
    try:
        conversations = read_conversations(path, messages_key)
    except JudgeSFTError as error:
        return Check(FAIL, name, str(error), skippable=False), None
    if not conversations:
        return Check(FAIL, name, f"{path}: no rows", skippable=False), None
    invalid = [(row, problems) for row, problems in enumerate(map(check_messages, conversations)) if problems]
    if invalid:
        row, problems = invalid[0]
        return Check(
            FAIL,
            name,
            f"{path}: {len(invalid)} of {len(conversations)} rows invalid (row {row}: {problems[0]}); "
            "see `judge-sft validate-data`",
        ), None
    return Check(PASS, name, f"{path}: {len(conversations)} rows, all valid"), conversations


def template_source(tokenizer, training_args):
    """Which template training renders with, and why."""
    origin = (
        f"chat_template_path {training_args.chat_template_path}"
        if training_args.chat_template_path
        else "the tokenizer's"
    )
    if has_generation_markers(tokenizer.chat_template):
        return f"{origin} template as is: it has {{% generation %}} markers"
    if template_sha256(tokenizer.chat_template) in KNOWN_STOCK_TEMPLATES:
        return (
            f"TRL's Qwen3 training template: {origin} template is the stock Qwen3 one (sha256 match), which has no "
            "{% generation %} markers and renders the same conversations"
        )
    if template_sha256(tokenizer.chat_template) in saved_by_judge_sft():
        return (
            f"TRL's training template: {origin} template is it without markers, as judge-sft saves a judge it trained"
        )
    return f"TRL's training variant of {origin} template, which has no {{% generation %}} markers"


def check_template(tokenizer, training_args):
    """(check, training template or None)."""
    if not tokenizer.chat_template:
        message = "the tokenizer has no chat template; set `chat_template_path`"
        return Check(FAIL, "chat template", message, skippable=False), None
    try:
        template = training_chat_template(tokenizer)
    except JudgeSFTError as error:
        return Check(FAIL, "chat template", str(error), skippable=False), None
    return Check(PASS, "chat template", template_source(tokenizer, training_args)), template


def check_saved_template(tokenizer, template):
    """The template run.py saves with the model: no training-only tags, the same prompts in every engine."""
    try:
        engines = check_inference_template(tokenizer, template, inference_template(template))
    except JudgeSFTError as error:
        return Check(FAIL, "saved chat template", str(error))
    unchecked = "" if "minijinja" in engines else " (minijinja not installed: `pip install minijinja` checks it too)"
    message = f"no {{% generation %}} tags; renders every probe conversation as training does in {', '.join(engines)}"
    return Check(PASS, "saved chat template", message + unchecked)


def rendered(messages, tokenizer, template, train_on):
    tokens = tokenize_messages(messages, tokenizer, template, None, train_on)
    trained = [token for token in tokens["labels"] if token != IGNORE_INDEX]
    untrained = [token for token, label in zip(tokens["input_ids"], tokens["labels"]) if label == IGNORE_INDEX]
    return trained, tokenizer.decode(trained), tokenizer.decode(untrained)


def expected_targets(messages, train_on):
    assistant = [message["content"] for message in messages if message["role"] == "assistant"]
    return assistant[-1:] if train_on == "final" else assistant


def check_masking(conversations, tokenizer, template, train_on, end_ids):
    """Render sample rows: the trained text holds the targets `train_on` names, no user text, and an end of turn."""
    samples = conversations[:SAMPLE_ROWS]
    rows_ending = 0
    for row, messages in enumerate(samples):
        trained, trained_text, untrained_text = rendered(messages, tokenizer, template, train_on)
        if not trained:
            return [
                Check(FAIL, "loss masking", f"row {row}: the template marks no token for loss (train_on {train_on})")
            ]
        missing = [content for content in expected_targets(messages, train_on) if content.strip() not in trained_text]
        if missing:
            message = f"row {row}: assistant text {missing[0][:40]!r} is not trained (train_on {train_on})"
            return [Check(FAIL, "loss masking", message)]
        leaked = [
            message["content"]
            for message in messages
            if message["role"] != "assistant"
            and len(message["content"].strip()) >= MIN_DISTINCT_CHARS
            and message["content"].strip() in trained_text
        ]
        if leaked:
            return [Check(FAIL, "loss masking", f"row {row}: prompt text {leaked[0][:40]!r} is trained")]
        rows_ending += any(token in end_ids for token in trained)
    masking = Check(
        PASS,
        "loss masking",
        f"{len(samples)} sample rows train exactly their "
        f"{'final assistant message' if train_on == 'final' else 'assistant messages'}",
    )
    end_names = ", ".join(sorted({tokenizer.convert_ids_to_tokens(token) for token in end_ids}))
    if not end_ids:
        ending = Check(WARN, "end of turn", "neither the tokenizer nor the model config names an eos token")
    elif rows_ending == len(samples):
        ending = Check(PASS, "end of turn", f"every sample target trains {end_names}: the model learns to stop")
    elif rows_ending:
        message = f"{len(samples) - rows_ending} of {len(samples)} sample targets train no {end_names}"
        ending = Check(WARN, "end of turn", message)
    else:
        ending = Check(FAIL, "end of turn", f"no sample target trains {end_names}: the model would never learn to stop")
    return [masking, ending]


def check_attention(model_args, sp_size):
    """The recipe's attention backend on this machine (`auto` resolved), before any data or weights load."""
    try:
        return Check(PASS, "attention", attention.choose(model_args.attn_implementation, sp_size).reason)
    except JudgeSFTError as error:
        return Check(FAIL, "attention", str(error))


def c_compiler():
    return shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


def check_c_compiler(device):
    """On a CUDA GPU, Triton (torch-optimi's AdamW, TRL's chunked log-probs) compiles its driver with a C compiler at
    first use."""
    if device.capability is None:
        return []
    compiler = c_compiler()
    if compiler:
        return [Check(PASS, "C compiler", f"{compiler}, for Triton's driver")]
    message = (
        "none on PATH (cc, gcc, clang): Triton, which torch-optimi's AdamW and TRL's chunked log-probs use on CUDA, "
        "compiles its driver with one at first use; install gcc"
    )
    return [Check(WARN, "C compiler", message)]


def run_checks(judge_args, training_args, model_args, start_up=False):
    """Every check, as `judge-sft doctor` prints them. `start_up`: run.py's, which chooses the attention backend and
    checks the saved template itself (on GPUs the backend probe runs a model): those two are not done twice."""
    files = [judge_args.train_file] + ([judge_args.val_file] if judge_args.val_file else [])
    checks, valid = ([] if start_up else [check_attention(model_args, judge_args.sp_size)]), {}
    checks += check_c_compiler(attention.this_device())
    for path in files:
        check, conversations = check_data(path, judge_args.messages_key)
        checks.append(check)
        if conversations is not None:
            valid[path] = conversations
    try:
        tokenizer = recipe_tokenizer(model_args, training_args)
    except JudgeSFTError as error:
        return checks + [Check(FAIL, "tokenizer", str(error), skippable=False)]
    template_check, template = check_template(tokenizer, training_args)
    checks.append(template_check)
    try:
        model_config = load_model_config(model_args)
    except JudgeSFTError:
        model_config = None
    checks += check_special_tokens(tokenizer, model_config, [row for rows in valid.values() for row in rows])
    checks.append(check_positions(model_config, training_args.max_length))
    if template is None:
        return checks
    if not start_up:
        checks.append(check_saved_template(tokenizer, template))
    if judge_args.train_file in valid:
        train_on = resolve_train_on(judge_args.train_on, judge_args.train_file)
        end_ids = end_of_turn_ids(tokenizer, model_config)
        checks += check_masking(valid[judge_args.train_file], tokenizer, template, train_on, end_ids)
    for path in valid:
        checks += check_tokens(profile_file(path, judge_args, training_args, tokenizer), training_args.max_length)
    return checks


def check_before_training(judge_args, training_args, model_args):
    """run.py's start-up: the checks, logged; a failure stops the run (a JudgeSFTError) unless `skip_doctor`."""
    checks = decided_by_main_process(
        training_args, lambda: run_checks(judge_args, training_args, model_args, start_up=True)
    )
    for check in checks:
        logger.info(f"doctor: {check.line()}")
    failed = [check for check in checks if check.status == FAIL]
    if failed:
        more = f" (and {len(failed) - 1} more failed checks)" if len(failed) > 1 else ""
        # skip_doctor only helps when training could go on without what failed.
        advice = "; fix it, or set `skip_doctor: true` in the recipe to train anyway"
        if not all(check.skippable for check in failed):
            failed.sort(key=lambda check: check.skippable)
            advice = ""
        raise JudgeSFTError(f"doctor: {failed[0].name}: {failed[0].message}{more}{advice}")
