"""Equivalence: positive and negative cases for every answer type, and the known traps."""

import json
from pathlib import Path

import pytest

from rewards.math import EquivalenceOptions, grade, grade_many, is_equivalent

# The labelled case set (every answer type, positive and negative, the known traps such as
# `1/2` vs `12`, `2\sqrt{3}` vs `2 \cdot 3`, `x^2` vs `2x`, open vs closed interval ends) is
# shared with benchmarks/grader.py, which compares it against math-verify.
CASE_FILE = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "grader_cases.jsonl"
ROWS = [json.loads(line) for line in CASE_FILE.read_text().splitlines() if line.strip()]
CASES = [(r["answer"], r["gold"], r["expected"]) for r in ROWS]


def test_the_case_set_covers_every_answer_type_both_ways():
    types = {r["type"] for r in ROWS}
    assert {"number", "expression", "interval", "set", "tuple", "matrix", "equation", "choice",
            "text", "percent", "units"} <= types  # fmt: skip
    for t in types - {"perturbed"}:
        assert {r["expected"] for r in ROWS if r["type"] == t} == {True, False}, t
    assert len(ROWS) >= 300


@pytest.mark.parametrize(
    ("answer", "gold", "expected"), CASES, ids=[f"{a[:20]}|{g[:20]}" for a, g, _ in CASES]
)
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


def test_non_text_inputs_grade_false_without_raising():
    assert is_equivalent(None, "1") is False
    assert is_equivalent("5", 5) is True  # a numeric gold is read as its text
    assert grade(None, "1").reason == "no answer found"


def test_trl_accuracy_reward_reads_answer_or_solution_columns():
    from rewards.math import accuracy_reward

    chats = [[{"role": "assistant", "content": "So \\boxed{\\frac{1}{2}}"}], "The answer is 3."]
    assert accuracy_reward(chats, answer=["0.5", "4"]) == [1.0, 0.0]
    assert accuracy_reward(chats, solution=["... $\\boxed{\\dfrac12}$", "... \\boxed{3}"]) == [
        1.0,
        1.0,
    ]
    with pytest.raises(ValueError, match="needs an `answer` or a `solution`"):
        accuracy_reward(chats)
