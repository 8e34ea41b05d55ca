"""Turn a PRM's per-step scores into a reward: the aggregation functions.

"Let's Reinforce Step by Step" found that how step scores become a reward matters as much as the
reward model. ``aggregate(step_scores, how)`` with scores s_1..s_K (each a probability that the
step is good):

- ``min``: min_k s_k (a solution is as good as its worst step; PRM800K's choice);
- ``prod``: prod_k s_k (the probability that every step is good, if steps were independent);
- ``mean``: (1/K) sum_k s_k;
- ``last``: s_K (the PRM's verdict after reading the whole solution);
- ``max``: max_k s_k;
- ``geomean``: (prod_k s_k)^(1/K), computed as exp(mean_k log max(s_k, 1e-12)): ``prod`` without
  its penalty on long solutions;
- ``per_step``: the list s_1..s_K itself, for dense rewards placed on each step's last token
  (:func:`step_rewards` gives their positions).

A solution with no steps aggregates to 0.0 (and ``per_step`` to ``[]``): no step, no credit.

>>> aggregate([0.9, 0.5, 0.8], "min"), aggregate([0.9, 0.5, 0.8], "last")
(0.5, 0.8)
>>> round(aggregate([0.5, 0.5], "prod"), 3), round(aggregate([0.25, 1.0], "geomean"), 3)
(0.25, 0.5)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from assay.errors import ConfigError, did_you_mean
from rewards.rm.steps import step_spans

_EPS = 1e-12

AGGREGATIONS: dict[str, Callable[[Sequence[float]], float]] = {
    "min": min,
    "max": max,
    "mean": lambda s: sum(s) / len(s),
    "last": lambda s: s[-1],
    "prod": math.prod,
    "geomean": lambda s: math.exp(sum(math.log(max(x, _EPS)) for x in s) / len(s)),
}
NAMES = (*AGGREGATIONS, "per_step")


def check_aggregation(how: str) -> str:
    if how not in NAMES:
        raise ConfigError(
            f"Unknown aggregation {how!r}; known: {', '.join(NAMES)}.{did_you_mean(how, NAMES)}"
        )
    return how


def aggregate(step_scores: Sequence[float], how: str = "min") -> float | list[float]:
    """One reward from per-step scores (a float), or the scores themselves for ``per_step``."""
    check_aggregation(how)
    scores = [float(s) for s in step_scores]
    if how == "per_step":
        return scores
    if not scores:
        return 0.0
    return float(AGGREGATIONS[how](scores))


def step_rewards(
    solution: str, step_scores: Sequence[float], split: str = "newline"
) -> list[list[float]]:
    """Dense rewards ``[[char_end, score], ...]``: each step's score at the character where the
    step ends in ``solution``. The learner puts each on the token that ends at or after
    ``char_end`` (``info["step_rewards"]``, PPO's per-token rewards)."""
    spans = step_spans(solution, split)
    if len(spans) != len(step_scores):
        raise ValueError(f"{len(step_scores)} scores for {len(spans)} steps of the solution.")
    return [[float(end), float(s)] for (_, end), s in zip(spans, step_scores, strict=True)]
