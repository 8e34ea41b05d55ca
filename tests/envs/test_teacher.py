"""Envs as teachers (``demonstration``) and chance baselines (``chance_reward``), and the
format/skill split they feed in evaluations."""

from itertools import combinations

import pytest

import envs
from envs.checker import check_teacher
from rewards import guess_chance_reward, score_guess_answer
from trainers.engines.base import Completion
from trainers.evaluate import evaluate_policy


def _brute_force_chance(words, targets, non_targets, max_guesses) -> float:
    """Mean reward of every valid answer, each written out and scored by the env's grader."""
    rewards = []
    for k in range(1, max_guesses + 1):
        for chosen in combinations(words, k):
            score = score_guess_answer(
                "Guesses: " + ", ".join(chosen), words, targets, non_targets, max_guesses
            )
            assert score.valid
            rewards.append(score.reward)
    return sum(rewards) / len(rewards)


HAND_MADE = [
    # (words, targets, non_targets, max_guesses)
    (("A", "B", "C", "D"), ("A",), ("B",), 2),
    (("A", "B", "C", "D", "E", "F", "G"), ("A", "B", "C"), ("D", "E"), 3),
    (("A", "B", "C", "D", "E", "F", "G", "H", "I"), ("A", "B"), ("C", "D", "E", "F"), 4),
    (("A", "B", "C", "D", "E"), ("A", "B"), ("C", "D", "E"), 5),  # no neutral word
    (("A", "B", "C", "D", "E", "F"), ("A",), ("B", "C"), 1),
]


@pytest.mark.parametrize("board", HAND_MADE, ids=lambda b: f"{len(b[0])}w-{b[3]}g")
def test_guess_chance_baseline_equals_brute_force_enumeration(board):
    words, targets, non_targets, g = board
    exact = guess_chance_reward(len(words), len(targets), len(non_targets), g)
    assert exact == pytest.approx(_brute_force_chance(words, targets, non_targets, g), abs=1e-12)


def test_the_env_reports_its_boards_chance_baseline():
    env = envs.make("codenames-guess-v0", n_neutral=[1, 3], n_targets=[2, 4])
    seen = set()
    for seed in range(8):
        _, info = env.reset(seed=seed)
        chance = env.chance_reward()
        neutral = [w for w in info["board"] if w not in info["targets"] + info["non_targets"]]
        assert neutral, "these boards hold neutral words, so chance is below 0"
        brute = _brute_force_chance(
            tuple(info["board"]), info["targets"], info["non_targets"], info["max_guesses"]
        )
        assert chance == pytest.approx(brute, abs=1e-12) and chance < 0
        seen.add(round(chance, 9))
    assert len(seen) > 1
    env.step("Guesses: nothing")
    assert env.chance_reward() is None  # the episode is over


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [
        ("codenames-guess-v0", {}),
        ("codenames-guess-v0", {"teacher": "embedding", "n_neutral": [2, 2]}),
        ("codenames-guess-v0", {"tier": "expert"}),
        ("codenames-clue-v0", {}),
        ("math-gsm8k-v0", {}),
        ("math-math-v0", {"split": "test"}),
    ],
)
def test_every_demonstration_is_a_valid_answer(env_id, kwargs):
    env = envs.make(env_id, **kwargs)
    rewards = []
    for seed in range(12):
        _, hidden = env.reset(seed=seed)
        answer = env.demonstration()
        assert isinstance(answer, str) and answer
        _, reward, done, _, info = env.step(answer)
        assert info["valid"], (answer, info["reason"])
        if env_id.startswith("math"):
            assert reward == 1.0  # the worked solution is graded correct
        elif env_id == "codenames-guess-v0" and "teacher" not in kwargs:
            # The targets, cut to the guess limit: the best reward the board allows.
            t = len(hidden["targets"])
            assert reward == pytest.approx(min(hidden["max_guesses"], t) / t)
        rewards.append(reward)
    # The embedding agents are good players on these boards, not perfect ones.
    assert sum(rewards) / len(rewards) >= 0.3


def test_envs_without_a_teacher_say_so():
    env = envs.make("math-math-v0", split="train")  # MATH train ships no worked solutions
    env.reset(seed=0)
    assert env.demonstration() is None and env.chance_reward() is None
    check_teacher(env)  # no teacher is no failure


def test_the_checker_catches_a_teacher_whose_answers_are_invalid():
    env = envs.make("codenames-guess-v0")
    env.unwrapped.demonstration = lambda: "Guesses: NOT_A_BOARD_WORD"
    with pytest.raises(AssertionError, match="demonstration on seed 0 is invalid"):
        check_teacher(env)


class _HalfRight:
    """Answers the env's demonstration on even seeds and the worst valid answer on odd ones,
    and nonsense on every third seed."""

    def __init__(self, env):
        self.env = env

    def generate(self, prompts, sampling):
        out = []
        for _prompt in prompts:
            seed = self._seeds.pop(0)
            self.env.reset(seed=seed)
            board = self.env.board
            if seed % 3 == 0:
                text = "no idea"
            elif seed % 2 == 0:
                text = self.env.demonstration()
            else:
                text = "Guesses: " + board.non_targets[0]
            out.append([Completion(text, [], [], [], "stop")])
        return out


def test_evaluation_reports_format_and_skill_apart():
    env = envs.make("codenames-guess-v0", n_neutral=[1, 2])
    seeds = list(range(12))
    engine = _HalfRight(envs.make("codenames-guess-v0", n_neutral=[1, 2]))
    engine._seeds = list(seeds)
    result = evaluate_policy(engine, env, seeds, max_new_tokens=8, batch_size=5)
    m = result.metrics
    valid = [e for e in result.episodes if e["valid"]]
    assert m["valid_rate"] == pytest.approx(8 / 12)  # seeds 0, 3, 6, 9 answer nonsense
    assert m["reward_valid_mean"] == pytest.approx(sum(e["reward"] for e in valid) / 8)
    # Invalid answers score -1 and pull the raw mean below the mean among valid answers.
    assert m["reward_mean"] < m["reward_valid_mean"]
    chances = []
    for seed in seeds:
        env.reset(seed=seed)
        chances.append(env.chance_reward())
    assert m["chance_reward"] == pytest.approx(sum(chances) / 12)
    assert [e["chance_reward"] for e in result.episodes] == pytest.approx(chances)
