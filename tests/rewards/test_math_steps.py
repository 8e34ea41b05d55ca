"""The GSM8K step checker: annotated and plain steps, exact arithmetic, real reference data."""

from fractions import Fraction

from envs.math.data import load_problems, strip_calculator
from rewards.math.steps import check_steps, evaluate


def test_annotated_steps_are_checked_exactly():
    solution = (
        "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
        "Natalia sold 48+24 = <<48+24=72>>72 clips altogether.\n"
        "#### 72"
    )
    steps = check_steps(solution)
    assert [s.correct for s in steps] == [True, True]
    assert steps[0].expressions == ("48/2",) and steps[0].computed == (Fraction(24),)
    wrong = check_steps(solution.replace("<<48/2=24>>", "<<48/2=25>>"))
    assert [s.correct for s in wrong] == [False, True]


def test_plain_equations_and_steps_without_arithmetic():
    steps = check_steps(
        "Weng earns 12/60 = $0.2 per minute.\n"
        "Working 50 minutes, she earned 0.2 x 50 = $10.\n"
        "So she earned ten dollars.\n"
        "Then 3 * (4 + 1) = 16."
    )
    assert [s.correct for s in steps] == [True, True, None, False]
    assert steps[3].computed == (Fraction(15),)


def test_rounded_fraction_and_percent_results():
    assert [s.correct for s in check_steps("10/3 = 3.33\n10/3 = 3.4\n1/2 * 1/2 = 1/4")] == [
        True,
        False,
        True,
    ]
    assert evaluate("20% * 50") == Fraction(10)
    assert evaluate("1,200 + $300") == Fraction(1500)


def test_evaluate_refuses_what_is_not_plain_arithmetic():
    assert evaluate("__import__('os')") is None
    assert evaluate("2 ** 10") is None  # no powers: nothing can grow without bound
    assert evaluate("9" * 40 + " + 1") is None
    assert evaluate("1/0") is None
    assert evaluate("(1 + 2") is None


def test_reference_solutions_check_out():
    """GSM8K's own annotations are almost all right (the data has a few real slips)."""
    annotated = plain = 0
    ok_annotated = ok_plain = 0
    for problem in load_problems("gsm8k", "train")[:500]:
        for step in check_steps(problem.solution):
            if step.correct is not None:
                annotated += 1
                ok_annotated += step.correct
        for step in check_steps(strip_calculator(problem.solution)):
            if step.correct is not None:
                plain += 1
                ok_plain += step.correct
    assert annotated > 1500 and ok_annotated / annotated > 0.98
    assert plain > 1000 and ok_plain / plain > 0.95
