"""The chat template saved with the model: the training template without its training-only syntax, and the check that
it renders what training rendered in transformers, plain jinja2 and minijinja (docs/inference.md).

`{% generation %}` / `{% endgeneration %}` mark the assistant tokens for the loss mask. They are a transformers-only
jinja extension: plain jinja2 (llama-cpp-python and other Python servers) and minijinja (text-generation-inference)
refuse the template as a syntax error. They emit nothing, so the training template without them renders the same text.
"""

import importlib.util
import re
from datetime import datetime

from judge_sft.errors import JudgeSFTError

TEMPLATE_NAME = "chat_template.jinja"
# A comment (kept, its tags spelt as words) or a generation tag with its whitespace control.
SYNTAX = re.compile(
    r"(?P<comment>\{#.*?#\})|\{%(?P<left>[-+]?)\s*(?P<name>(?:end)?generation)\s*(?P<right>[-+]?)%\}", re.S
)
TAG = re.compile(r"\{%[-+]?\s*((?:end)?generation)\s*[-+]?%\}")
# What follows a tag: a tag that strips the whitespace before it; the rest of the line.
STRIPS_LEFT = re.compile(r"\s*\{[{%#]-")
REST_OF_LINE = re.compile(r"[ \t]*\n?")
# Before a tag at the start of a line, lstrip_blocks removes the line's indentation.
INDENT_BEFORE_TAG = re.compile(r"(?:[^\S\n]*(?=\{[%#](?!\+)))?")

# The servers that render chat templates with each engine the check runs.
SERVERS = {
    "transformers": "vLLM, SGLang",
    "jinja2": "llama-cpp-python, text-generation-webui, tabbyAPI",
    "minijinja": "text-generation-inference",
}
PROBE_CONVERSATIONS = {
    "single turn": [{"role": "user", "content": "Is 7 prime?"}, {"role": "assistant", "content": "Yes."}],
    "multi-turn": [
        {"role": "user", "content": "Is 7 prime?"},
        {"role": "assistant", "content": "Yes."},
        {"role": "user", "content": "And 9?"},
        {"role": "assistant", "content": "No: 9 = 3 x 3."},
    ],
    "system": [
        {"role": "system", "content": "You are a careful judge."},
        {"role": "user", "content": "Rate this answer: 2 + 2 = 5."},
        {"role": "assistant", "content": "Wrong: 2 + 2 = 4."},
    ],
    "empty answer": [{"role": "user", "content": "Say nothing."}, {"role": "assistant", "content": ""}],
    "reasoning": [
        {"role": "user", "content": "Is 10 even?"},
        {"role": "assistant", "content": "<think>\n10 = 2 x 5.\n</think>\n\nYes."},
    ],
}
# The whole conversation as training renders it, and its prompt as a server renders it, with and without
# add_generation_prompt; enable_thinking=False is what a client sends to skip Qwen3's thinking.
PROBE_OPTIONS = ({}, {"add_generation_prompt": True}, {"add_generation_prompt": True, "enable_thinking": False})


def has_training_tags(template):
    return bool(template) and TAG.search(template) is not None


def inference_template(training_template):
    """The training template without `{% generation %}` / `{% endgeneration %}`, each removed with the whitespace it
    would have trimmed (trim_blocks, lstrip_blocks, `-`), so every conversation renders byte for byte the same.
    Comments keep the words: `{% generation %}` there reads `generation`."""
    pieces, position = [], 0
    for match in SYNTAX.finditer(training_template):
        text = training_template[position : match.start()]
        if match["comment"]:
            pieces += [text, TAG.sub(r"\1", match["comment"])]
            position = match.end()
            continue
        if match["left"] == "-" and STRIPS_LEFT.match(training_template, match.end()):
            # all whitespace around the tag is stripped either way: drop its line and keep the layout
            pieces.append(text.rstrip(" \t"))
            position = REST_OF_LINE.match(training_template, match.end()).end()
            continue
        line_start = position == 0 or training_template[position - 1] == "\n"
        pieces.append(_strip_before(text, match["left"], line_start))
        position = _skip_after(training_template, match.end(), match["right"])
    pieces.append(training_template[position:])
    return "".join(pieces)


def _strip_before(text, control, line_start):
    if control == "-":
        return text.rstrip()
    if control == "+":
        return text
    last_line = text.rfind("\n") + 1
    if (last_line or line_start) and not text[last_line:].strip():  # lstrip_blocks
        return text[:last_line]
    return text


