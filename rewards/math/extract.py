"""Find the final answer in free-form model output, and in a gold that may be a full solution.

The rules are tried in this order, and the first that matches wins (within a rule the *last*
occurrence counts, since models restate and correct themselves):

1. ``boxed``: the last ``\\boxed{...}`` or ``\\fbox{...}`` (nested braces are matched), or
   ``\\boxed 7`` without braces.
2. ``gsm8k``: GSM8K's ``#### 42``.
3. ``answer_is``: "the answer is ..." / "the final answer is ...", up to the end of the sentence.
4. ``answer_label``: an ``Answer: ...`` label (also ``Final answer:``, markdown bold allowed).
5. ``whole``: a short one-line output that is all maths (no words but maths names such as
   ``sqrt`` or ``and``), or one or two words alone (``Evelyn``, ``no solution``), is the
   answer as written: ``\\frac{2}{5}``, ``(a+1)(a-1)``, ``y \\le 4``, ``$5$ and $6$``.
6. ``math_span``: the last ``$...$``, ``$$...$$``, ``\\(...\\)`` or ``\\[...\\]`` span. Inline
   spans (``$``, ``\\(``) do not cross a line break, so two currency signs on different lines
   are not a span.
7. ``last_number``: the last number that stands alone in prose (optional, on by default). A
   digit inside a word (``AZYUK2A``) is not a number. :func:`rewards.math.grade` lets this rule
   score only against a gold that is a plain number.

For rules 3 and 4, a math span inside the captured sentence is taken as the answer.

>>> extract_answer(r"so x = 2. The answer is $\\frac{1}{2}$.")
Extraction(text='\\\\frac{1}{2}', rule='answer_is')
>>> extract_answer("She pays 3 * 6 = 18 dollars.\\n#### 18")
Extraction(text='18', rule='gsm8k')
>>> extract_answer(r"\\frac{2}{5}").rule
'whole'
>>> extract_answer(r"So we get $y = \\frac{3}{4}$.")
Extraction(text='y = \\\\frac{3}{4}', rule='math_span')
>>> extract_answer("I think it is 7 or maybe 8").rule
'last_number'
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

RULES = ("boxed", "gsm8k", "answer_is", "answer_label", "whole", "math_span", "last_number")

_BOX = re.compile(r"\\(?:boxed|fbox)")
# `#### 72` (GSM8K); a markdown heading such as `#### Step 2` is not an answer.
_GSM8K = re.compile(r"####[ \t]*(?P<ans>(?![ \t]|[A-Z][a-z]+\b)[^\n]+)")
_ANSWER_IS = re.compile(
    r"(?:final\s+)?answer\s+(?:is\b|=)\s*:?[ \t]*(?P<ans>[^\n]+)", re.IGNORECASE
)
_ANSWER_LABEL = re.compile(
    r"(?:^|\n)[ \t>*_#-]*(?:final\s+)?answer[*_ \t]*:[*_ \t]*(?P<ans>[^\n]+)", re.IGNORECASE
)
# A number that stands alone: not glued to a letter or digit on its left (`AZYUK2A`, `x2`), with
# thousands separators (`1,200.50`, `1 000`), a decimal comma (`2,74`), a fraction or a power.
_LAST_NUMBER = re.compile(
    r"(?<![\w.])(?:-?\d{1,3}(?:(?:,\d{3})+|(?: \d{3})+)(?!\d)(?:\.\d+)?"
    r"|-?\d+(?:[.,]\d+)?(?:/\d+)?(?:\^\{?-?\d+\}?)?|-?\.\d+)"
)
# `\$` is a dollar sign, not a delimiter; inline spans stay on one line.
_MATH_SPAN = re.compile(
    r"\$\$(.+?)\$\$|(?<![\\$])\$(?!\$)((?:[^\n$\\]|\\.)+?)\$|\\\(([^\n]+?)\\\)|\\\[(.+?)\\\]",
    re.DOTALL,
)
# Where the answer's clause ends: a period that is not a decimal point, `!`, `?`, `;`, a comma
# before a word ("42, not 41"), or a connective ("5 because 2 + 3 = 5").
_CLAUSE_END = re.compile(
    r"(?<!\d)\.(?!\d)|\.(?=\s|$)|[!?;](?=\s|$)|,\s+(?=[A-Za-z]{3,})"
    r"|\s+(?:because|since|as|which|where|so|but|when|given)\s"
    r"|\s+(?:and|or)\s+(?=[a-z]{3,})|\s+\((?=[A-Za-z]+\s)",
    re.IGNORECASE,
)
# "The largest $n$ is 34": the value after the last "is"/"are"/"equals"/"=" of a prose sentence.
_STATED = re.compile(r"^.*\s(?:is|are|equals|was|=)\s+(?P<rest>\S.*)$", re.DOTALL)
_ABBREVIATIONS = re.compile(r"\b(?:e\.g|i\.e|approx)\.,?", re.IGNORECASE)
_FILLER = re.compile(
    r"^(?:(?:therefore|thus|then|so|simply|exactly|approximately|about|roughly|around|just)\b"
    r"[\s,:]*|\\approx\s*|≈\s*)+",
    re.IGNORECASE,
)
_PROSE = re.compile(r"(?<![\\A-Za-z])[a-z]{3,}\s+[a-z]{2,}")
# An answer sentence longer than this is not an answer (and bounds the span search).
_WINDOW = 1000
# The `whole` rule: at most this many characters, and no words but these.
_WHOLE_MAX_CHARS = 200
_MATH_WORDS = frozenset(
    {"sqrt", "sin", "cos", "tan", "cot", "sec", "csc", "arcsin", "arccos", "arctan", "sinh",
     "cosh", "tanh", "log", "ln", "lg", "exp", "pi", "inf", "infty", "infinity", "and", "or", "to",
     "mod", "gcd", "lcm", "max", "min", "det", "deg", "cm", "km", "mm", "kg", "mph", "ft", "in",
     "units", "unit", "degrees", "degree", "dollars", "cents", "percent", "pct"}
)  # fmt: skip
_LATEX_WORD = re.compile(
    r"\\(?:text\w*|mathrm|mbox|operatorname|begin|end)\s*\{[^{}]*\}|\\[A-Za-z]+"
)
# A word of three or more letters, or a two-letter English word; other short runs are products
# of variables (`ab`, `xy`).
_WORD = re.compile(
    r"(?<![A-Za-z\\])(?:[A-Za-z]{3,}|(?:is|it|so|we|be|of|as|at|by|if|on|an|my|me|do|he|us|am)"
    r"(?![A-Za-z]))"
)


@dataclass(frozen=True)
class Extraction:
    """The answer string found in a model output and the name of the rule that found it."""

    text: str
    rule: str


def extract_answer(output: str, last_number_fallback: bool = True) -> Extraction | None:
    """Find the final answer in ``output``; None when no rule matches."""
    if not isinstance(output, str):
        return None
    if boxes := _boxes(output):
        # "The final answer is $X$." written after the last box wins: the box was a step.
        final = _final_answer_after(output, boxes[-1][1])
        return final or Extraction(_joined_boxes(output, boxes), "boxed")
    if matches := _GSM8K.findall(output):
        return Extraction(_clean_tail(matches[-1]), "gsm8k")
    for rule, pattern in (("answer_is", _ANSWER_IS), ("answer_label", _ANSWER_LABEL)):
        if matches := pattern.findall(output):
            answer = _sentence_answer(matches[-1])
            if answer:
                return Extraction(answer, rule)
    if is_bare_answer(output):
        return Extraction(_clean_tail(output), "whole")
    # In prose, `$n$`, `$\\theta$`, `$AB$`, `$f(x)$` name things, and are answers only when
    # they end the output ("so the value is $a$.").
    spans = [
        span
        for span in math_spans(output)
        if not _MENTION.fullmatch(span[2]) or not output[span[1] :].strip(" \t\n.,;!*_")
    ]
    numbers = list(_LAST_NUMBER.finditer(output)) if last_number_fallback else []
    # In prose, whichever comes last: "so $d = 90/n$ ... there are 12 sequences" means 12.
    if numbers and (not spans or numbers[-1].start() >= spans[-1][1]):
        return Extraction(numbers[-1][0].rstrip(",").strip(), "last_number")
    if spans:
        return Extraction(spans[-1][2], "math_span")
    return None


def _boxes(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, content)`` of every complete ``\\boxed{...}``/``\\fbox{...}``."""
    starts = [(m.start(), m.end()) for m in _BOX.finditer(text)]
    if not starts:
        return []
    closing: dict[int, int] = {}
    stack: list[int] = []
    for i, ch in enumerate(text):
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            closing[stack.pop()] = i
    boxes = []
    for start, after in starts:
        rest = text[after:].lstrip()
        opening = len(text) - len(rest)
        if rest.startswith("{"):
            if opening in closing:
                boxes.append((start, closing[opening] + 1, text[opening + 1 : closing[opening]]))
        elif rest and (m := re.match(r"[^\s$.,]+", rest)):  # \boxed 7
            boxes.append((start, opening + m.end(), m[0]))
    return boxes


