"""ORM and PRM training on a tiny synthetic set: the loss falls, and a held-out right solution
is ranked above a wrong one. Good steps say "carefully", bad steps say "guess"; a solution is
right when none of its steps guesses."""

import random

import pytest

from rewards.rm import OutcomeRewardModel, ProcessRewardModel, RMFormat, load_reward_model
from trainers.rm import (
    RMTrainConfig,
    orm_ranking_accuracy,
    preference_pairs,
    prm_step_accuracy,
    train_orm,
    train_prm,
)

GOOD, BAD = "We add carefully {a} and {b}.", "We guess {a} or {b}."


def _solution(rng, n_steps, bad_at):
    steps = []
    for k in range(n_steps):
        a, b = rng.randint(1, 50), rng.randint(1, 50)
        steps.append((BAD if k == bad_at else GOOD).format(a=a, b=b))
    return steps


def _rows(n_problems, seed):
    rng = random.Random(seed)
    orm, prm = [], []
    for p in range(n_problems):
        problem = f"Problem {p}: what is {rng.randint(1, 99)} plus {rng.randint(1, 99)}?"
        for bad_at in (None, rng.randint(0, 2)):
            steps = _solution(rng, 3, bad_at)
            labels = [0.0 if bad_at is not None and k >= bad_at else 1.0 for k in range(3)]
            orm.append(
                {"problem": problem, "solution": "\n".join(steps), "correct": bad_at is None}
            )
            prm.append({"problem": problem, "steps": steps, "labels": labels})
    return orm, prm


CONFIG = RMTrainConfig(epochs=12, batch_size=8, lr=3e-3, seed=0)


def test_orm_classification_learns_the_cue_and_ranks_right_above_wrong(tmp_path):
    train, _ = _rows(16, seed=0)
    held, _ = _rows(6, seed=1)
    orm = OutcomeRewardModel.from_backbone("tiny-random-llama")
    history = train_orm(orm, train, CONFIG)
    assert history[-1] < 0.5 * history[0]
    assert orm_ranking_accuracy(orm, held) == 1.0
    right = next(r for r in held if r["correct"])
    wrong = next(r for r in held if not r["correct"] and r["problem"] == right["problem"])
    assert orm.score(right["problem"], right["solution"]) > orm.score(
        wrong["problem"], wrong["solution"]
    )
    again = load_reward_model(orm.save(tmp_path / "orm"))
    assert again.kind == "orm"
    assert again.score(right["problem"], right["solution"]) == pytest.approx(
        orm.score(right["problem"], right["solution"]), abs=1e-5
    )


def test_orm_pairwise_through_trl_reward_trainer_ranks_right_above_wrong():
    train, _ = _rows(16, seed=0)
    held, _ = _rows(6, seed=1)
    orm = OutcomeRewardModel.from_backbone("tiny-random-llama")
    before = orm_ranking_accuracy(orm, held)
    history = train_orm(orm, train, RMTrainConfig(epochs=4, batch_size=4, lr=3e-3), loss="pairwise")
    assert sum(history[-4:]) / 4 < sum(history[:4]) / 4
    assert orm_ranking_accuracy(orm, held) == 1.0 > before


def test_prm_learns_step_labels_and_scores_bad_steps_low(tmp_path):
    _, train = _rows(16, seed=0)
    _, held = _rows(6, seed=1)
    prm = ProcessRewardModel.from_backbone("tiny-random-llama")
    history = train_prm(prm, train, CONFIG)
    assert history[-1] < 0.5 * history[0]
    assert prm_step_accuracy(prm, held) >= 0.9
    steps = [GOOD.format(a=3, b=4), BAD.format(a=7, b=1), GOOD.format(a=7, b=7)]
    scores = prm.score_steps("Problem 99: what is 3 plus 4?", steps)
    assert len(scores) == 3 and scores[0] > 0.5 > scores[1]
    again = load_reward_model(prm.save(tmp_path / "prm"))
    assert again.score_steps("Problem 99: what is 3 plus 4?", steps) == pytest.approx(
        scores, abs=1e-5
    )


def test_three_class_prm_trains_on_prm800k_ratings():
    from rewards.rm import load_prm_rows

    prm = ProcessRewardModel.from_backbone("tiny-random-llama", num_labels=3)
    rows = load_prm_rows("prm800k:sample")
    history = train_prm(prm, rows, RMTrainConfig(epochs=4, batch_size=6, lr=3e-3))
    assert history[-1] < history[0]
    scores = prm.score_steps(rows[0]["problem"], rows[0]["steps"])
    assert len(scores) == len(rows[0]["steps"]) and all(0 <= s <= 1 for s in scores)


def test_prm_reads_scores_at_the_step_tag_tokens():
    prm = ProcessRewardModel.from_backbone("tiny-random-llama")
    ids, positions = prm.encode("What is 1 + 1?", ["1 + 1 = 2.", "The answer is 2."])
    tag = prm.tokenizer("\n", add_special_tokens=False)["input_ids"][0]
    assert len(positions) == 2 and all(ids[p] == tag for p in positions)
    assert positions[-1] == len(ids) - 1
    text = prm.tokenizer.decode(ids[positions[0] + 1 : positions[1]])
    assert text == "The answer is 2."


def test_a_multi_token_step_tag_is_refused():
    from assay.errors import ConfigError

    prm = ProcessRewardModel.from_backbone("tiny-random-llama", RMFormat(step_tag=" ки done"))
    with pytest.raises(ConfigError, match="one token"):
        prm.encode("q", ["a"])


def test_preference_pairs_only_pair_solutions_of_the_same_problem():
    rows = [
        {"problem": "p", "solution": "a", "correct": True},
        {"problem": "p", "solution": "b", "correct": False},
        {"problem": "p", "solution": "c", "correct": False},
        {"problem": "q", "solution": "d", "correct": True},
    ]
    pairs = preference_pairs(rows, per_problem=8)
    assert sorted((a["solution"], b["solution"]) for a, b in pairs) == [("a", "b"), ("a", "c")]
    assert len(preference_pairs(rows, per_problem=1)) == 1


def test_long_prm_inputs_keep_their_end_and_cut_steps_score_zero():
    from trainers.rm import prm_examples

    prm = ProcessRewardModel.from_backbone("tiny-random-llama", RMFormat(max_length=5))
    steps = ["one two three four five six seven", "eight nine", "ten"]
    ids, positions = prm.encode("A problem with a long statement?", steps)
    assert len(ids) == 5 and positions == [-1, 2, 4]  # "eight nine\nten\n" is kept
    scores = prm.score_steps("A problem with a long statement?", steps)
    assert scores[0] == 0.0 and 0 < scores[-1] < 1
    rows = [{"problem": "p", "steps": steps, "labels": [1.0] * 3, "hard_labels": [1.0] * 3},
            {"problem": "p", "steps": ["ten"], "labels": [0.0], "hard_labels": [1.0]}]  # fmt: skip
    with pytest.warns(UserWarning, match="Skipped 1 PRM rows longer than max_length=5"):
        examples = prm_examples(prm, rows)
    assert [targets for _, _, targets in examples] == [[0.0]]
    with pytest.warns(UserWarning):
        assert prm_examples(prm, rows, label_key="hard_labels")[0][2] == [1.0]
