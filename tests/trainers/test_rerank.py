"""Best-of-N selection: the oracle equals pass@N, ranked selection is exact, votes count right."""

import itertools
import math
import random

import pytest

from trainers.math_eval import pass_at_k
from trainers.rerank import (
    best_of_n,
    format_table,
    n_grid,
    plot_best_of_n,
    ranked_accuracy,
    voted_correct,
)


def _problems(n, k, seed):
    rng = random.Random(seed)
    problems, scores = [], []
    for _ in range(n):
        correct = [rng.random() < 0.35 for _ in range(k)]
        answers = ["42" if c else rng.choice(["1", "2", None]) for c in correct]
        problems.append({"correct": correct, "answers": answers})
        scores.append([round(rng.random(), 1) + 0.3 * c for c in correct])  # ties on purpose
    return problems, scores


def test_n_grid_doubles_up_to_k():
    assert n_grid(8) == [1, 2, 4, 8] and n_grid(6) == [1, 2, 4, 6] and n_grid(1) == [1]


def test_oracle_reranker_equals_pass_at_n():
    problems, scores = _problems(25, 16, seed=0)
    rows = best_of_n(problems, {"rm": scores})
    for n in n_grid(16):
        expected = sum(pass_at_k(16, sum(p["correct"]), n) for p in problems) / len(problems)
        (oracle,) = [r["accuracy"] for r in rows if r["n"] == n and r["selector"] == "oracle"]
        assert oracle == pytest.approx(expected, abs=1e-12)


def test_ranked_accuracy_matches_enumerating_every_subset():
    problems, scores = _problems(5, 7, seed=1)
    for p, s in zip(problems, scores, strict=True):
        for n in range(1, 8):
            subsets = list(itertools.combinations(range(7), n))
            # the top score wins; ties go to the earlier sample
            picks = [min(sub, key=lambda i: (-s[i], i)) for sub in subsets]
            brute = sum(p["correct"][i] for i in picks) / math.comb(7, n)
            assert ranked_accuracy(s, p["correct"], n) == pytest.approx(brute)


def test_majority_and_weighted_votes():
    answers = ["7", "7", "3", None, "3", "3"]
    correct = [True, True, False, False, False, False]
    assert not voted_correct(range(6), answers, correct)  # "3" has three votes
    assert voted_correct([0, 1, 2], answers, correct)
    weights = [0.9, 0.8, 0.1, 1.0, 0.2, 0.3]
    assert voted_correct(range(6), answers, correct, weights)  # 1.7 for "7" vs 0.6 for "3"
    assert not voted_correct([3], answers, correct)  # unanswered: no vote, no credit
    # a tie goes to the answer of the earliest sample, whatever the subset's order
    assert voted_correct([2, 0], ["7", "x", "3"], [True, False, False])


def test_every_selector_reported_at_every_n_and_a_perfect_rm_matches_the_oracle(tmp_path):
    problems, _ = _problems(10, 8, seed=2)
    perfect = [[float(c) for c in p["correct"]] for p in problems]
    rows = best_of_n(problems, {"perfect": perfect})
    table = {(r["selector"], r["n"]): r["accuracy"] for r in rows}
    assert {s for s, _ in table} == {"oracle", "majority", "rank:perfect", "weighted:perfect"}
    for n in n_grid(8):
        assert table["rank:perfect", n] == pytest.approx(table["oracle", n])
    mean_acc = sum(sum(p["correct"]) / 8 for p in problems) / 10
    assert table["majority", 1] == pytest.approx(mean_acc)  # N = 1 is exact
    assert "| oracle |" in format_table(rows)
    assert plot_best_of_n(rows, tmp_path / "bon.png").stat().st_size > 5000