# Between two boxes that state one answer together: `\boxed{-2} \quad\text{and}\quad \boxed{1}`
# (not "or": `\boxed{15\frac{39}{40}}, or \boxed{\frac{639}{40}}` is one value written twice).
_BOX_JOINER = re.compile(r"[\s,;$]*(?:(?:\\quad|\\qquad|\\text\{\s*and\s*\}|and|\\,)[\s,;$]*)*")


def _joined_boxes(text: str, boxes: list[tuple[int, int, str]]) -> str:
    """The last box, with the boxes just before it that only a joiner separates."""
    group = [boxes[-1]]
    for box in reversed(boxes[:-1]):
        if not _BOX_JOINER.fullmatch(text[box[1] : group[0][0]]):
            break
        group.insert(0, box)
    return ", ".join(content.strip() for _, _, content in group)


_FINAL_ANSWER = re.compile(r"final\s+answer", re.IGNORECASE)


def _final_answer_after(text: str, position: int) -> Extraction | None:
    """A "final answer is ..." / "Final Answer: ..." stated after ``position`` (the last box)."""
    found = [m for m in _FINAL_ANSWER.finditer(text) if m.start() >= position]
    if not found:
        return None
    tail = text[found[-1].start() :]
    for rule, pattern in (("answer_is", _ANSWER_IS), ("answer_label", _ANSWER_LABEL)):
        if (m := pattern.search(tail)) and (answer := _sentence_answer(m["ans"])):
            return Extraction(answer, rule)
    return None


