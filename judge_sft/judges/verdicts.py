"""Each shipped judge format's verdict: how prepare-data writes it and the parser that reads it back.

A verdict is the last line(s) of the assistant message, after any rationale. The same parser reads prepare-data's
own rows back (a round trip over the whole file) and the judge's completions in `evaluate`, after removing a
`<think>...</think>` block; an unparsable completion is None, never a class.

Pointwise verdicts are ratings on HelpSteer2's 0-4 scale, keyed by attribute; a format may show another scale
(prometheus shows rating + 1, on 1-5). Pairwise verdicts are the letter of the better response, "A" or "B".
"""

import re
from dataclasses import dataclass

from judge_sft.judges.columns import LETTERS

MIN_RATING, MAX_RATING = 0, 4
THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL)


@dataclass(frozen=True)
class VerdictFormat:
    name: str
    rating_offset: int  # shown rating = HelpSteer2 rating + offset (pointwise)
    one_score: str  # pointwise, one attribute: str.format(score=...)
    many_scores: str  # pointwise, several attributes: str.format(scores=...), each "name: score" joined by ", "
    one_score_pattern: str  # regex, group 1 the shown score
    letter: str  # pairwise: str.format(letter=...)
    letter_pattern: str  # regex, group 1 the letter


FORMATS = {
    "openjudge": VerdictFormat(
        name="openjudge",
        rating_offset=0,
        one_score="<score>{score}</score>",
        many_scores="<score>{scores}</score>",
        one_score_pattern=r"<score>\s*(-?\d+)\s*</score>",
        letter="<better>{letter}</better>",
        letter_pattern=r"<better>\s*([AB])\s*</better>",
    ),
    "prometheus": VerdictFormat(
        name="prometheus",
        rating_offset=1,
        one_score="[RESULT] {score}",
        many_scores="[RESULT] {scores}",
        one_score_pattern=r"\[RESULT\]\s*(-?\d+)\b",
        letter="[RESULT] {letter}",
        letter_pattern=r"\[RESULT\]\s*\(?([AB])\)?(?![A-Za-z])",
    ),
    "mt-bench": VerdictFormat(
        name="mt-bench",
        rating_offset=0,
        one_score="",
        many_scores="",
        one_score_pattern="",
        letter="[[{letter}]]",
        letter_pattern=r"\[\[([AB])\]\]",
    ),
}
POINTWISE_FORMATS = ("openjudge", "prometheus")
PAIRWISE_FORMATS = ("openjudge", "prometheus", "mt-bench")


def formats_for(task: str) -> tuple[str, ...]:
    return POINTWISE_FORMATS if task == "pointwise" else PAIRWISE_FORMATS


def render_verdict(task: str, format_name: str, verdict) -> str:
    """The verdict text: `verdict` is {attribute: 0-4 rating} (pointwise, in the order given) or "A"/"B" (pairwise)."""
    fmt = FORMATS[format_name]
    if task == "pairwise":
        return fmt.letter.format(letter=verdict)
    shown = {name: rating + fmt.rating_offset for name, rating in verdict.items()}
    if len(shown) == 1:
        return fmt.one_score.format(score=next(iter(shown.values())))
    return fmt.many_scores.format(scores=", ".join(f"{name}: {score}" for name, score in shown.items()))


def parse_verdict(task: str, format_name: str, text: str, attributes=("helpfulness",)):
    """The verdict in `text` (the last one, after removing a <think> block), or None when there is none or it is out
    of range: {attribute: 0-4 rating} for pointwise (every attribute in `attributes` present), "A"/"B" for pairwise."""
    fmt = FORMATS[format_name]
    text = THINK_BLOCK.sub("", text)
    if task == "pairwise":
        letters = re.findall(fmt.letter_pattern, text)
        return letters[-1] if letters and letters[-1] in LETTERS else None
    if len(attributes) == 1:
        scores = re.findall(fmt.one_score_pattern, text)
        return _ratings({attributes[0]: scores[-1]}, fmt) if scores else None
    return _many_ratings(text, fmt, attributes)


def _many_ratings(text, fmt, attributes):
    prefix = fmt.many_scores.split("{scores}")[0]
    start = text.rfind(prefix)
    if start < 0:
        return None
    tail = text[start + len(prefix) :]
    found = {name: value for name, value in re.findall(r"([a-z_]+)\s*:\s*(-?\d+)", tail)}
    if any(name not in found for name in attributes):
        return None
    return _ratings({name: found[name] for name in attributes}, fmt)


def _ratings(shown: dict, fmt: VerdictFormat):
    ratings = {name: int(score) - fmt.rating_offset for name, score in shown.items()}
    return ratings if all(MIN_RATING <= rating <= MAX_RATING for rating in ratings.values()) else None
