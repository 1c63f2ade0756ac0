"""The chat template saved with the model: TRL's training template without its `{% generation %}` tags, rendering
byte for byte what training rendered in transformers, plain jinja2 and minijinja; `judge-sft fix-template`."""

import jinja2
import minijinja
import pytest
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment
from trl import chat_template_utils
from trl.chat_template_utils import qwen3_training_chat_template

from judge_sft import cli
from judge_sft.errors import JudgeSFTError
from judge_sft.train.chat_templates import training_chat_template
from judge_sft.train.inference_template import (
    PROBE_CONVERSATIONS,
    check_inference_template,
    has_training_tags,
    inference_template,
)

SAVED = inference_template(qwen3_training_chat_template)
CONVERSATIONS = {
    **PROBE_CONVERSATIONS,
    "three turns": [
        {"role": "system", "content": "Judge strictly."},
        *PROBE_CONVERSATIONS["multi-turn"],
        {"role": "user", "content": "And 11?"},
        {"role": "assistant", "content": "Prime."},
    ],
}
# (messages of each conversation, add_generation_prompt): the training row, and the prompt a server renders
CASES = [
    pytest.param(messages[:end], prompt, id=f"{name}-{'prompt' if end else 'conversation'}-{prompt}")
    for name, messages in CONVERSATIONS.items()
    for end in (None, -1)
    for prompt in (False, True)
]
TRL_TRAINING_TEMPLATES = {
    name: value
    for name, value in vars(chat_template_utils).items()
    if name.endswith("_training_chat_template") and isinstance(value, str)
}


def plain_jinja2(template, **variables):
    """jinja2 as transformers sets it up, without its generation extension (llama-cpp-python and other servers)."""
    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    return environment.from_string(template).render(**variables)


def plain_minijinja(template, **variables):
    environment = minijinja.Environment()
    environment.trim_blocks = environment.lstrip_blocks = True
    return environment.render_str(template, **variables)


@pytest.mark.parametrize("messages, add_generation_prompt", CASES)
def test_saved_template_renders_what_training_rendered_in_transformers_jinja2_and_minijinja(
    qwen3_tokenizer, messages, add_generation_prompt
):
    def transformers(template):
        return qwen3_tokenizer.apply_chat_template(
            messages, chat_template=template, tokenize=False, add_generation_prompt=add_generation_prompt
        )

    trained = transformers(training_chat_template(qwen3_tokenizer))
    variables = dict(
        messages=messages, add_generation_prompt=add_generation_prompt, **qwen3_tokenizer.special_tokens_map
    )
    assert transformers(SAVED) == trained
    assert plain_jinja2(SAVED, **variables) == trained
    assert plain_minijinja(SAVED, **variables) == trained


def test_training_template_is_a_syntax_error_outside_transformers():
    with pytest.raises(jinja2.TemplateSyntaxError, match="Encountered unknown tag 'generation'"):
        plain_jinja2(qwen3_training_chat_template, messages=[])
    with pytest.raises(minijinja.TemplateError, match="unknown statement generation"):
        plain_minijinja(qwen3_training_chat_template, messages=[])


def test_saved_template_is_the_training_template_less_its_tags_and_nothing_else():
    assert has_training_tags(qwen3_training_chat_template) and not has_training_tags(SAVED)
    assert not chat_template_utils.has_generation_markers(SAVED)  # the comment spells the tags as words
    assert "- Added generation / endgeneration around assistant message output" in SAVED
    removed = [line for line in qwen3_training_chat_template.splitlines() if line not in SAVED.splitlines()]
    assert [line.strip() for line in removed] == [
        "- Added {% generation %} / {% endgeneration %} around assistant message output to support",
        "{%- generation %}",
        "{%- endgeneration %}",
    ]
    assert inference_template(SAVED) == SAVED


def test_stock_qwen3_template_would_not_do_its_earlier_turns_lack_the_think_block(qwen3_tokenizer):
    """Why the saved template is the training one less its tags, not Qwen3's stock template: a multi-turn prompt."""
    prompt = PROBE_CONVERSATIONS["multi-turn"][:-1]
    stock = qwen3_tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    saved = qwen3_tokenizer.apply_chat_template(prompt, chat_template=SAVED, tokenize=False, add_generation_prompt=True)
    assert saved.count("<think>\n\n</think>\n\n") == 1 and stock.count("<think>") == 0
    with pytest.raises(JudgeSFTError) as error:
        check_inference_template(qwen3_tokenizer, qwen3_training_chat_template, qwen3_tokenizer.chat_template)
    assert str(error.value) == (
        "the saved chat template renders the multi-turn conversation (no options) differently in transformers than "
        "training did (from character 61: 'Yes.<|im_end|>\\n<|im_' instead of '<think>\\n\\n</think>\\n\\nY')"
    )