@functools.lru_cache(maxsize=8192)  # an RL batch grades many samples against the same gold
def extract_gold(gold: str) -> str:
    """The answer inside a gold: a bare answer stays as it is; a MATH ``solution``, a gold with
    ``\\boxed{}`` (``x \\in \\boxed{[1, 2]}``) or a math span (``$40$ km``) is read by the same
    rules as a model output, except that a gold never falls back to its last number.

    >>> extract_gold(r"... so the total is $\\boxed{\\frac{1}{2}}$.")
    '\\\\frac{1}{2}'
    >>> extract_gold("1, 2")
    '1, 2'
    """
    found = extract_answer(gold, last_number_fallback=False)
    return found.text if found is not None else gold.strip()


def is_bare_answer(text: str) -> bool:
    """Whether ``text`` is short, on one line, and all maths (or one or two words alone)."""
    s = text.strip().rstrip(".").strip()
    if not s or len(s) > _WHOLE_MAX_CHARS or "\n" in s:
        return False
    words = _WORD.findall(_LATEX_WORD.sub(" ", s))
    # maths names, and points or figures named in capitals (`\\triangle ABC`)
    if all(w.lower() in _MATH_WORDS or (w.isupper() and len(w) <= 4) for w in words):
        return True
    # an answer in one or two words: `Evelyn`, `odd`, `no solution` (not `I don't know`)
    return len(s.split()) <= 2 and re.fullmatch(r"[A-Za-z][A-Za-z' ]*", s) is not None


