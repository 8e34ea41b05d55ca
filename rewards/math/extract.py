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
# `#### 72` (GSM8K); a markdown heading such as `#### Step 2` is not an answer.
_GSM8K = re.compile(r"####[ \t]*(?P<ans>(?![ \t]|[A-Z][a-z]+\b)[^\n]+)")
_ANSWER_IS = re.compile(
    r"(?:final\s+)?answer\s+(?:is\b|=)\s*:?[ \t]*(?P<ans>[^\n]+)", re.IGNORECASE
)
_ANSWER_LABEL = re.compile(
    r"(?:^|\n)[ \t>*_#-]*(?:final\s+)?answer[*_ \t]*:[*_ \t]*(?P<ans>[^\n]+)", re.IGNORECASE
)
_LAST_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?(?:\^\{?-?\d+\}?)?|-?\.\d+")
# `\$` is a dollar sign, not a delimiter.
_MATH_SPAN = re.compile(
    r"\$\$(.+?)\$\$|(?<!\\)\$(.+?)(?<!\\)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.DOTALL
)
# Where the answer's clause ends: a period that is not a decimal point, `!`, `?`, `;`, a comma
# before a word ("42, not 41"), or a connective ("5 because 2 + 3 = 5").
_CLAUSE_END = re.compile(
    r"(?<!\d)\.(?!\d)|\.(?=\s|$)|[!?;](?=\s|$)|,\s+(?=[A-Za-z]{3,})"
    r"|\s+(?:because|since|as|which|where|so|but|when|given)\s"
    r"|\s+(?:and|or)\s+(?=[a-z]{3,})|\s+\((?=[A-Za-z]+\s)",
    re.IGNORECASE,
)
_ABBREVIATIONS = re.compile(r"\b(?:e\.g|i\.e|approx)\.,?", re.IGNORECASE)
_FILLER = re.compile(
    r"^(?:(?:therefore|thus|then|so|simply|exactly|approximately|about|roughly|around|just)\b"
    r"[\s,:]*|\\approx\s*|≈\s*)+",
    re.IGNORECASE,
)
_PROSE = re.compile(r"(?<![\\A-Za-z])[a-z]{3,}\s+[a-z]{2,}")
# An answer sentence longer than this is not an answer (and bounds the span search).
_WINDOW = 1000


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
    """The content of the last ``\\boxed{...}``/``\\fbox{...}``, braces matched; None if absent.

    Braces are matched in one pass over the text, so many unclosed boxes (a degenerate rollout)
    cost linear time, not quadratic."""
    starts = [m.end() for m in _BOX.finditer(text)]
    if not starts:
        return None
    closing: dict[int, int] = {}
    stack: list[int] = []
    for i, ch in enumerate(text):
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            closing[stack.pop()] = i
    for start in reversed(starts):
        rest = text[start:].lstrip()
        opening = len(text) - len(rest)
        if rest.startswith("{"):
            if opening in closing:
                return text[opening + 1 : closing[opening]]
        elif rest and (m := re.match(r"[^\s$.,]+", rest)):  # \boxed 7
            return m[0]
    return None


def _sentence_answer(captured: str) -> str:
    """The answer at the start of the text after "the answer is" / "Answer:"."""
    text = _ABBREVIATIONS.sub(" ", captured[:_WINDOW]).strip().strip("*_ ")
    text = _FILLER.sub("", text)
    if text.startswith(("$", "\\(", "\\[")) and (m := _MATH_SPAN.match(text)):
        content = next(g for g in m.groups() if g is not None).strip()
        rest = text[m.end() :]
        if not _PROSE.search(content) and not _MATH_SPAN.search(rest.split(".")[0]):
            return content
    if re.match(r"\$\d", text):
        text = text[1:]  # a currency sign ("$18, since she spent $2"), not a delimiter
    end = _CLAUSE_END.search(text)
    sentence = text[: end.start()] if end else text
    spans = _MATH_SPAN.findall(sentence)
    if len(spans) == 1 and not _PROSE.search(sentence.replace(_span(spans[0]), "")):
        return _span(spans[0]).strip()
    return _clean_tail(sentence.replace("$", "") if len(spans) > 1 else sentence)


def _span(groups: tuple[str, ...]) -> str:
    return next(g for g in groups if g)


def _clean_tail(text: str) -> str:
    return text.strip().strip("*_ ").rstrip(".").strip()
