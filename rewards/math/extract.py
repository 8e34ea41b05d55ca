"""Find the final answer in free-form model output.

The rules are tried in this order, and the first that matches wins (within a rule the *last*
occurrence counts, since models restate and correct themselves):

1. ``boxed``: the last ``\\boxed{...}`` or ``\\fbox{...}`` (nested braces are matched), or
   ``\\boxed 7`` without braces.
2. ``gsm8k``: GSM8K's ``#### 42``.
3. ``answer_is``: "the answer is ..." / "the final answer is ...", up to the end of the sentence.
4. ``answer_label``: an ``Answer: ...`` label (also ``Final answer:``, markdown bold allowed).
5. ``last_number``: the last number in the text (optional, on by default).

For rules 3 and 4, a ``$...$``, ``\\(...\\)`` or ``\\[...\\]`` math span inside the captured
sentence is taken as the answer.

>>> extract_answer(r"so x = 2. The answer is $\\frac{1}{2}$.")
Extraction(text='\\\\frac{1}{2}', rule='answer_is')
>>> extract_answer("She pays 3 * 6 = 18 dollars.\\n#### 18")
Extraction(text='18', rule='gsm8k')
>>> extract_answer("I think it is 7 or maybe 8") .rule
'last_number'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

RULES = ("boxed", "gsm8k", "answer_is", "answer_label", "last_number")

_BOX = re.compile(r"\\(?:boxed|fbox)")
_GSM8K = re.compile(r"####[ \t]*(?P<ans>[^\n]+)")
_ANSWER_IS = re.compile(r"(?:final\s+)?answer\s+(?:is|=)\s*:?[ \t]*(?P<ans>[^\n]+)", re.IGNORECASE)
_ANSWER_LABEL = re.compile(
    r"(?:^|\n)[ \t>*_#-]*(?:final\s+)?answer[*_ \t]*:[*_ \t]*(?P<ans>[^\n]+)", re.IGNORECASE
)
_LAST_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+")
# `\$` is a dollar sign, not a delimiter.
_MATH_SPAN = re.compile(
    r"\$\$(.+?)\$\$|(?<!\\)\$(.+?)(?<!\\)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.DOTALL
)
# A sentence ends at a period that is not a decimal point, or at `!`/`?`.
_SENTENCE_END = re.compile(r"(?<!\d)\.(?!\d)|\.(?=\s|$)|[!?](?=\s|$)")


@dataclass(frozen=True)
class Extraction:
    """The answer string found in a model output and the name of the rule that found it."""

    text: str
    rule: str


def extract_answer(output: str, last_number_fallback: bool = True) -> Extraction | None:
    """Find the final answer in ``output``; None when no rule matches."""
    if not isinstance(output, str):
        return None
    if (boxed := last_boxed(output)) is not None:
        return Extraction(boxed.strip(), "boxed")
    if matches := _GSM8K.findall(output):
        return Extraction(_clean_tail(matches[-1]), "gsm8k")
    for rule, pattern in (("answer_is", _ANSWER_IS), ("answer_label", _ANSWER_LABEL)):
        if matches := pattern.findall(output):
            answer = _sentence_answer(matches[-1])
            if answer:
                return Extraction(answer, rule)
    if last_number_fallback and (numbers := _LAST_NUMBER.findall(output)):
        return Extraction(numbers[-1].rstrip(","), "last_number")
    return None


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}``/``\\fbox{...}``, braces matched; None if absent."""
    starts = [m.end() for m in _BOX.finditer(text)]
    for start in reversed(starts):
        rest = text[start:].lstrip()
        if rest.startswith("{"):
            body = _braced(rest)
            if body is not None:
                return body
        elif rest and (m := re.match(r"[^\s$.,]+", rest)):  # \boxed 7
            return m[0]
    return None


def _braced(text: str) -> str | None:
    """Content of the brace group that opens ``text``; None if it never closes."""
    depth = 0
    for i, ch in enumerate(text):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[1:i]
    return None


def _sentence_answer(captured: str) -> str:
    if m := _MATH_SPAN.search(captured):
        return next(g for g in m.groups() if g is not None).strip()
    end = _SENTENCE_END.search(captured)
    return _clean_tail(captured[: end.start()] if end else captured)


def _clean_tail(text: str) -> str:
    return text.strip().strip("*_ ").rstrip(".").strip()
