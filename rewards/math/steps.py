"""Check each arithmetic step of a GSM8K-style solution with exact rational arithmetic.

GSM8K reference solutions annotate every calculation for a calculator: ``48/2 = <<48/2=24>>24``.
Model solutions usually write plain ``a op b = c``. :func:`check_steps` splits a solution into
steps (lines), checks every annotation in a step, or else every plain equation, and returns one
:class:`StepCheck` per step: ``correct`` is True/False, or None when the step has no arithmetic.
The process-reward issue uses these verdicts as step labels.

Arithmetic is evaluated by a tiny parser over ``+ - * / × ÷ x ( )`` and decimals, into
``fractions.Fraction``: exact, and bounded (numbers longer than 30 digits are not evaluated).

>>> [s.correct for s in check_steps("She sold 48/2 = <<48/2=24>>24 clips.\\nIn all 48+24 = 71.\\n#### 72")]
[True, False]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

MAX_DIGITS = 30

_ANNOTATION = re.compile(r"<<(?P<expr>[^<>=]+)=(?P<result>[^<>]+)>>")
_NUMBER = r"\$?\d[\d,]*(?:\.\d+)?%?|\$?\.\d+%?"
# `expr = result` where expr has at least one operator between numbers.
_EQUATION = re.compile(
    rf"(?P<expr>(?:{_NUMBER}|[(])(?:\s*(?:[-+*/×÷]|\sx\s)\s*\(*\s*(?:{_NUMBER})\s*\)*)+)"
    rf"\s*=\s*(?P<result>-?(?:\d+/\d+(?![\d.])|{_NUMBER}))"
)
_TOKEN = re.compile(r"\s*(?:(?P<num>\d+(?:\.\d*)?|\.\d+)|(?P<op>[-+*/()]))")


@dataclass(frozen=True)
class StepCheck:
    """The verdict on one step: ``expressions`` are the calculations found, ``computed`` their
    exact values, ``claimed`` the results the step states."""

    index: int
    text: str
    expressions: tuple[str, ...]
    claimed: tuple[str, ...]
    computed: tuple[Fraction | None, ...]
    correct: bool | None


def split_steps(solution: str) -> list[str]:
    """Non-empty lines of a solution, without GSM8K's final ``#### N`` line."""
    return [
        line.strip()
        for line in solution.splitlines()
        if line.strip() and not line.strip().startswith("####")
    ]


def check_steps(solution: str) -> list[StepCheck]:
    """One verdict per step of ``solution`` (see the module docstring)."""
    return [check_step(i, step) for i, step in enumerate(split_steps(solution))]


def check_step(index: int, step: str) -> StepCheck:
    pairs = [(m["expr"], m["result"]) for m in _ANNOTATION.finditer(step)]
    if not pairs:
        plain = _ANNOTATION.sub("", step)
        pairs = [(m["expr"], m["result"]) for m in _EQUATION.finditer(plain)]
    if not pairs:
        return StepCheck(index, step, (), (), (), None)
    computed = tuple(evaluate(expr) for expr, _ in pairs)
    verdicts = [
        value is not None and _matches(value, claimed)
        for value, (_, claimed) in zip(computed, pairs, strict=True)
    ]
    return StepCheck(
        index,
        step,
        tuple(e.strip() for e, _ in pairs),
        tuple(c.strip() for _, c in pairs),
        computed,
        all(verdicts),
    )


def evaluate(expression: str) -> Fraction | None:
    """The exact value of ``expression`` (``+ - * / ( )``, ``x``/``×`` for times, ``÷``,
    ``$``, ``%`` and thousands separators allowed); None if it is not plain arithmetic."""
    text = expression.replace("×", "*").replace("÷", "/").replace("$", "").replace(",", "").strip()
    text = re.sub(r"(?<=[\d)\s])x(?=[\s\d(])", "*", text)
    text = re.sub(r"(\d+(?:\.\d+)?|\.\d+)%", r"(\1/100)", text)
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            if text[pos:].strip() == "":
                break
            return None
        kind = m.lastgroup
        if kind == "num" and len(m[kind]) > MAX_DIGITS:
            return None
        tokens.append((kind, m[kind]))
        pos = m.end()
    try:
        value, rest = _sum(tokens)
    except (IndexError, ZeroDivisionError, ValueError):
        return None
    return value if not rest else None


def _sum(tokens):
    value, tokens = _product(tokens)
    while tokens and tokens[0][1] in "+-" and tokens[0][0] == "op":
        op, (right, tokens) = tokens[0][1], _product(tokens[1:])
        value = value + right if op == "+" else value - right
    return value, tokens


def _product(tokens):
    value, tokens = _unary(tokens)
    while tokens and tokens[0][0] == "op" and tokens[0][1] in "*/":
        op, (right, tokens) = tokens[0][1], _unary(tokens[1:])
        value = value * right if op == "*" else value / right
    return value, tokens


def _unary(tokens):
    if tokens[0] in (("op", "-"), ("op", "+")):
        value, rest = _unary(tokens[1:])
        return (-value if tokens[0][1] == "-" else value), rest
    if tokens[0] == ("op", "("):
        value, rest = _sum(tokens[1:])
        if not rest or rest[0] != ("op", ")"):
            raise ValueError("unclosed parenthesis")
        return value, rest[1:]
    kind, text = tokens[0]
    if kind != "num":
        raise ValueError(f"unexpected {text!r}")
    return Fraction(text), tokens[1:]


def _matches(value: Fraction, claimed: str) -> bool:
    """Exact equality, or ``claimed`` is ``value`` rounded to the decimals it shows."""
    text = claimed.strip().replace("$", "").replace(",", "").rstrip(".")
    percent = text.endswith("%")
    text = text.rstrip("%")
    if m := re.fullmatch(r"(-?\d{1,15})/(\d{1,15})", text):
        return int(m[2]) != 0 and Fraction(int(m[1]), int(m[2])) == value
    if not re.fullmatch(r"-?(?:\d+(?:\.\d*)?|\.\d+)", text) or len(text) > MAX_DIGITS:
        return False
    stated = Fraction(text) / (100 if percent else 1)
    if stated == value:
        return True
    places = len(text.partition(".")[2])
    return places > 0 and abs(stated - value) <= Fraction(1, 2 * 10**places)
