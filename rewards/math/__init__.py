"""Math answer grading: extraction, safe equivalence, time-bounded batch grading, step checks.

>>> from rewards.math import grade
>>> grade(r"Half of 3 is \\boxed{\\frac{3}{2}}", "1.5").correct
True

Nothing here evaluates model text as Python: numbers are parsed exactly, LaTeX by an ANTLR
grammar (latex2sympy2_extended), plain expressions by :class:`rewards.math.expr.PlainParser`.
"""

from rewards.math.bounded import shutdown, warm_up
from rewards.math.equiv import EquivalenceOptions
from rewards.math.extract import RULES, Extraction, extract_answer, extract_gold, last_boxed
from rewards.math.grader import (
    DEFAULT_TIMEOUT,
    GradeResult,
    accuracy_reward,
    grade,
    grade_async,
    grade_many,
    is_equivalent,
)
from rewards.math.normalize import normalize, parse_number

__all__ = [
    "DEFAULT_TIMEOUT",
    "RULES",
    "EquivalenceOptions",
    "Extraction",
    "accuracy_reward",
    "GradeResult",
    "extract_answer",
    "extract_gold",
    "grade",
    "grade_async",
    "grade_many",
    "is_equivalent",
    "last_boxed",
    "normalize",
    "parse_number",
    "shutdown",
    "warm_up",
]
