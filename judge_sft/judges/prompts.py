"""The grading prompt of each judge format: a small Jinja template in judges/templates/ (or the user's own, from
--judge-template), rendered in a sandbox; every variable a template may use is built here.

Variables, both tasks: `conversation` (the messages before the judged response(s), {role, content}, ending on the
user's turn), `rationale` (true when the answer holds a reason before the verdict).
Pointwise: `response`, `attributes` ([{name, description}], the graded ones in order), `min_score` and `max_score`
(the scale the format shows), `verdict_format` (the verdict with N for each score, e.g. `<score>N</score>`).
Pairwise: `response_a`, `response_b`, `verdict_a` and `verdict_b` (the verdict text for each letter).
"""

from dataclasses import dataclass
from pathlib import Path

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from judge_sft.errors import JudgeSFTError, one_line
from judge_sft.judges.verdicts import FORMATS, MAX_RATING, MIN_RATING, render_verdict

TEMPLATES = Path(__file__).with_name("templates")

# HelpSteer2's definitions of its five attributes (Wang et al., 2024), each rated 0-4.
ATTRIBUTE_DESCRIPTIONS = {
    "helpfulness": "overall helpfulness of the response to the prompt",
    "correctness": "inclusion of all pertinent facts without errors",
    "coherence": "consistency and clarity of expression",
    "complexity": "intellectual depth required to write the response (basic language competency, or deep domain "
    "expertise)",
    "verbosity": "amount of detail included in the response, relative to what is asked for in the prompt",
}

_ENVIRONMENT = ImmutableSandboxedEnvironment(
    undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, autoescape=False
)


@dataclass(frozen=True)
class GradingPrompt:
    """One format's prompt template for one task; `name` is what errors call it (the file path)."""

    name: str
    template: jinja2.Template

    def render(self, where: str, **variables) -> str:
        try:
            text = self.template.render(**variables)
        except Exception as error:  # a sandbox refusal, an undefined variable, a filter's error: all mean "cannot"
            raise JudgeSFTError(
                f"{self.name}: does not render for {where} ({type(error).__name__}: {one_line(error)})"
            ) from error
        if not text.strip():
            raise JudgeSFTError(f"{self.name}: renders an empty prompt for {where}")
        return text


def shipped_template_path(task: str, format_name: str) -> Path:
    return TEMPLATES / f"{format_name}_{task}.jinja"


def load_prompt(task: str, format_name: str, template_path=None) -> GradingPrompt:
    """The shipped prompt of the format, or the user's template file (whose verdict is still the format's)."""
    path = Path(template_path) if template_path else shipped_template_path(task, format_name)
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or error
        raise JudgeSFTError(f"{path}: cannot read the judge template ({reason})") from None
    try:
        return GradingPrompt(str(path), _ENVIRONMENT.from_string(source))
    except jinja2.TemplateSyntaxError as error:
        raise JudgeSFTError(f"{path} line {error.lineno}: not a valid Jinja template ({error.message})") from None


def pointwise_variables(format_name: str, context: list, response: str, attributes) -> dict:
    offset = FORMATS[format_name].rating_offset
    return {
        "conversation": context,
        "response": response,
        "attributes": [{"name": name, "description": ATTRIBUTE_DESCRIPTIONS[name]} for name in attributes],
        "min_score": MIN_RATING + offset,
        "max_score": MAX_RATING + offset,
        "verdict_format": verdict_format(format_name, attributes),
        "rationale": False,
    }


def pairwise_variables(format_name: str, context: list, response_a: str, response_b: str, rationale: bool) -> dict:
    return {
        "conversation": context,
        "response_a": response_a,
        "response_b": response_b,
        "verdict_a": render_verdict("pairwise", format_name, "A"),
        "verdict_b": render_verdict("pairwise", format_name, "B"),
        "rationale": rationale,
    }


def verdict_format(format_name: str, attributes) -> str:
    fmt = FORMATS[format_name]
    if len(attributes) == 1:
        return fmt.one_score.format(score="N")
    return fmt.many_scores.format(scores=", ".join(f"{name}: N" for name in attributes))
