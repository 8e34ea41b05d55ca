"""Step labels from exact arithmetic: the checker of ``rewards.math.steps`` applied per step.

``arithmetic_labels(solution, correct)`` labels step k good (1.0) when no step up to and
including k states a wrong calculation (a prefix is only as good as its worst step, as in
Math-Shepherd's prefix labels), and, when the final answer's correctness ``correct`` is given,
the last step is good only if the answer is right too. Steps without arithmetic inherit the
verdict of the prefix before them. So the labels never rise again once a step is bad.

>>> arithmetic_labels("3 * 4 = 12 apples.\\nThen 12 + 5 = 18.\\nSo 18.", correct=False)
[1.0, 0.0, 0.0]
>>> arithmetic_labels("3 * 4 = 12 apples.\\nSo 12.", correct=True)
[1.0, 1.0]
"""

from __future__ import annotations

from rewards.math.steps import check_step
from rewards.rm.steps import split_steps


def arithmetic_labels(
    solution: str, correct: bool | None = None, split: str = "newline"
) -> list[float]:
    """One label in {0.0, 1.0} per step of ``solution`` (see the module docstring)."""
    steps = split_steps(solution, split)
    labels: list[float] = []
    good = True
    for i, step in enumerate(steps):
        good = good and check_step(i, step).correct is not False
        labels.append(1.0 if good else 0.0)
    if labels and correct is not None and not correct:
        labels[-1] = 0.0
    return labels
