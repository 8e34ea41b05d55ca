"""Turn one answer string into a sympy expression without ever evaluating Python.

Two parsers, both building sympy objects node by node:

- LaTeX (anything with a backslash or braces) goes to ``latex2sympy2_extended``, an ANTLR
  grammar for LaTeX math; it never calls ``eval``/``sympify`` on the text.
- Plain text (``3/4``, ``2*sqrt(3)``, ``x**2 + 1``, ``1.5e3``) goes to the small recursive-descent
  parser below, written here because sympy's ``parse_expr`` evaluates Python and
  latex2sympy2 misreads plain syntax (``1.5e3`` becomes ``1.5·e·3``, ``**`` is not LaTeX).

Why not math-verify's ``parse`` inside the grading workers (the workers would make its
``signal.alarm`` timeout work): its plain-expression path hands the matched text to sympy's
``parse_expr``, which runs Python ``eval`` on it (its regular expression lets only digits,
spaces and ``+-*/^()`` through, so it is narrow, but it is model text executed as Python, which
this project never does), and its answer selection differs from assay's documented rules (a bare ``\\frac{2}{5}`` without ``$``
is not read at all; see the differential harness ``benchmarks/grader_diff.py``). Its LaTeX
parser is the one used here: ``latex2sympy2_extended``, by the same authors.

Both refuse size bombs up front (:func:`check_bounds`): powers with huge or stacked numeric
exponents and huge factorials raise :class:`TooLarge` instead of being computed.
"""

from __future__ import annotations

import re
from fractions import Fraction

import sympy

from rewards.math.normalize import MAX_ANSWER_CHARS, MAX_BRACE_DEPTH, brace_depth, parse_number

MAX_EXPONENT = 10_000
MAX_FACTORIAL = 1_000


class ParseError(ValueError):
    """The answer could not be read as math."""


class TooLarge(ParseError):
    """The answer asks for a number too large to compute (an exponent or factorial bomb)."""


# A numeric exponent of five or more digits, or a power whose exponent is itself a power.
_BIG_EXPONENT = re.compile(r"(?:\^|\*\*)\s*[{(]?\s*[-+]?\d{5,}")
_STACKED_POWER = re.compile(
    r"(?:\^|\*\*)\s*(?:[{(]\s*)*[-+]?[\d.]+\s*(?:[})]\s*)*(?:\^|\*\*)\s*(?:[{(]\s*)*[-+]?\d"
)
_BIG_FACTORIAL = re.compile(r"\d{4,}\s*!")


def check_bounds(text: str) -> None:
    """Raise TooLarge/ParseError for inputs no real answer has: over-long, deeply nested,
    or asking for astronomically large numbers."""
    if len(text) > MAX_ANSWER_CHARS:
        raise TooLarge(f"answer longer than {MAX_ANSWER_CHARS} characters")
    if brace_depth(text) > MAX_BRACE_DEPTH:
        raise TooLarge(f"brackets nested deeper than {MAX_BRACE_DEPTH}")
    if _BIG_EXPONENT.search(text) or _STACKED_POWER.search(text):
        raise TooLarge("numeric exponent too large")
    if _BIG_FACTORIAL.search(text):
        raise TooLarge("factorial too large")


def to_sympy(text: str) -> sympy.Basic:
    """Parse one scalar answer (no top-level commas) into sympy."""
    check_bounds(text)
    if (number := parse_number(text)) is not None:
        return sympy.Rational(number.numerator, number.denominator)
    if ":" in text:
        raise ParseError("ratios like 4:2 are compared as written, not as numbers")
    if re.search(r"\d\s+\d", text) and "\\" not in text:
        raise ParseError("numbers separated by a space")
    if "\\" in text or "{" in text:
        return _latex(text)
    try:
        return PlainParser(text).parse()
    except ParseError:
        return _latex(text)


def _latex(text: str) -> sympy.Basic:
    from latex2sympy2_extended import latex2sympy

    try:
        expr = latex2sympy(text)
    except RecursionError as err:
        raise TooLarge("expression nested too deeply") from err
    except Exception as err:  # the ANTLR parser raises bare Exception on syntax errors
        raise ParseError(f"not LaTeX math: {str(err).splitlines()[0][:80]}") from err
    if not isinstance(expr, sympy.Basic | sympy.MatrixBase):
        raise ParseError(f"not a math expression: {type(expr).__name__}")
    return expr


# ----------------------------------------------------------------------------- plain parser
_TOKEN = re.compile(
    r"\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)|(?P<name>[A-Za-z]+)|(?P<op>\*\*|[-+*/^()!×÷·]))"
)
_FUNCTIONS = {
    "sqrt": sympy.sqrt,
    "sin": sympy.sin,
    "cos": sympy.cos,
    "tan": sympy.tan,
    "log": sympy.log,
    "ln": sympy.log,
    "exp": sympy.exp,
    "abs": sympy.Abs,
}
_CONSTANTS = {"pi": sympy.pi, "e": sympy.E, "oo": sympy.oo, "inf": sympy.oo, "infinity": sympy.oo}


