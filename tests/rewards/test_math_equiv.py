"""Equivalence: positive and negative cases for every answer type, and the known traps."""

import pytest

from rewards.math import EquivalenceOptions, grade, grade_many, is_equivalent

CASES = [
    # integers, decimals, thousands, signs
    ("72", "72", True),
    ("72.0", "72", True),
    ("1,000", "1000", True),
    ("-5", "5", False),
    ("1/2", "12", False),  # trap: a fraction is not its digits
    # fractions and mixed numbers
    ("1/2", "0.5", True),
    (r"\frac{1}{2}", "0.5", True),
    (r"\dfrac{3}{4}", r"\frac34", True),
    (r"\tfrac{2}{4}", r"\frac{1}{2}", True),
    ("2 1/2", "5/2", True),
    (r"3\frac{1}{2}", "3.5", True),
    (r"3\frac{1}{2}", "1.5", False),
    # scientific notation
    ("1.5e3", "1500", True),
    (r"1.5 \times 10^{3}", "1500", True),
    ("1.5e3", "150", False),
    # rounded decimals of non-terminating values
    ("0.333", r"\frac{1}{3}", True),
    ("0.33", r"\frac{1}{3}", False),  # too few significant digits
    ("1.414", r"\sqrt{2}", True),
    ("1.42", r"\sqrt{2}", False),
    ("1.4", r"\sqrt{2}", False),  # two significant digits are not enough
    ("0.51", "0.5", False),  # a terminating gold needs the exact value
    # percent
    ("50%", "50", True),
    (r"50\%", "50", True),
    ("50%", "0.5", False),  # only with percent_as_fraction
    # LaTeX expressions and symbolic equality
    (r"2\sqrt{3}", r"\sqrt{12}", True),
    (r"2\sqrt{3}", r"2 \cdot 3", False),  # trap
    (r"\frac{\sqrt{3}}{2}", r"\frac{1}{2}\sqrt{3}", True),
    (r"\pi/2", r"\frac{\pi}{2}", True),
    ("pi/2", r"\frac{\pi}{2}", True),
    (r"\left( \frac{1}{2} \right)", "0.5", True),
    (r"3 \times 4", "12", True),
    ("x^2", "2x", False),  # trap
    ("x^2+2x", "x(x+2)", True),
    (r"\frac{x+1}{x^2-1}", r"\frac{1}{x-1}", True),
    ("sqrt(2)/2", r"\frac{\sqrt2}{2}", True),
    ("2*x**2 + 3", "3 + 2x^2", True),
    (r"\sin^2 x + \cos^2 x", "1", True),
    ("3+4i", "4i+3", True),
    ("3+4i", "3-4i", False),
    # intervals
    ("[1,2)", "[1,2)", True),
    ("[1,2)", "[1,2]", False),  # trap: closed vs open end
    (r"(-\infty, 2]", r"(-\infty,2]", True),
    (r"(-\infty, 2)", r"(-\infty,2]", False),
    (r"(-\infty,-1)\cup(1,\infty)", r"(1,\infty)\cup(-\infty,-1)", True),
    (r"(-\infty,-1)\cup(1,\infty)", r"(-\infty,-1]\cup(1,\infty)", False),
    # sets and unordered lists of solutions
    (r"\{1,2\}", r"\{2,1\}", True),
    (r"\{1,2\}", r"\{1,3\}", False),  # trap: different elements
    (r"\{1,2\}", r"\{1,2,3\}", False),
    ("-2, 1", "1, -2", True),
    ("1 and 2", "2, 1", True),
    ("1, 2", "1, 2, 2", False),
    # tuples / ordered pairs
    ("(1,2)", "(1, 2)", True),
    ("(2,1)", "(1,2)", False),
    (r"\left(\frac{1}{2}, -3\right)", "(0.5,-3)", True),
    ("(3,1)", "(5,2)", False),
    # matrices
    (
        r"\begin{pmatrix}1&2\\3&4\end{pmatrix}",
        r"\begin{bmatrix} 1 & 2 \\ 3 & 4 \end{bmatrix}",
        True,  # the bracket style of a matrix is notation
    ),
    (r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", r"\begin{pmatrix}1 & 2\\ 3 & 4\end{pmatrix}", True),
    (r"\begin{pmatrix}0.5\\1\end{pmatrix}", r"\begin{pmatrix}\frac12\\1\end{pmatrix}", True),
    (r"\begin{pmatrix}1&2\\3&5\end{pmatrix}", r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", False),
    # equations
    ("x = 3", "3", True),
    ("3", "x=3", True),
    ("x = 4", "3", False),
    ("y = 2x+1", "2x - y + 1 = 0", True),
    ("y = 2x+1", "y = 2x+2", False),
    ("x + y = 3", "3", False),
    # multiple choice
    ("(C)", "C", True),
    ("C", "(C)", True),
    ("(B) 12", "B", True),
    ("B", "C", False),
    # text
    (r"\text{odd}", "odd", True),
    ("Odd", "odd", True),
    ("even", "odd", False),
    (r"\text{Monday}", r"\text{Tuesday}", False),
    # units, currency, degrees
    ("18 dollars", "18", True),
    (r"\$18.00", "18", True),
    (r"10\text{ cm}", "10", True),
    (r"10 \text{ cm}^2", "10", True),
    (r"90^\circ", "90", True),
    ("19 apples", "18", False),
]


@pytest.mark.parametrize(("answer", "gold", "expected"), CASES)
def test_equivalence(answer, gold, expected):
    assert is_equivalent(answer, gold) is expected


def test_the_batch_api_agrees_with_single_calls():
    answers, golds, expected = zip(*CASES, strict=True)
    results = grade_many([f"The answer is ${a}$." for a in answers], list(golds))
    assert [r.correct for r in results] == list(expected)
    assert {r.rule for r in results} == {"answer_is"}


def test_percent_as_fraction_is_an_option():
    both = EquivalenceOptions(percent_as_fraction=True)
    assert is_equivalent("50%", "0.5", options=both)
    assert is_equivalent("0.25", r"25\%", options=both)
    assert not is_equivalent("50%", "0.4", options=both)


def test_rounded_decimals_can_be_turned_off():
    strict = EquivalenceOptions(rounded_decimals=False)
    assert not is_equivalent("0.333", r"\frac{1}{3}", options=strict)
    assert not is_equivalent("1.414", r"\sqrt{2}", options=strict)


def test_grade_reports_what_it_compared():
    result = grade(r"We get $x = \dfrac{6}{4}$, so \boxed{\dfrac{3}{2}}.", "1.5")
    assert result.correct and bool(result)
    assert (result.answer, result.rule) == (r"\dfrac{3}{2}", "boxed")
    assert (result.answer_norm, result.gold_norm) == (r"\frac{3}{2}", "1.5")
    assert result.reason == "equal numbers"
    missing = grade("I don't know.", "3", last_number_fallback=False)
    assert (missing.correct, missing.answer, missing.reason) == (False, None, "no answer found")


def test_shipped_golds_match_themselves():
    from envs.math.data import load_problems

    golds = [p.answer for p in load_problems("gsm8k", "test")[:100]]
    golds += [p.answer for p in load_problems("math500", "test")[:100]]
    results = grade_many([f"#### {g}" for g in golds], golds)
    assert all(r.correct for r in results)