def _skip_after(template, end, control):
    if control == "-":
        return len(template) - len(template[end:].lstrip())
    if control == "+" or not template.startswith("\n", end):
        return end
    # trim_blocks ate the newline, so the next line's block tag was at a line start: its indentation goes too
    return INDENT_BEFORE_TAG.match(template, end + 1).end()


# ---------------------------------------------------------------------------------------------------- engines


def _raise_exception(message):
    raise ValueError(message)


def _strftime_now(format):
    return datetime.now().strftime(format)


def transformers_renderer(tokenizer, template):
    def render(messages, options):
        return tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False, **options)

    return render


def template_variables(tokenizer, options):
    """What transformers passes a template besides the messages: the special tokens, tools, documents, options."""
    return {**tokenizer.special_tokens_map, "tools": None, "documents": None, **options}


def jinja2_renderer(tokenizer, template):
    """Plain jinja2 as transformers sets it up (sandboxed, trim_blocks, lstrip_blocks, loop controls, its globals),
    without the generation extension."""
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    environment.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now)
    compiled = environment.from_string(template)
    return lambda messages, options: compiled.render(messages=messages, **template_variables(tokenizer, options))


def minijinja_renderer(tokenizer, template):
    """minijinja, the engine of Rust servers (text-generation-inference), with the same options and globals."""
    import minijinja

    environment = minijinja.Environment()
    environment.trim_blocks = environment.lstrip_blocks = True
    environment.add_function("raise_exception", _raise_exception)
    environment.add_function("strftime_now", _strftime_now)
    environment.add_template(TEMPLATE_NAME, template)
    return lambda messages, options: environment.render_template(
        TEMPLATE_NAME, messages=messages, **template_variables(tokenizer, options)
    )


def engines():
    """{name: render function} of the engines this machine can check: minijinja only when it is installed."""
    checked = {"transformers": transformers_renderer, "jinja2": jinja2_renderer}
    if importlib.util.find_spec("minijinja") is not None:
        checked["minijinja"] = minijinja_renderer
    return checked


def probes():
    """(description, messages, options): each probe conversation, and its prompt, under each PROBE_OPTIONS."""
    for name, messages in PROBE_CONVERSATIONS.items():
        for part, shown in (("conversation", messages), ("prompt", messages[:-1])):
            for options in PROBE_OPTIONS:
                flags = ", ".join(f"{key}={value}" for key, value in options.items()) or "no options"
                yield f"{name} {part} ({flags})", shown, options


def expected_renders(tokenizer, training_template):
    """(description, messages, options, text) of each probe as training renders it, through transformers. Probes the
    template refuses (some refuse a system message) are left out: every server refuses them alike."""
    render = transformers_renderer(tokenizer, training_template)
    expected = []
    for description, messages, options in probes():
        try:
            expected.append((description, messages, options, render(messages, options)))
        except Exception:  # noqa: BLE001 - the template's own raise_exception, or a missing field
            continue
    return expected


def check_inference_template(tokenizer, training_template, saved_template):
    """Raise JudgeSFTError unless `saved_template` has no training-only tags, parses in every engine of `engines()` and
    renders every probe there byte for byte as `training_template` renders it through transformers (what training
    tokenised); return the engines' names."""
    if has_training_tags(saved_template):
        raise JudgeSFTError(f"the saved chat template still has {{% {TAG.search(saved_template)[1]} %}} tags")
    expected = expected_renders(tokenizer, training_template)
    for name, renderer in engines().items():
        render = _attempt(f"does not parse in {name}", renderer, tokenizer, saved_template)
        for description, messages, options, wanted in expected:
            rendered = _attempt(f"fails in {name} on the {description}", render, messages, options)
            if rendered != wanted:
                raise JudgeSFTError(
                    f"the saved chat template renders the {description} differently in {name} than training did "
                    f"(from character {_first_difference(rendered, wanted)})"
                )
    return list(engines())


def _attempt(failure, function, *args):
    try:
        return function(*args)
    except Exception as error:  # noqa: BLE001 - each engine raises its own syntax and render errors
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise JudgeSFTError(f"the saved chat template {failure}: {first_line}") from error


def _first_difference(rendered, expected):
    index = next((i for i, (a, b) in enumerate(zip(rendered, expected)) if a != b), min(len(rendered), len(expected)))
    return f"{index}: {rendered[index : index + 20]!r} instead of {expected[index : index + 20]!r}"
