"""Is an extracted answer equivalent to the gold answer?

Two stages. :func:`quick_equivalent` settles the common cases in the caller's process with string
work and exact fractions (multiple-choice letters, plain numbers, identical strings, words) and
returns None when it cannot decide. :func:`full_equivalent` does the rest with sympy and must run
under a time bound (see :mod:`rewards.math.bounded`):

- structure first (:mod:`rewards.math.structure`): matrices, unions of intervals, sets, tuples
  and intervals, unordered lists of solutions, equations (a single-variable left side is a label,
  so ``x = 3`` matches ``3``), inequalities as intervals;
- then each scalar: exact rationals; otherwise numbers are compared at 30 digits, and expressions
  with free symbols at six points of both signs (a fast path that decides almost every case),
  falling back to ``simplify(a - g) == 0`` only when the numeric test is inconclusive.

A decimal answer written to ``d`` places (at least three significant digits) also matches a gold
value that is not a terminating decimal when it is that value rounded: ``0.333`` for ``1/3``,
``1.414`` for ``\\sqrt{2}``. Percent answers match the number without the sign; with
``percent_as_fraction`` they also match the fraction (``50%`` and ``0.5``).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from fractions import Fraction

import sympy

from rewards.math.expr import ParseError, TooLarge, check_bounds, to_sympy
from rewards.math.normalize import (
    MAX_ANSWER_CHARS,
    Normalized,
    choice_letter,
    decimal_places,
    is_choice,
    is_plain_text,
    normalize,
    parse_number,
    significant_digits,
)
from rewards.math.structure import label, structure

RELATIVE_TOLERANCE = 1e-9
ABSOLUTE_TOLERANCE = 1e-25  # 30-digit evaluation noise; e**-30 is still not 0
EXACT_TOLERANCE = 1e-20  # |a - b| for exact values: far above evalf noise, far below any unit
NUMERIC_POINTS = 6
IMAGINARY = sympy.Symbol("i")  # both parsers read `i` as a symbol; in answers it is sqrt(-1)


_SUBSCRIPT = re.compile(r"(?<=[\d}])_\s*(\{[^{}]*\}|\w)")  # a base: `2021_3`, `\\text{A5}_{11}`


@dataclass(frozen=True)
class EquivalenceOptions:
    """How lenient equivalence is. The defaults suit GSM8K and MATH."""

    percent_as_fraction: bool = False
    """Also accept ``50%`` for a gold ``0.5`` (and ``0.5`` for a gold ``50\\%``)."""
    rounded_decimals: bool = True
    """Accept a decimal answer that is the gold value rounded to the answer's places (>= 3
    significant digits), when the gold is not itself a terminating decimal."""


@dataclass(frozen=True)
class Verdict:
    correct: bool
    reason: str
    answer_norm: str
    gold_norm: str


# ----------------------------------------------------------------------------- quick stage
def quick_equivalent(answer: str, gold: str, options: EquivalenceOptions) -> Verdict | None:
    """Decide cheaply (bounded string work and exact fractions), or return None."""
    if len(answer) > MAX_ANSWER_CHARS:
        return Verdict(False, f"answer longer than {MAX_ANSWER_CHARS} characters", "", "")
    return _quick(normalize(answer), normalize(gold), options)


def _quick(a: Normalized, g: Normalized, options: EquivalenceOptions) -> Verdict | None:
    """:func:`quick_equivalent` on already normalised answers."""

    def verdict(correct: bool, reason: str) -> Verdict:
        return Verdict(correct, reason, a.text, g.text)

    if is_choice(g.text):
        letter = choice_letter(a.text)
        return verdict(letter == choice_letter(g.text), f"choice {letter} vs {g.text}")
    if a.unit and g.unit and a.unit != g.unit:
        return verdict(False, f"different units: {a.unit} vs {g.unit}")
    if a.text == g.text and a.percent == g.percent:
        return verdict(True, "identical after normalisation")
    # `1,5` is a decimal only against a side without commas: against `5,1` both are lists.
    fa = parse_number(a.text, decimal_comma="," not in g.text)
    fg = parse_number(g.text, decimal_comma="," not in a.text)
    if fa is not None and fg is not None:
        ok = _numbers_match(fa, fg, a, g, options)
        return verdict(ok, "equal numbers" if ok else "different numbers")
    if is_plain_text(a.text) and is_plain_text(g.text):
        ok = a.text.lower() == g.text.lower()
        return verdict(ok, "same words" if ok else "different words")
    if fg is not None and not re.search(r"[\d\\]|pi|sqrt|inf", a.text):
        return verdict(False, "gold is a number, the answer has none")
    return None


def _numbers_match(
    fa: Fraction, fg: Fraction, a: Normalized, g: Normalized, options: EquivalenceOptions
) -> bool:
    for scale in _percent_scales(a, g, options):
        value = fa * scale
        if value == fg or (scale == 1 and options.rounded_decimals and _rounds_to(a.text, fg)):
            return True
    return False


def _percent_scales(a: Normalized, g: Normalized, options: EquivalenceOptions) -> list[Fraction]:
    scales = [Fraction(1)]
    if options.percent_as_fraction and a.percent and not g.percent:
        scales.append(Fraction(1, 100))
    if options.percent_as_fraction and g.percent and not a.percent:
        scales.append(Fraction(100))
    return scales


def _rounds_to(answer_text: str, gold) -> bool:
    """``answer_text`` is a decimal with >= 3 significant digits that equals ``gold`` (a Fraction,
    or a sympy number) rounded to its places, and the gold is not a terminating decimal (then
    exact equality is required). Exact arithmetic: no float overflow, no float rounding."""
    places = decimal_places(answer_text)
    if places is None or significant_digits(answer_text) < 3:
        return False
    answer = Fraction(answer_text)
    half_unit = Fraction(1, 2 * 10**places)
    if isinstance(gold, Fraction):
        return not _terminates(gold) and abs(answer - gold) <= half_unit
    if gold.is_Rational:
        return _rounds_to(answer_text, Fraction(int(gold.p), int(gold.q)))
    difference = abs(sympy.Rational(answer.numerator, answer.denominator) - gold)
    return bool(
        difference.evalf(places + 30) <= sympy.Rational(half_unit.numerator, half_unit.denominator)
    )


def _terminates(value: Fraction) -> bool:
    q = value.denominator
    for p in (2, 5):
        while q % p == 0:
            q //= p
    return q == 1


# ----------------------------------------------------------------------------- full stage
def full_equivalent(answer: str, gold: str, options: EquivalenceOptions) -> Verdict:
    """Decide with structure and sympy. Slow inputs must be bounded by the caller."""
    a, g = normalize(answer), normalize(gold)
    try:
        check_bounds(a.text)
        ok, reason = _compare(structure(a.text), structure(g.text), a, g, options)
    except TooLarge as err:
        ok, reason = False, f"refused: {err}"
    except ParseError as err:
        ok, reason = False, f"unparseable: {err}"
    except (RecursionError, MemoryError, OverflowError, ValueError, TypeError, ZeroDivisionError):
        ok, reason = False, "could not compare"
    return Verdict(ok, reason, a.text, g.text)


def _compare(sa: tuple, sg: tuple, a: Normalized, g: Normalized, options) -> tuple[bool, str]:
    # `x = 3` against `3`: a single-variable left side is a label, compare the right sides.
    if sa[0] == "eq" and sg[0] != "eq" and sa[3]:
        sa = ("scalar", sa[2])
    if sg[0] == "eq" and sa[0] != "eq" and sg[3]:
        sg = ("scalar", sg[2])
    kind_a, kind_g = sa[0], sg[0]
    if {kind_a, kind_g} <= {"set", "list"}:
        ok = _unordered_match(sa[1], sg[1], options)
        return ok, "same elements" if ok else "different elements"
    if {kind_a, kind_g} == {"list", "bracket"}:
        # `1, 3` for the pair `(1, 3)`: the same entries in the same order (not for intervals).
        items_a = sa[3] if kind_a == "bracket" else sa[1]
        items_g = sg[3] if kind_g == "bracket" else sg[1]
        brackets = sa[1:3] if kind_a == "bracket" else sg[1:3]
        ok = (
            brackets == ("(", ")")
            and len(items_a) == len(items_g)
            and all(_scalar_equal(x, y, options) for x, y in zip(items_a, items_g, strict=True))
        )
        return ok, "same entries" if ok else "different entries"
    if {kind_a, kind_g} == {"matrix", "scalar"}:
        # `A + B` or `A B` of matrices against a matrix: compare the values sympy computes.
        sa, sg = (
            (("scalar", a.text) if kind_a == "matrix" else sa),
            (("scalar", g.text) if kind_g == "matrix" else sg),
        )
        kind_a = kind_g = "scalar"
    if kind_a != kind_g:
        return False, f"answer is a {kind_a}, gold is a {kind_g}"
    if kind_a == "scalar":
        return _scalars(sa[1], sg[1], options, percents=(a.percent, g.percent))
    if kind_a == "bracket":
        if (sa[1], sa[2]) != (sg[1], sg[2]):
            return False, f"brackets {sa[1]}..{sa[2]} vs {sg[1]}..{sg[2]}"
        ok = len(sa[3]) == len(sg[3]) and all(
            _scalar_equal(x, y, options) for x, y in zip(sa[3], sg[3], strict=True)
        )
        return ok, "same entries" if ok else "different entries"
    if kind_a == "union":
        ok = _unordered(sa[1], sg[1], lambda p, q: _compare(p, q, a, g, options)[0])
        return ok, "same union" if ok else "different union"
    if kind_a in ("matrix", "determinant"):
        shape_ok = [len(r) for r in sa[1]] == [len(r) for r in sg[1]]
        ok = shape_ok and all(
            _scalar_equal(x, y, options)
            for ra, rg in zip(sa[1], sg[1], strict=True)
            for x, y in zip(ra, rg, strict=True)
        )
        return ok, "same matrix" if ok else "different matrix"
    if kind_a == "eq":
        ok = _same_equation(to_sympy(sa[1]) - to_sympy(sa[2]), to_sympy(sg[1]) - to_sympy(sg[2]))
        return ok, "same equation" if ok else "different equation"
    raise AssertionError(kind_a)


def _same_equation(diff_a, diff_g) -> bool:
    """``a = b`` and ``c = d`` have the same solutions if ``a - b`` is a non-zero constant
    multiple of ``c - d`` (``y = 2x + 1`` and ``4x - 2y + 2 = 0``)."""
    if diff_a == diff_g:
        return True
    symbols = sorted(diff_a.free_symbols | diff_g.free_symbols, key=str)
    if not symbols:  # statements such as 1 = 2: the same only if written the same
        return False
    rng = random.Random(1)
    ratios = []
    for _ in range(NUMERIC_POINTS):
        point = {s: sympy.Rational(rng.randint(70, 230), 100) for s in symbols}
        va, vg = diff_a.evalf(20, subs=point), diff_g.evalf(20, subs=point)
        if va.is_number and vg.is_number and vg != 0 and va.is_finite and vg.is_finite:
            ratios.append(complex(va) / complex(vg))
    return (
        len(ratios) >= 3
        and abs(ratios[0]) > 1e-12
        and all(abs(r - ratios[0]) <= 1e-8 * abs(ratios[0]) for r in ratios)
    )


def _unordered_match(xs: list[str], ys: list[str], options) -> bool:
    return _unordered(xs, ys, lambda x, y: _labelled_equal(x, y, options))


def _unordered(xs: list, ys: list, equal) -> bool:
    """Every y matches a distinct x (greedy; elements are compared pairwise)."""
    if len(xs) != len(ys):
        return False
    unused = list(range(len(xs)))
    for y in ys:
        hit = next((i for i in unused if equal(xs[i], y)), None)
        if hit is None:
            return False
        unused.remove(hit)
    return True


def _labelled_equal(x: str, y: str, options) -> bool:
    lx, ly = label(x), label(y)
    if lx[0] and ly[0] and lx[0] != ly[0]:
        return False
    return _scalar_equal(lx[1], ly[1], options)


def _scalar_equal(x: str, y: str, options) -> bool:
    return _scalars(x, y, options)[0]


def _scalars(
    x: str, y: str, options, percents: tuple[bool, bool] | None = None
) -> tuple[bool, str]:
    """Compare two scalar answers; ``percents`` are the whole answers' percent signs when the
    scalars are the whole answers (each is normalised once here)."""
    nx, ny = normalize(x), normalize(y)
    quick = _quick(nx, ny, options)
    if quick is not None:
        return quick.correct, quick.reason
    if sorted(_SUBSCRIPT.findall(nx.text)) != sorted(_SUBSCRIPT.findall(ny.text)):
        # `2021_3` and `A5_{11}` are numbers in a base, and no parser keeps a subscript on a
        # number: the bases must be the same as written.
        return False, "different subscripts"
    a_percent, g_percent = percents or (nx.percent, ny.percent)
    ex, ey = to_sympy(nx.text), to_sympy(ny.text)
    if a_percent != g_percent and options.percent_as_fraction:
        candidates = [ex, ex / 100] if a_percent else [ex, ex * 100]
    else:
        candidates = [ex]
    ok = any(_sympy_equal(c, ey, nx.text, options, ny.text) for c in candidates)
    return ok, "equivalent expressions" if ok else "different expressions"


def _sympy_equal(
    ea, eg, answer_text: str, options: EquivalenceOptions, gold_text: str = ""
) -> bool:
    ea, eg = _explicit(ea), _explicit(eg)
    if isinstance(ea, sympy.MatrixBase) and isinstance(eg, sympy.MatrixBase):
        return ea.shape == eg.shape and all(
            _sympy_equal(x, y, "", options) for x, y in zip(ea, eg, strict=True)
        )
    if isinstance(ea, sympy.MatrixBase) or isinstance(eg, sympy.MatrixBase):
        return False
    if isinstance(ea, sympy.Set) or isinstance(eg, sympy.Set):
        return bool(ea == eg)
    if isinstance(ea, sympy.core.relational.Relational) or isinstance(
        eg, sympy.core.relational.Relational
    ):
        return type(ea) is type(eg) and _sympy_equal(ea.lhs - ea.rhs, eg.lhs - eg.rhs, "", options)
    if not (isinstance(ea, sympy.Expr) and isinstance(eg, sympy.Expr)):
        return ea == eg
    ea, eg = ea.xreplace({IMAGINARY: sympy.I}), eg.xreplace({IMAGINARY: sympy.I})
    if ea.is_Rational and eg.is_Rational:
        return ea == eg
    symbols = sorted(ea.free_symbols | eg.free_symbols, key=str)
    if not symbols:
        return _numbers_close(ea, eg, answer_text, options, gold_text)
    verdict = _random_point_test(ea, eg, symbols)
    if verdict is not None:
        return verdict
    return sympy.simplify(ea - eg) == 0


def _numbers_close(ea, eg, answer_text: str, options, gold_text: str = "") -> bool:
    va, vg = ea.evalf(30), eg.evalf(30)
    if not (va.is_number and vg.is_number) or not (va.is_finite and vg.is_finite):
        return ea == eg
    if _close(va, vg) and (_has_float(ea) or _has_float(eg) or _exactly_equal(ea, eg)):
        return True
    if not options.rounded_decimals:
        return False
    # Either side may be the rounded decimal: `1.414` for `\sqrt{2}`, `\sqrt{17}` for `4.1231`.
    return bool(
        (vg.is_real and _rounds_to(answer_text, eg)) or (va.is_real and _rounds_to(gold_text, ea))
    )


def _explicit(expr):
    """A matrix expression (``A + B``, ``A B`` of written matrices) as its explicit matrix."""
    if isinstance(expr, sympy.MatrixExpr) and not isinstance(expr, sympy.MatrixBase):
        try:
            return expr.as_explicit()
        except (ValueError, TypeError, AttributeError):
            return expr
    return expr


def _has_float(expr) -> bool:
    return bool(expr.atoms(sympy.Float))


def _exactly_equal(ea, eg) -> bool:
    """Two exact values (no decimals written) must agree to the last unit, not to a relative
    tolerance: ``2^{100} - 6`` is not ``2^{100} - 2``. sympy evaluates the difference with the
    extra precision its cancellation needs."""
    difference = (ea - eg).evalf(30)
    return bool(difference == 0 or sympy.Abs(difference) <= EXACT_TOLERANCE)


def _close(va: sympy.Expr, vg: sympy.Expr) -> bool:
    """Relative closeness of two evaluated numbers, in sympy's arbitrary-exponent floats.

    Not in Python floats: ``complex(e**1000)`` is ``inf``, and ``inf <= 1e-9 * inf`` holds, which
    once made any overflowing answer equal to every gold (a universal reward hack)."""
    difference = sympy.Abs(va - vg).evalf(30)
    scale = sympy.Max(sympy.Abs(va), sympy.Abs(vg)).evalf(30)
    if not (difference.is_finite and scale.is_finite):
        return False
    return bool(difference <= RELATIVE_TOLERANCE * scale + ABSOLUTE_TOLERANCE)


def _random_point_test(ea, eg, symbols) -> bool | None:
    """True if equal at every sampled point, False at the first clear difference, None if the
    values could not be compared (domain errors, infinities)."""
    rng = random.Random(0)
    agreed = 0
    for k in range(NUMERIC_POINTS):
        point = {s: _sample_value(rng, negative=k % 2 == 1, large=k % 4 >= 2) for s in symbols}
        va, vg = ea.evalf(20, subs=point), eg.evalf(20, subs=point)
        if not (va.is_number and vg.is_number and va.is_finite and vg.is_finite):
            continue
        if not _close(va, vg):
            return False
        agreed += 1
    return True if agreed >= 3 else None


def _sample_value(rng: random.Random, negative: bool, large: bool) -> sympy.Rational:
    """A point in +-[0.7, 2.3] or +-[3.1, 9.7], off any simple grid (so sin(100 pi x) is not 0
    there), of both signs and sizes (so |x| and x, ln|x| and ln x, sqrt((x-3)^2) and 3-x
    differ somewhere)."""
    low, high = (3100, 9700) if large else (700, 2300)
    value = sympy.Rational(rng.randint(low, high), 1000) + sympy.Rational(1, 7919)
    return -value if negative else value