_DELIMITER = re.compile(r"\\\$|\$\$|\$|\\\(|\\\)|\\\[|\\\]|\n")
_CLOSER = {"$$": "$$", "$": "$", "\\(": "\\)", "\\[": "\\]"}


_MENTION = re.compile(
    r"[A-Za-z]{1,3}(?:_\{?\w+\}?)?|\\[A-Za-z]+|[A-Za-z]{1,2}\([A-Za-z]\)|\\overline\{\w+\}"
)


def math_spans(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, content)`` of every math span, in one pass over the delimiters (linear:
    a lazy regular expression rescans to the end for every unclosed opener, which made
    30,000 unclosed ``\\(`` cost 40 s). Inline spans (``$``, ``\\(``) end at a line break
    unclosed; ``\\$`` is a dollar sign; empty spans and runs of ``$`` are not spans."""
    spans, opener, start = [], None, 0
    for m in _DELIMITER.finditer(text):
        token = m[0]
        if token == "\\$":
            continue
        if opener is None:
            if token in _CLOSER:
                opener, start = token, m.end()
            continue
        if token == "\n" and opener in ("$", "\\("):
            opener = None  # an inline span does not cross a line
        elif token == _CLOSER[opener]:
            content = text[start : m.start()].strip().rstrip(".,;").strip()
            # `$$$$` runs of a degenerate rollout, and prose that two stray dollars enclose
            if content.strip("$ ") and not _PROSE.search(_LATEX_WORD.sub(" ", content)):
                spans.append((start - len(opener), m.end(), content))
            opener = None
    return spans


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}``/``\\fbox{...}``, braces matched; None if absent.

    Braces are matched in one pass over the text, so many unclosed boxes (a degenerate rollout)
    cost linear time, not quadratic."""
    boxes = _boxes(text)
    return boxes[-1][2] if boxes else None


def _sentence_answer(captured: str) -> str:
    """The answer at the start of the text after "the answer is" / "Answer:"."""
    text = _ABBREVIATIONS.sub(" ", captured[:_WINDOW]).strip().strip("*_ ")
    text = _FILLER.sub("", text)
    if text.startswith(("$", "\\(", "\\[")) and (m := _MATH_SPAN.match(text)):
        content = _span(m.groups()).strip()
        rest = text[m.end() :]
        end = _CLAUSE_END.search(rest)
        if not _PROSE.search(content) and not _MATH_SPAN.search(
            rest[: end.start()] if end else rest
        ):
            return _clean_tail(content)
    if re.match(r"\$\d", text):
        text = text[1:]  # a currency sign ("$18, since she spent $2"), not a delimiter
    end = _CLAUSE_END.search(text)
    sentence = text[: end.start()] if end else text
    spans = _MATH_SPAN.findall(sentence)
    prose = _PROSE.search(_MATH_SPAN.sub(" ", sentence)) is not None
    if len(spans) == 1 and not prose:
        return _clean_tail(_span(spans[0]))
    if prose and (m := _STATED.search(sentence)):
        return _sentence_answer(m["rest"])  # "The volume of $ABCD$ is 120" -> 120
    if prose and (numbers := _LAST_NUMBER.findall(sentence)):
        return numbers[-1].rstrip(",")  # "Jane started growing it 3 hours ago" -> 3
    return _clean_tail(sentence.replace("$", "") if len(spans) > 1 else sentence)


def _span(groups: tuple[str | None, ...]) -> str:
    return next((g for g in groups if g), "")


def _clean_tail(text: str) -> str:
    return text.strip().strip("*_ ").rstrip(".,;:").strip()
