"""Best-of-N: how well each way of picking one of N sampled solutions does, for N = 1, 2, 4, ...

For each problem we have k sampled solutions, each graded (``correct``) with its normalised final
answer, and any number of scores per solution (an ORM, a PRM under each aggregation). For every
N <= k and every selector, the accuracy is the expected correctness of the picked solution over
uniformly random N-subsets of the k samples, averaged over problems:

- ``oracle``: pick a correct solution if the subset has one, i.e. pass@N;
- ``majority``: the most common final answer (ties: the answer of the earliest sample;
  unanswered samples do not vote);
- ``rank:<scorer>``: the highest-scored solution;
- ``weighted:<scorer>``: the answer whose solutions have the largest total score (RM-weighted
  majority vote, as in Uesato et al. 2022 / Lightman et al. 2023).

Ranked selectors (oracle included) are computed exactly: with samples sorted by score (ties to
the earlier sample), the one at rank r is picked with probability C(k-1-r, N-1) / C(k, N), so the
oracle reproduces the unbiased pass@N estimator exactly. Voting selectors enumerate every
subset when there are at most ``subsets`` of them (always for N = 1 and N = k), and otherwise
average over ``subsets`` random ones (seeded).
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def n_grid(k: int) -> list[int]:
    """1, 2, 4, ... up to k (and k itself)."""
    grid = [2**i for i in range(int(math.log2(k)) + 1)]
    return grid if grid[-1] == k else [*grid, k]


def ranked_accuracy(scores: Sequence[float], correct: Sequence[bool], n: int) -> float:
    """P(the top-scored of a random n-subset is correct), exactly."""
    k = len(scores)
    order = sorted(range(k), key=lambda i: (-scores[i], i))
    total = math.comb(k, n)
    return sum(math.comb(k - 1 - r, n - 1) for r, i in enumerate(order) if correct[i]) / total


def voted_correct(
    subset: Sequence[int],
    answers: Sequence[str | None],
    correct: Sequence[bool],
    weights: Sequence[float] | None = None,
) -> bool:
    """Whether the answer with the most (weighted) votes within ``subset`` is correct."""
    tally: dict[str, float] = defaultdict(float)
    first: dict[str, int] = {}
    for i in subset:
        if answers[i] is None:
            continue
        tally[answers[i]] += 1.0 if weights is None else weights[i]
        first[answers[i]] = min(i, first.get(answers[i], i))
    if not tally:
        return False
    best = max(tally, key=lambda a: (tally[a], -first[a]))
    return bool(correct[first[best]])


def best_of_n(
    problems: Sequence[Mapping[str, Any]],
    scorers: Mapping[str, Sequence[Sequence[float]]],
    subsets: int = 200,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Accuracy of every selector at every N (see the module docstring).

    ``problems[p]`` has ``correct`` (k bools) and ``answers`` (k normalised answers or None);
    ``scorers[name][p]`` holds k scores. Returns one row per (N, selector) with ``accuracy``.
    """
    k = len(problems[0]["correct"])
    if any(len(p["correct"]) != k for p in problems):
        raise ValueError("best_of_n needs the same number of samples for every problem.")
    rng = np.random.default_rng(seed)
    rows = []
    for n in n_grid(k):
        if math.comb(k, n) <= subsets:  # few enough to enumerate: exact
            draws = list(itertools.combinations(range(k), n))
        else:
            draws = [tuple(rng.choice(k, n, replace=False)) for _ in range(subsets)]
        sums: dict[str, float] = defaultdict(float)
        for p, problem in enumerate(problems):
            correct, answers = problem["correct"], problem["answers"]
            sums["oracle"] += ranked_accuracy([float(c) for c in correct], correct, n)
            sums["majority"] += np.mean([voted_correct(d, answers, correct) for d in draws])
            for name, scores in scorers.items():
                sums[f"rank:{name}"] += ranked_accuracy(scores[p], correct, n)
                sums[f"weighted:{name}"] += np.mean(
                    [voted_correct(d, answers, correct, scores[p]) for d in draws]
                )
        rows += [{"n": n, "selector": s, "accuracy": v / len(problems)} for s, v in sums.items()]
    return rows


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A markdown table: one row per selector, one column per N."""
    ns = sorted({r["n"] for r in rows})
    kinds = {"oracle": 0, "majority": 1, "rank": 2, "weighted": 3}
    selectors = sorted(
        dict.fromkeys(r["selector"] for r in rows), key=lambda s: kinds[s.split(":")[0]]
    )
    acc = {(r["selector"], r["n"]): r["accuracy"] for r in rows}
    lines = ["| selector | " + " | ".join(f"N={n}" for n in ns) + " |"]
    lines.append("|---|" + "---:|" * len(ns))
    for s in selectors:
        lines.append(f"| {s} | " + " | ".join(f"{acc[s, n]:.1%}" for n in ns) + " |")
    return "\n".join(lines)


def plot_best_of_n(rows: Sequence[Mapping[str, Any]], path: Path, title: str = "") -> Path:
    """Accuracy against N (log scale), one line per selector; weighted votes dashed."""
    from assay.runs import pyplot

    plt = pyplot()

    fig, ax = plt.subplots(figsize=(7, 4.5))
    selectors = list(dict.fromkeys(r["selector"] for r in rows))
    scorers = list(dict.fromkeys(s.split(":", 1)[-1] for s in selectors if ":" in s))
    colours = plt.get_cmap("tab10" if len(scorers) <= 8 else "tab20")
    for s in selectors:
        pts = sorted((r["n"], r["accuracy"]) for r in rows if r["selector"] == s)
        if ":" in s:  # a scorer's ranked and weighted lines share its colour
            colour, style = colours(2 + scorers.index(s.split(":", 1)[1])), "-"
            style = "--" if s.startswith("weighted:") else "-"
        else:
            colour, style = ("black", "-.") if s == "oracle" else (colours(0), ":")
        ax.plot([n for n, _ in pts], [a for _, a in pts], style, color=colour, marker="o", ms=3,
                label=s)  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xlabel("N (solutions sampled per problem)")
    ax.set_ylabel("accuracy of the selected solution")
    ax.set_title(title or "best-of-N")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def score_samples(
    problems: Sequence[Mapping[str, Any]],
    orm=None,
    prm=None,
    aggregations: Sequence[str] = ("min", "prod", "mean", "last", "max", "geomean"),
) -> dict[str, list[list[float]]]:
    """Scorer name -> per-problem lists of sample scores: ``orm`` and ``prm-<aggregation>``.
    ``problems[p]`` has ``problem`` (text) and ``solutions`` (k texts)."""
    from rewards.rm import aggregate

    pairs = [(p["problem"], s) for p in problems for s in p["solutions"]]
    sizes = [len(p["solutions"]) for p in problems]
    out: dict[str, list[list[float]]] = {}
    if orm is not None:
        out["orm"] = _regroup(orm.score_many(pairs), sizes)
    if prm is not None:
        steps = prm.score_solutions(pairs)
        for how in aggregations:
            out[f"prm-{how}"] = _regroup([aggregate(s, how) for s in steps], sizes)
    return out


def _regroup(flat: list, sizes: list[int]) -> list[list]:
    out, start = [], 0
    for size in sizes:
        out.append(flat[start : start + size])
        start += size
    return out
