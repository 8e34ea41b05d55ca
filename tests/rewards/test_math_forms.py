"""Answers as models and datasets really write them, each family both ways (equal and not), through
``grade`` (extraction + equivalence) and ``is_equivalent`` (bare answers); golds that are full
solutions; the last-number rule; overflowing values; the regression set of examined disagreements
with math-verify (``benchmarks/grader_diff.py``)."""

import json
from pathlib import Path

import pytest

from envs.math.data import load_problems
from rewards.math import grade, grade_many, is_equivalent

# (answer as written, gold, equal?) per family of the issue "Math grader, measured against the
# outside". Each is graded bare and inside model-like output.
FAMILIES = {
    "relations": [
        (r"y \ge 2", r"2 \le y", True),
        (r"y \ge 2", r"2 \ge y", False),
        (r"y \lt 1", "y < 1", True),
        (r"y \lt 1", "y > 1", False),
        ("y != 4", r"y \neq 4", True),
        ("y != 4", r"y \neq 5", False),
        ("y >= 4", r"y \geq 4", True),
        ("y <= 4", r"y \geq 4", False),
        (r"-x > -1", "x < 1", True),
        (r"3 > x \ge 1", "[1, 3)", True),
        (r"3 > x \ge 1", "[1, 3]", False),
    ],
    "latex_forms": [
        (r"\left( a+1 \right)\left( a-1 \right)", "(a+1)(a-1)", True),
        (r"\left( a+1 \right)\left( a-1 \right)", "(a+1)^2", False),
        (r"\tfrac57", "5/7", True),
        (r"\tfrac57", "7/5", False),
        (r"\frac25i", "0.4i", True),
        (r"\frac25i", "0.4", False),
        (r"12\!000", "12000", True),
        (r"\cfrac{1}{3}", r"\frac13", True),
        (r"\cfrac{1}{3}", r"\frac14", False),
        (r"5\textnormal{ cm}", "5", True),
        (r"5\textbf{ meters}", "5", True),
        (r"5\textbf{ meters}", "6", False),
        (r"\\frac{1}{2}", "0.5", True),  # backslashes doubled by JSON
        (r"\\sqrt{2}", r"\sqrt{3}", False),
        (r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", True),
        (
            r"\left[\begin{array}{cc} 1 & 2 \\ 3 & 4 \end{array}\right]",
            r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}",
            True,
        ),  # fmt: skip
        (
            r"\begin{pmatrix} 1 \\ 2 \end{pmatrix} + \begin{pmatrix} 3 \\ 4 \end{pmatrix}",
            r"\begin{pmatrix} 4 \\ 6 \end{pmatrix}",
            True,
        ),  # fmt: skip
        (
            r"\begin{pmatrix} 1 \\ 2 \end{pmatrix} + \begin{pmatrix} 3 \\ 4 \end{pmatrix}",
            r"\begin{pmatrix} 4 \\ 5 \end{pmatrix}",
            False,
        ),  # fmt: skip
    ],
    "locale_numbers": [
        ("2 500", "2500", True),
        ("2 500", "250", False),
        ("2500,75", "2500.75", True),
        ("2500,75", "250075", False),
        ("0,25", "0.25", True),
        ("0,25", "25", False),
        ("1,000", "1000", True),  # a thousands separator, never a decimal comma
        ("1,000", "1", False),
        (r"11,\! 111", "11111", True),
        ("1,5", "5,1", True),  # against a list, both are lists
    ],
    "tuples": [
        (r"\left( 2, \frac{\pi}{3} \right)", r"(2, \frac{\pi}{3})", True),
        (r"\left( 2, \frac{\pi}{3} \right)", r"(\frac{\pi}{3}, 2)", False),
        ("1, 3", "(1, 3)", True),  # the entries of a pair, in order
        ("1, 3", "(3, 1)", False),
        ("1, 3", "[1, 3]", False),  # never an interval
    ],
    "equations": [
        ("x = 5+5+1 = 7 = 11", "x = 11", True),
        ("z = 3+3 = 2", "z = 1 + 1 = 2", True),
        ("x = 5 + 6 = 12", "x = 11", False),
        (r"k = \frac13", "1/3", True),
        (r"2^{100} - 6", r"2^{100} - 2", False),  # exact values agree to the unit
        (r"\sqrt{17}", "4.1231056256", True),  # the gold is the rounded one
        (r"\sqrt{17}", "4.1231056257", False),
        ("2021_3", "2021_9", False),  # a number's base is part of it
    ],
}
CASES = [(f, *case) for f, cases in FAMILIES.items() for case in cases]
IDS = [f"{f}:{a[:24]}|{g[:16]}" for f, a, g, _ in CASES]


@pytest.mark.parametrize(("family", "answer", "gold", "expected"), CASES, ids=IDS)
def test_bare_answers(family, answer, gold, expected):
    assert is_equivalent(answer, gold) is expected