class PlainParser:
    """Recursive descent over ``+ - * / ^ ** ! ( )``, numbers, names and implicit products.

    Grammar (``^`` is right-associative and binds tighter than unary minus, as in maths)::

        sum     := product (("+" | "-") product)*
        product := unary (("*" | "/" | implicit) unary)*
        unary   := ("-" | "+") unary | power
        power   := postfix (("^" | "**") unary)?
        postfix := atom "!"*
        atom    := number | constant | function "(" sum ")" | name | "(" sum ")"

    Names are lower-cased (as latex2sympy2 does); a run of letters that is not a function or a
    constant is a product of one-letter symbols (``xy`` is ``x*y``, ``ba^2`` is ``b*a**2``), so
    both parsers agree.
    """

    def __init__(self, text: str):
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        text = text.strip()
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise ParseError(f"unexpected character {text[pos]!r}")
            kind, value = m.lastgroup, m[m.lastgroup]
            if kind == "name" and value.lower() not in _FUNCTIONS | _CONSTANTS:
                # `ba^2` is b·a², so each letter is its own token.
                self.tokens.extend(("name", ch) for ch in value)
            else:
                self.tokens.append((kind, value))
            pos = m.end()
        self.i = 0

    def parse(self) -> sympy.Basic:
        if not self.tokens:
            raise ParseError("empty expression")
        expr = self._sum()
        if self.i != len(self.tokens):
            raise ParseError(f"unexpected {self.tokens[self.i][1]!r}")
        return expr

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def _take(self, value: str) -> bool:
        tok = self._peek()
        if tok and tok[0] == "op" and tok[1] == value:
            self.i += 1
            return True
        return False

    def _sum(self) -> sympy.Basic:
        expr = self._product()
        while True:
            if self._take("+"):
                expr = expr + self._product()
            elif self._take("-"):
                expr = expr - self._product()
            else:
                return expr

    def _product(self) -> sympy.Basic:
        expr = self._unary()
        while True:
            tok = self._peek()
            if tok is None:
                return expr
            if tok[0] == "op" and tok[1] in ("*", "×", "·"):
                self.i += 1
                expr = expr * self._unary()
            elif tok[0] == "op" and tok[1] in ("/", "÷"):
                self.i += 1
                expr = expr / self._unary()
            elif tok[0] == "num" and self.tokens[self.i - 1][0] == "num":
                raise ParseError("two numbers side by side (`3 4`): not a product")
            elif tok[0] in ("num", "name") or tok == ("op", "("):
                expr = expr * self._power()  # implicit product: 2x, 2(x+1), x y
            else:
                return expr

    def _unary(self) -> sympy.Basic:
        if self._take("-"):
            return -self._unary()
        if self._take("+"):
            return self._unary()
        return self._power()

    def _power(self) -> sympy.Basic:
        base = self._postfix()
        if self._take("^") or self._take("**"):
            return safe_pow(base, self._unary())
        return base

    def _postfix(self) -> sympy.Basic:
        expr = self._atom()
        while self._take("!"):
            if not (expr.is_Integer and 0 <= expr <= MAX_FACTORIAL):
                raise TooLarge("factorial of a large or non-integer value")
            expr = sympy.factorial(expr)
        return expr

    def _atom(self) -> sympy.Basic:
        tok = self._peek()
        if tok is None:
            raise ParseError("expression ends early")
        kind, value = tok
        self.i += 1
        if kind == "num":
            number = parse_number(value)
            if number is None:
                raise TooLarge(f"number {value[:20]!r} out of range")
            return sympy.Rational(number.numerator, number.denominator)
        if kind == "name":
            return self._name(value.lower())
        if value == "(":
            expr = self._sum()
            if not self._take(")"):
                raise ParseError("unclosed parenthesis")
            return expr
        raise ParseError(f"unexpected {value!r}")

    def _name(self, name: str) -> sympy.Basic:
        if name in _FUNCTIONS:
            if self._take("("):
                arg = self._sum()
                if not self._take(")"):
                    raise ParseError("unclosed parenthesis")
            else:
                arg = self._power()
            return _FUNCTIONS[name](arg)
        if name in _CONSTANTS:
            return _CONSTANTS[name]
        return sympy.Symbol(name)


def safe_pow(base: sympy.Basic, exponent: sympy.Basic) -> sympy.Basic:
    """``base ** exponent``, refusing integer exponents beyond :data:`MAX_EXPONENT`."""
    if exponent.is_Number and abs(exponent) > MAX_EXPONENT:
        raise TooLarge("exponent too large")
    if exponent.is_Number and base.is_Number and exponent.is_Rational and not exponent.is_Integer:
        # Roots of exact numbers stay exact (8**(1/3) -> 2) and cheap.
        return sympy.Pow(base, exponent)
    return base**exponent


def as_fraction(expr: sympy.Basic) -> Fraction | None:
    """The exact rational value of ``expr`` if it is a sympy Rational, else None."""
    if isinstance(expr, sympy.Rational):
        return Fraction(int(expr.p), int(expr.q))
    return None