def test_check_names_the_engine_that_cannot_parse_or_render_the_template(qwen3_tokenizer):
    marked = qwen3_training_chat_template
    assert check_inference_template(qwen3_tokenizer, marked, SAVED) == ["transformers", "jinja2", "minijinja"]
    with pytest.raises(JudgeSFTError, match=r"^the saved chat template still has \{% generation %\} tags$"):
        check_inference_template(qwen3_tokenizer, marked, marked)
    with pytest.raises(JudgeSFTError) as error:
        check_inference_template(qwen3_tokenizer, marked, "{% frobnicate %}" + SAVED)
    assert str(error.value) == (
        "the saved chat template fails in transformers on the single turn conversation (no options): Encountered "
        "unknown tag 'frobnicate'."
    )
    python_only = "{%- set padding = ''.zfill(0) %}" + SAVED  # a str method minijinja does not emulate
    with pytest.raises(JudgeSFTError) as error:
        check_inference_template(qwen3_tokenizer, marked, python_only)
    assert str(error.value) == (
        "the saved chat template fails in minijinja on the single turn conversation (no options): unknown method: "
        "string has no method named zfill (in chat_template.jinja:1)"
    )


@pytest.mark.parametrize("name", sorted(TRL_TRAINING_TEMPLATES))
def test_every_trl_training_template_renders_the_same_without_its_tags(qwen3_tokenizer, name):
    marked = TRL_TRAINING_TEMPLATES[name]
    saved = inference_template(marked)
    assert has_training_tags(marked) and not has_training_tags(saved)
    for messages, add_generation_prompt in [case.values for case in CASES]:
        assert rendered(qwen3_tokenizer, saved, messages, add_generation_prompt) == rendered(
            qwen3_tokenizer, marked, messages, add_generation_prompt
        )


WHITESPACE_CONTROL = """{%- for message in messages %}
    {%- if message.role == 'assistant' %}
<|im_start|>assistant
        {% generation %}
        {{ message.content }}{% endgeneration %}  {{ '|' }}
    {%- else %}
<|im_start|>{{ message.role }}  {%- generation -%}  {{ message.content }}
  {%+ endgeneration +%}
    {% endif %}
{% endfor %}"""


@pytest.mark.parametrize("messages, add_generation_prompt", CASES[:4])
def test_tags_go_with_the_whitespace_they_trimmed(qwen3_tokenizer, messages, add_generation_prompt):
    saved = inference_template(WHITESPACE_CONTROL)
    assert "generation" not in saved
    assert rendered(qwen3_tokenizer, saved, messages, add_generation_prompt) == rendered(
        qwen3_tokenizer, WHITESPACE_CONTROL, messages, add_generation_prompt
    )


def rendered(tokenizer, template, messages, add_generation_prompt):
    try:
        return tokenizer.apply_chat_template(
            messages, chat_template=template, tokenize=False, add_generation_prompt=add_generation_prompt
        )
    except Exception as error:  # noqa: BLE001 - some templates refuse a system message: both must refuse it
        return f"refused: {error}"


def test_a_judge_judge_sft_saved_trains_again_with_its_training_template(qwen3_tokenizer):
    saved_tokenizer = qwen3_tokenizer.__class__.from_pretrained(qwen3_tokenizer.name_or_path)
    saved_tokenizer.chat_template = SAVED
    assert training_chat_template(saved_tokenizer) == qwen3_training_chat_template


def test_fix_template_rewrites_a_marked_template_once(capsys, tmp_path, qwen3_tokenizer):
    folder = tmp_path / "old-judge"
    qwen3_tokenizer.save_pretrained(folder)
    (folder / "chat_template.jinja").write_text(qwen3_training_chat_template)
    assert cli.main(["fix-template", str(folder)]) == 0
    assert capsys.readouterr().out == (
        f"{folder}/chat_template.jinja: rewritten without {{% generation %}} tags; renders as before in transformers, "
        "jinja2, minijinja\n"
    )
    assert (folder / "chat_template.jinja").read_text() == SAVED
    assert cli.main(["fix-template", str(folder)]) == 0
    assert capsys.readouterr().out == f"{folder}/chat_template.jinja: no training-only tags, left as it is\n"
    assert cli.main(["fix-template", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (
        f"judge-sft fix-template: error: {tmp_path}/chat_template.jinja: no such file; is {tmp_path} an output or "
        "checkpoint directory of judge-sft?\n"
    )
