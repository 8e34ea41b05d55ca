"""Evaluate a model on a math env: accuracy, pass@k and maj@k with confidence intervals.

``assay eval math --model NAME --env math-gsm8k-v0 --n 200 --samples k`` walks the first ``n``
problems of the env's test split, samples ``k`` answers per problem (greedy when ``k == 1``
unless a temperature is given), grades them all with :func:`rewards.math.grade_many`, and writes
every sample with its grade to ``samples.jsonl`` in the run directory as it goes, then
``summary.json``.

Metrics, over problems:

- ``accuracy``: the mean fraction of correct samples (with ``k == 1``, plain accuracy);
- ``pass@k``: the unbiased estimator of Chen et al. (2021), 1 - C(k - c, k) / C(k, k) for
  ``c`` correct of ``k`` samples, i.e. whether any sample is correct;
- ``maj@k``: whether the most common final answer (answers grouped by their normalised form;
  ties go to the earliest) is correct.

Each comes with a 95% interval: Wilson's for accuracy at ``k == 1``, otherwise a percentile
bootstrap over problems (1,000 resamples, seeded).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from rewards.math import grade_many
from trainers.engines.base import Sampling

BOOTSTRAP_SAMPLES = 1000


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from ``c`` correct among ``n`` samples (Chen et al., 2021, eq. 1)."""
    if n - c < k:
        return 1.0
    return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))


def wilson_interval(successes: int, n: int, z: float = 1.96) -> Interval:
    """Wilson score interval for a binomial proportion."""
    if n == 0:
        return Interval(0.0, 0.0, 0.0)
    p = successes / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half))


def bootstrap_interval(values: Sequence[float], seed: int = 0) -> Interval:
    """Mean of per-problem ``values`` with a 95% percentile-bootstrap interval."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return Interval(0.0, 0.0, 0.0)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(BOOTSTRAP_SAMPLES, len(x)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return Interval(float(x.mean()), float(low), float(high))


def majority_correct(graded: Sequence[dict[str, Any]]) -> bool:
    """Whether the most common normalised answer among one problem's samples is correct."""
    answered = [g for g in graded if g["answer"] is not None]
    if not answered:
        return False
    votes = Counter(g["answer_norm"] for g in answered)
    top = max(votes.values())
    winner = next(g for g in answered if votes[g["answer_norm"]] == top)
    return bool(winner["correct"])


def evaluate_math(
    engine,
    env,
    n_problems: int,
    sampling: Sampling,
    samples_path: Path,
    batch_size: int = 16,
) -> dict[str, Any]:
    """Sample, grade and score the first ``n_problems`` of ``env``; append samples to
    ``samples_path`` batch by batch; return the summary."""
    n_problems = min(n_problems, len(env.problems))
    per_problem: list[list[dict[str, Any]]] = []
    samples_path.parent.mkdir(parents=True, exist_ok=True)
    with samples_path.open("w") as out:
        for start in tqdm(range(0, n_problems, batch_size), desc="eval", unit="batch"):
            indices = range(start, min(start + batch_size, n_problems))
            prompts = [env.reset(options={"index": i})[0] for i in indices]
            completions = engine.generate(prompts, sampling)
            # One batch call: slow comparisons of the whole batch run in parallel workers.
            all_grades = grade_many(
                [c.text for samples in completions for c in samples],
                [env.problems[i].answer for i, samples in zip(indices, completions, strict=True)
                 for _ in samples],
            )  # fmt: skip
            for k, (i, samples) in enumerate(zip(indices, completions, strict=True)):
                problem = env.problems[i]
                grades = all_grades[k * sampling.n : (k + 1) * sampling.n]
                rows = [
                    {
                        "index": i,
                        "problem_id": problem.id,
                        "sample": j,
                        "gold": problem.answer,
                        "output": c.text,
                        "finish_reason": c.finish_reason,
                        "answer": g.answer,
                        "rule": g.rule,
                        "answer_norm": g.answer_norm,
                        "correct": g.correct,
                        "reason": g.reason,
                    }
                    for j, (c, g) in enumerate(zip(samples, grades, strict=True))
                ]
                out.writelines(json.dumps(r) + "\n" for r in rows)
                per_problem.append(rows)
            out.flush()
    return summarize(per_problem, sampling.n)


def summarize(per_problem: Sequence[Sequence[dict[str, Any]]], k: int) -> dict[str, Any]:
    """Accuracy, pass@k and maj@k (each with a 95% interval) from graded samples."""
    correct_counts = [sum(s["correct"] for s in rows) for rows in per_problem]
    if k == 1:
        accuracy = wilson_interval(sum(correct_counts), len(per_problem))
    else:
        accuracy = bootstrap_interval([c / k for c in correct_counts])
    pass_k = bootstrap_interval([pass_at_k(k, c, k) for c in correct_counts], seed=1)
    maj_k = bootstrap_interval([float(majority_correct(rows)) for rows in per_problem], seed=2)
    answered = sum(s["answer"] is not None for rows in per_problem for s in rows)
    correct = sum(correct_counts)
    return {
        "problems": len(per_problem),
        "samples_per_problem": k,
        "accuracy": accuracy.__dict__,
        f"pass@{k}": pass_k.__dict__,
        f"maj@{k}": maj_k.__dict__,
        "answered_rate": answered / max(1, k * len(per_problem)),
        # Format and skill apart: a correct answer was found, so correct <= answered.
        "valid_rate": answered / max(1, k * len(per_problem)),
        "accuracy_among_valid": correct / answered if answered else None,
    }


def format_summary(summary: dict[str, Any]) -> str:
    """A small table of the summary's metrics."""
    k = summary["samples_per_problem"]
    lines = [f"{'metric':10} {'value':>7}  95% interval", "-" * 36]
    for key in ("accuracy", f"pass@{k}", f"maj@{k}"):
        m = summary[key]
        lines.append(f"{key:10} {m['value']:7.1%}  [{m['low']:.1%}, {m['high']:.1%}]")
    lines.append(f"{'valid':10} {summary['valid_rate']:7.1%}  (a final answer was found)")
    among = summary["accuracy_among_valid"]
    lines.append(f"{'acc|valid':10} {among:7.1%}" if among is not None else f"{'acc|valid':10} -")
    return "\n".join(lines)
