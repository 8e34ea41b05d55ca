"""Text clean-up of an extracted answer before it is parsed, and exact parsing of plain numbers.

Everything here is string work with bounded cost (regular expressions without nested
quantifiers, inputs capped at :data:`MAX_ANSWER_CHARS`), so it runs in the caller's process.

>>> normalize(r"$\\dfrac{1}{2}$.").text
'\\\\frac{1}{2}'
>>> parse_number("1,234.5")
Fraction(2469, 2)
>>> parse_number(r"-2\\frac{1}{4}")  # a mixed number
Fraction(-9, 4)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

MAX_ANSWER_CHARS = 1000
"""Longer answers (after extraction) are graded False without being parsed."""
MAX_BRACE_DEPTH = 40
MAX_NUMBER_DIGITS = 400
MAX_DECIMAL_EXPONENT = 400

_WRAPPERS = re.compile(r"^\\(?:boxed|fbox)\s*\{(?P<body>.*)\}$", re.DOTALL)
_TEXT = (
    r"text|textbf|textit|textrm|textsf|texttt|textnormal|textup|mathrm|mathbf|mathit|mathsf|mbox"
)
_TEXT_COMMANDS = re.compile(rf"\\(?:{_TEXT}|operatorname)\s*\{{([^{{}}]*)\}}")
# `\frac{270}{7}\text{ degrees}`, `4\pi \text{ cm}^2`: a unit in \text after a value (two or
# more letters, so `\mathrm{i}` and `\mathrm{e}` stay); `x \in [a, b]`: a label.
_TEXT_UNIT_TAIL = re.compile(
    rf"(?<=\S)\s*\\(?:{_TEXT})\s*\{{\s*(?P<unit>[a-zA-Z]{{2,}}[a-zA-Z ]*?)\s*\}}"
    r"(?P<power>\^\{?[23]\}?)?$"
)
_OUTER_BRACES = re.compile(r"\{(.*)\}", re.DOTALL)
_AROUND_MATRIX = re.compile(
    r"[(\[]\s*(\\begin\{(?:[pbBvV]?matrix|array)\}.*\\end\{(?:[pbBvV]?matrix|array)\})\s*[)\]]",
    re.DOTALL,
)
_MEMBERSHIP = re.compile(r"^[a-zA-Z]\s*\\in\s*")
_SPACING = re.compile(r"(?<!\\)\\(?:!|,|;|:|\s|quad|qquad)|~")
_SIZING = re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big|displaystyle)(?![a-zA-Z])")
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|\\circ|°|\\degree")
_PERCENT = re.compile(r"\s*(?:\\%|%|percent(?:age)?|pct)$", re.IGNORECASE)
_FRAC_SHORT = re.compile(r"\\frac\s*(\{[^{}]*\}|\d|[a-zA-Z])\s*(\{[^{}]*\}|\d|[a-zA-Z])")
_SQRT_SHORT = re.compile(r"\\sqrt\s*(\d)")
# `1{,}000`, `1\\,000`, `1\\!000`, `11,\\! 111`: thousands separators that LaTeX writers use.
_THOUSANDS_LATEX = re.compile(r"(?<=\d)(?:\{,\}|,?\\[,!]\s?)(?=\d{3}(?!\d))")
# A number, a space, then unit words: known units (`10 cm`, `5 h`), or words of three or more
# letters (`18 apples`, `3 square feet`) that are not maths (`2 pi`, `5 squared`), scale
# words (handled by _SCALE) or connectives. One- and two-letter runs (`6 xy`) are variables.
_NOT_UNITS = (
    r"pi|sqrt|sin|cos|tan|cot|sec|csc|log|ln|exp|and|or|to|the|squared|cubed|factorial|"
    r"infinity|inf|more|less|times|over|plus|minus|million|billion|thousand|hundred|dozen"
)
_KNOWN_UNITS = r"mm|cm|m|km|g|kg|mg|lb|lbs|oz|ft|in|yd|mi|mph|kph|s|h|hr|hrs|min|ml|l|L"
_UNITS_TAIL = re.compile(
    r"^(?P<value>[-+]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:/\d+)?)\s+"
    rf"(?P<unit>(?:(?:{_KNOWN_UNITS})\b|(?!(?:{_NOT_UNITS})\b)[a-zA-Z]{{3,}})"
    r"(?:\s+(?!(?:" + _NOT_UNITS + r")\b)[a-zA-Z]{3,})*(?:\^\{?[23]\}?)?)\.?$",
    re.IGNORECASE,
)
_SCALE = re.compile(
    r"^(?P<value>[-+]?(?:\d+(?:\.\d+)?|\.\d+))\s+(?P<word>thousand|million|billion|dozen|hundred)$",
    re.IGNORECASE,
)
_SCALES = {"hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9, "dozen": 12}
# Relations written every way, to one spelling each: `>=`, `\\geq`, `\\geqslant` and `≥` become
# `\\ge`; `!=`, `\\ne` become `\\neq`; `\\lt`, `\\gt` become `<`, `>`.
_RELATIONS = (
    (re.compile(r">=|\\geq?(?:slant)?(?![a-zA-Z])|≥"), r"\\ge "),
    (re.compile(r"<=|\\leq?(?:slant)?(?![a-zA-Z])|≤"), r"\\le "),
    (re.compile(r"!=|\\neq?(?![a-zA-Z])|≠"), r"\\neq "),
    (re.compile(r"\\lt(?![a-zA-Z])"), "<"),
    (re.compile(r"\\gt(?![a-zA-Z])"), ">"),
)
# Backslashes that arrive doubled (`\\\\frac{1}{2}`, from JSON or a Python repr): undone only when a
# command is written with two and none with one (a bare `1 & 2 \\\\ 3 & 4` keeps its row break).
_DOUBLED = re.compile(r"\\\\")
_DOUBLED_COMMAND = re.compile(r"(?<!\\)\\\\[a-zA-Z]")
_SINGLE_COMMAND = re.compile(r"(?<!\\)\\(?!\\)[a-zA-Z]")
# `0,25`, `2500,75`: a comma followed by other than three digits can only be a decimal comma.
DECIMAL_COMMA = re.compile(r"[-+]?\d+,(?:\d{1,2}|\d{4,})|[-+]?0,\d+")
_UNICODE = str.maketrans(
    {"√": "\\sqrt ", "∞": "\\infty ", "π": "\\pi ", "×": "\\times ", "÷": "/", "−": "-",
     "²": "^2", "³": "^3", "½": "1/2", "¼": "1/4", "¾": "3/4", "≤": "\\le ", "≥": "\\ge "}
)  # fmt: skip
_APPROX = re.compile(r"^(?:\\approx|≈|~)\s*")
_CURRENCY = re.compile(r"\\\$|^\$(?=\s*\d)|\b(?:USD|dollars?|cents?|euros?)\b|€|£|¥")

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_THOUSANDS = re.compile(
    r"[-+]?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?|[-+]?[1-9]\d{0,2}(?: \d{3})+(?:\.\d+)?"
)
_FRACTION = re.compile(r"(?P<sign>[-+]?)(?P<num>\d+)\s*/\s*(?P<den>\d+)")
_LATEX_FRACTION = re.compile(r"(?P<sign>[-+]?)\\frac\{(?P<num>\d+)\}\{(?P<den>\d+)\}")
_MIXED = re.compile(
    r"(?P<sign>[-+]?)(?P<whole>\d+)\s*(?:\\frac\{(?P<n1>\d+)\}\{(?P<d1>\d+)\}|\s(?P<n2>\d+)/(?P<d2>\d+))"
)
_SCIENTIFIC = re.compile(
    r"(?P<mant>[-+]?(?:\d+\.?\d*|\.\d+))\s*(?:\\times|\\cdot|\*|x)\s*10\s*\^\s*\{?(?P<exp>[-+]?\d+)\}?"
)
_CHOICE = re.compile(r"\(?\s*(?P<letter>[A-Ea-e])\s*\)?[.:]?(?:\s+(?P<rest>.*))?", re.DOTALL)


@dataclass(frozen=True)
class Normalized:
    """An answer after clean-up: ``text``, whether it carried a percent sign, and the unit that
    was removed from it (lower-case, singular; ``""`` if none)."""

    text: str
    percent: bool = False
    unit: str = ""


def strip_math_delimiters(text: str) -> str:
    """Remove ``$``/``$$``, ``\\(...\\)``, ``\\[...\\]`` and whole-answer ``\\boxed{...}``."""
    s = text.strip()
    s = s.replace("\\$", "\\DOLLAR")  # currency, not a delimiter
    s = (
        s.replace("$", "")
        .replace("\\(", "")
        .replace("\\)", "")
        .replace("\\[", "")
        .replace("\\]", "")
    )
    s = s.replace("\\DOLLAR", "\\$").strip()
    while (m := _WRAPPERS.match(s)) and _balanced(m["body"]):
        s = m["body"].strip()
    return s


def normalize(text: str) -> Normalized:
    """Clean an extracted answer: delimiters, ``\\dfrac``, sizing and spacing commands, degrees,
    ``\\text{}``, currency, units after a value, scale words, thousands separators, Unicode
    maths symbols, trailing periods."""
    s = text
    if _DOUBLED_COMMAND.search(s) and not _SINGLE_COMMAND.search(s):
        s = _DOUBLED.sub(lambda m: "\\", s)
    s = strip_math_delimiters(s).translate(_UNICODE)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\cfrac", "\\frac")
    for pattern, spelling in _RELATIONS:
        s = pattern.sub(spelling, s)
    s = _THOUSANDS_LATEX.sub("", s)
    s = _SIZING.sub("", s)
    s = _SPACING.sub(" ", s)
    s = _DEGREES.sub("", s)
    unit = ""
    if m := _TEXT_UNIT_TAIL.search(s):
        unit = m["unit"] + (m["power"] or "")
        s = s[: m.start()]
    s = _MEMBERSHIP.sub("", _APPROX.sub("", s.strip()))
    s = _TEXT_COMMANDS.sub(r"\1", s)
    s = _CURRENCY.sub("", s)
    s = _FRAC_SHORT.sub(lambda m: f"\\frac{_braced(m[1])}{_braced(m[2])}", s)
    s = _SQRT_SHORT.sub(r"\\sqrt{\1}", s)
    s = s.strip().rstrip(".,;").strip()
    while (m := _OUTER_BRACES.fullmatch(s)) and _balanced(m[1]):
        s = m[1].strip()  # `{1,3}`: TeX grouping braces, not a set (a set is `\\{1,3\\}`)
    while (m := _AROUND_MATRIX.fullmatch(s)) and _balanced(m[1]):
        s = m[1].strip()  # `\\left[\\begin{array}...\\end{array}\\right]`, `(\\begin{pmatrix}...)`
    percent = False
    if m := _PERCENT.search(s):
        percent = True
        s = s[: m.start()].strip()
    if m := _UNITS_TAIL.match(s):
        s, unit = m["value"], m["unit"]
    if m := _SCALE.match(s):
        value = Fraction(m["value"]) * _SCALES[m["word"].lower()]
        s = (
            str(value.numerator)
            if value.denominator == 1
            else f"{value.numerator}/{value.denominator}"
        )
    if _THOUSANDS.fullmatch(s):
        s = s.replace(",", "").replace(" ", "")
    s = re.sub(r"\s+", " ", s).strip()
    return Normalized(s, percent, _unit_key(unit))


def _unit_key(unit: str) -> str:
    """``"Square Feet"`` -> ``"square foot"``-ish: lower-case, single spaces, no plural ``s``."""
    words = unit.lower().split()
    return " ".join(w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words)


def parse_number(text: str, decimal_comma: bool = True) -> Fraction | None:
    """The exact value of a plain number, or None: integers, decimals, ``a/b``, ``\\frac{a}{b}``,
    mixed numbers (``2 1/2``, ``2\\frac{1}{2}``), scientific notation (``1.5e3``,
    ``1.5 \\times 10^{3}``), with thousands separators. Sizes are capped so this stays fast.

    With ``decimal_comma``, a comma that cannot be a thousands separator is a decimal comma
    (``0,25``, ``2500,75``); ``1,000`` is always one thousand."""
    s = text.strip().replace(" ", " ")
    if not s or len(s) > MAX_NUMBER_DIGITS:
        return None
    if decimal_comma and DECIMAL_COMMA.fullmatch(s):
        s = s.replace(",", ".")
    if _THOUSANDS.fullmatch(s):
        s = s.replace(",", "")
    if _NUMBER.fullmatch(s):
        return _decimal(s)
    if m := _FRACTION.fullmatch(s) or _LATEX_FRACTION.fullmatch(s):
        den = int(m["den"])
        value = Fraction(int(m["num"]), den) if den else None
        return -value if value is not None and m["sign"] == "-" else value
    if m := _MIXED.fullmatch(s):
        num, den = (m["n1"], m["d1"]) if m["n1"] else (m["n2"], m["d2"])
        if int(den) == 0 or int(num) >= int(den):
            return None
        value = int(m["whole"]) + Fraction(int(num), int(den))
        return -value if m["sign"] == "-" else value
    if m := _SCIENTIFIC.fullmatch(s):
        exp = int(m["exp"])
        mant = _decimal(m["mant"])
        if mant is None or abs(exp) > MAX_DECIMAL_EXPONENT:
            return None
        return mant * Fraction(10) ** exp
    return None


def _decimal(s: str) -> Fraction | None:
    exp = re.search(r"[eE]([-+]?\d+)$", s)
    if exp and abs(int(exp[1])) > MAX_DECIMAL_EXPONENT:
        return None
    return Fraction(s)


def decimal_places(text: str) -> int | None:
    """Digits after the point if ``text`` is a plain decimal like ``0.333``, else None."""
    m = re.fullmatch(r"[-+]?\d*\.(\d+)", text.strip())
    return len(m[1]) if m else None


def significant_digits(text: str) -> int:
    digits = re.sub(r"\D", "", text).lstrip("0")
    return len(digits)


def choice_letter(text: str) -> str | None:
    """The multiple-choice letter of ``(C)``, ``C``, ``C.``, ``(C) 12``; None otherwise, and
    None for hedges that name a second option (``A or B``, ``(A) (B)``)."""
    m = _CHOICE.fullmatch(text.strip())
    if not m or (m["rest"] and re.search(r"(?<![A-Za-z])[A-Ea-e](?![A-Za-z])", m["rest"])):
        return None
    return m["letter"].upper()


def is_choice(gold: str) -> bool:
    """A gold answer is a multiple-choice letter if it is one capital A-E, bracketed or not."""
    return re.fullmatch(r"\(?\s*[A-E]\s*\)?", gold.strip()) is not None


def is_plain_text(text: str) -> bool:
    """Words only (e.g. ``odd``, ``Monday``): no digits, operators or LaTeX commands."""
    return re.fullmatch(r"[A-Za-z][A-Za-z' ]*", text) is not None and len(text) > 1


def brace_depth(text: str) -> int:
    depth = deepest = 0
    for ch in text:
        if ch in "{([":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "})]":
            depth -= 1
    return deepest


def _braced(arg: str) -> str:
    return arg if arg.startswith("{") else "{" + arg + "}"


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += ch == "{"
        depth -= ch == "}"
        if depth < 0:
            return False
    return depth == 0