@pytest.mark.parametrize(("family", "answer", "gold", "expected"), CASES, ids=IDS)
def test_answers_inside_output(family, answer, gold, expected):
    outputs = [
        answer,
        f"${answer}$",
        f"So the answer is $\\boxed{{{answer}}}$.",
        f"\\[ {answer} \\]",
    ]
    if family == "locale_numbers" and "\\" not in answer:  # a plain number: also in prose
        outputs.append(f"In total we get {answer}")
    assert [r.correct for r in grade_many(outputs, [gold] * len(outputs))] == [expected] * len(
        outputs
    )


def test_unmarked_outputs_are_read_whole_or_by_their_last_math_span():
    assert grade(r"\frac{2}{5}", "0.4").correct
    assert grade(r"$\sqrt7$", r"\sqrt{7}").correct
    assert grade("(a+1)(a-1)", "a^2-1").correct
    assert grade(r"$y = \frac{3}{4}$", "0.75").correct
    assert grade("$(2, 7]$", "(2,7]").correct and not grade("$(2, 7]$", "(2,7)").correct
    assert grade(r"y \le 4", r"(-\infty, 4]").correct
    assert grade(r"We substitute and get $x = \frac{10}{9}$.", "10/9").correct
    assert not grade(r"We substitute and get $x = \frac{10}{9}$.", "9").correct


def test_a_solution_as_gold_grades_like_its_answer():
    problems = load_problems("math500", "test")
    answers = [p.answer for p in problems]
    right = grade_many([f"\\boxed{{{a}}}" for a in answers], [p.solution for p in problems])
    assert all(r.correct for r in right)
    # another problem's answer: the same verdict against the solution as against the answer
    shifted = answers[1:] + answers[:1]
    outputs = [f"The answer is ${a}$." for a in shifted]
    by_solution = grade_many(outputs, [p.solution for p in problems])
    by_answer = grade_many(outputs, answers)
    assert [r.correct for r in by_solution] == [r.correct for r in by_answer]
    assert sum(r.correct for r in by_answer) <= 5  # a few problems share an answer


def test_golds_with_boxes_spans_and_units():
    assert grade("[1, 2]", r"x \in \boxed{[1,2]}").correct
    assert grade("40", "$40$ km").correct and grade("40 km", "$40$ km").correct
    assert not grade("40 m", "$40$ km").correct
    assert is_equivalent(r"\frac12", r"The total is $\boxed{0.5}$.")


@pytest.mark.parametrize(
    ("output", "gold"),
    [
        ("AZYUK2A", "2"),  # a digit inside a word is not a number
        ("page 5 of the notes", r"\frac{2}{5}"),  # the gold is not a plain number
        ("the sum over 4 terms", r"\sqrt{16}"),
        ("the sum over 4 terms", "x^2"),
        ("We tried 1 and then 2", r"\{1, 2\}"),
    ],
)
def test_the_last_number_of_prose_never_matches_a_gold_that_is_not_a_plain_number(output, gold):
    result = grade(output, gold)
    assert not result.correct
    assert result.rule in (None, "last_number")


def test_the_last_number_still_scores_against_a_plain_number():
    assert grade("So she pays 18 dollars in all", "18").correct
    assert grade("so it costs 2,74 euros", "2.74").correct


@pytest.mark.parametrize(
    ("output", "gold"),
    [
        (r"\boxed{e^{1000}}", "42"),
        (r"\boxed{10^{400}}", "42"),
        (r"\boxed{e^{1000}}", r"\sqrt{2}"),
        (r"\boxed{10^{400}\pi}", r"\frac{3}{4}"),
        (r"\boxed{9^{(9)^{9}}}", "42"),
        (r"\boxed{-e^{1000}}", "-1"),
        (r"\boxed{e^{1000} x}", "x"),
    ],
)
def test_overflowing_values_never_equal_a_finite_gold(output, gold):
    assert not grade(output, gold).correct


def test_huge_values_still_equal_themselves():
    assert grade(r"\boxed{e^{1000}}", "e^{1000}").correct
    assert grade(r"\boxed{10^{400}}", "10^{400}").correct
    assert grade(r"\boxed{2^{100}}", "1267650600228229401496703205376").correct


REGRESSION = Path(__file__).parent / "data" / "grader_regression.jsonl"
ROWS = [json.loads(line) for line in REGRESSION.read_text().splitlines() if line.strip()]


def test_the_regression_set_covers_both_verdicts_and_many_families():
    assert {r["expected"] for r in ROWS} == {True, False}
    assert len({r["family"] for r in ROWS}) >= 10


@pytest.mark.parametrize("row", ROWS, ids=[f"{r['family']}:{r['output'][-30:]}" for r in ROWS])
def test_examined_disagreements_with_math_verify(row):
    """Each row is a pair on which assay and math-verify disagreed (``benchmarks/grader_diff.py``),
    or on which assay itself was wrong before, with the verdict decided by reading it (``why``)."""
    assert grade(row["output"], row["gold"]).correct is row["expected"], row["why"]
