"""Step splitting, aggregation on hand-made scores, arithmetic step labels."""

import math

import pytest

from assay.errors import ConfigError
from rewards import aggregate
from rewards.rm import arithmetic_labels, split_steps, step_rewards, step_spans


@pytest.mark.parametrize(
    ("how", "text", "steps"),
    [
        ("newline", "a = 1\n\n  b = 2  \nSo 3.", ["a = 1", "b = 2", "So 3."]),
        ("paragraph", "x\ny\n\nz\n \nw", ["x\ny", "z", "w"]),
        ("step_k", "Let us see. Step 1: add 2. step 2. Then 4\nStep 3: done", 
         ["Let us see.", "Step 1: add 2.", "step 2. Then 4", "Step 3: done"]),
        ("sentence", "It is 3.5 kg. Twice is 7! Why? Because.\nNext line", 
         ["It is 3.5 kg.", "Twice is 7!", "Why?", "Because.", "Next line"]),
    ],
)  # fmt: skip
def test_splitters(how, text, steps):
    assert split_steps(text, how) == steps
    assert [text[a:b] for a, b in step_spans(text, how)] == steps


def test_unknown_splitter_suggests_the_closest():
    with pytest.raises(ConfigError, match="newline"):
        split_steps("a", "newlines")


def test_aggregations_on_hand_made_scores():
    s = [0.9, 0.5, 0.8]
    assert aggregate(s, "min") == 0.5
    assert aggregate(s, "max") == 0.9
    assert aggregate(s, "last") == 0.8
    assert aggregate(s, "mean") == pytest.approx(2.2 / 3)
    assert aggregate(s, "prod") == pytest.approx(0.36)
    assert aggregate(s, "geomean") == pytest.approx(0.36 ** (1 / 3))
    assert aggregate(s, "per_step") == s
    assert aggregate([0.0, 1.0], "geomean") == pytest.approx(math.sqrt(1e-12))


def test_no_steps_aggregate_to_zero_and_unknown_names_fail():
    assert aggregate([], "min") == 0.0 and aggregate([], "per_step") == []
    with pytest.raises(ConfigError, match="prod"):
        aggregate([0.5], "product")


def test_step_rewards_sit_at_each_steps_last_character():
    text = "First 2 + 2 = 4.\nThen 4 * 2 = 8.\nThe answer is 8."
    dense = step_rewards(text, [0.1, 0.2, 0.3])
    assert [text[: int(end)].splitlines()[-1] for end, _ in dense] == text.splitlines()
    assert [r for _, r in dense] == [0.1, 0.2, 0.3]
    with pytest.raises(ValueError, match="2 scores for 3 steps"):
        step_rewards(text, [0.1, 0.2])


def test_arithmetic_labels_are_prefix_labels_and_use_the_outcome():
    text = (
        "He has 3 * 4 = 12 apples.\nHe eats 2, so 12 - 2 = 9.\nHe buys 1 more.\nThe answer is 10."
    )
    assert arithmetic_labels(text, correct=True) == [1.0, 0.0, 0.0, 0.0]
    fine = "He has 3 * 4 = 12 apples.\nHe eats 2, so 12 - 2 = 10.\nThe answer is 10."
    assert arithmetic_labels(fine, correct=True) == [1.0, 1.0, 1.0]
    assert arithmetic_labels(fine, correct=False) == [1.0, 1.0, 0.0]
    assert arithmetic_labels(fine) == [1.0, 1.0, 1.0]


def test_a_reward_model_as_one_batched_trl_reward_function():
    from rewards.rm import RMFormat
    from rewards.trl import as_trl_reward_model

    class FakePRM:
        kind, format, calls = "prm", RMFormat(), 0

        def score_solutions(self, pairs):
            FakePRM.calls += 1
            return [[0.9, 0.4] if p == "hard" else [0.8] for p, _ in pairs]

    func = as_trl_reward_model(FakePRM(), aggregate="min")
    completions = [
        [{"role": "assistant", "content": "a\nb"}],
        [{"role": "assistant", "content": "c"}],
    ]
    assert func(completions, problem=["hard", "easy"]) == [0.4, 0.8]
    prompts = [[{"role": "user", "content": "hard"}], [{"role": "user", "content": "easy"}]]
    assert func(completions, prompts=prompts) == [0.4, 0.8]
    assert FakePRM.calls == 2 and func.__name__ == "prm_min"
    with pytest.raises(ConfigError, match="one number per completion"):
        as_trl_reward_model(FakePRM(), aggregate="per_step")
