"""Rewards from a reward model: ORM and aggregated PRM scores mixed with the grader, and dense
per-step PRM rewards that land on the token ending each step."""

from types import SimpleNamespace

import pytest
import torch

import envs
from assay.config import load_config
from assay.errors import ConfigError
from envs.reward_model import RewardModelEnv
from rewards.rm import RMFormat, split_steps
from trainers.engines.base import Completion
from trainers.rl.advantages import token_rewards
from trainers.rl.config import RLConfig


class FakePRM:
    """Step k of every solution scores 0.9 - 0.2 k; records what it was asked."""

    kind = "prm"
    format = RMFormat()

    def __init__(self):
        self.calls = []

    def score_solutions(self, pairs):
        self.calls.append(list(pairs))
        return [[0.9 - 0.2 * k for k in range(len(split_steps(s)))] for _, s in pairs]


class FakeORM:
    kind = "orm"
    format = RMFormat()

    def score_many(self, pairs):
        return [0.25 if "wrong" in s else 0.75 for _, s in pairs]


def _gold(env, seed):
    env.reset(seed=seed)
    return env.problem.answer, env.problem.question


def test_orm_reward_mixes_with_the_grader_and_keeps_the_env_metrics():
    env = RewardModelEnv(envs.make("math-gsm8k-v0"), FakeORM(), weight=1.0, grader_weight=0.5)
    gold, _ = _gold(env, 3)
    (r_right, info), (r_wrong, _) = env.score_many(
        [(3, f"So it is {gold}.\nThe answer is {gold}."), (3, "wrong.\nThe answer is -1.")]
    )
    assert r_right == pytest.approx(0.75 + 0.5) and r_wrong == pytest.approx(0.25)
    assert info["correct"] == 1.0 and info["rm_score"] == 0.75 and info["grader_reward"] == 1.0
    assert {"correct", "rm_score", "grader_reward"} <= set(env.metric_keys)


def test_prm_aggregation_and_the_problem_text_the_model_reads():
    prm = FakePRM()
    env = RewardModelEnv(envs.make("math-gsm8k-v0"), prm, aggregate="min")
    gold, question = _gold(env, 5)
    ((reward, info),) = env.score_many([(5, f"a\nb\nThe answer is {gold}.")])
    assert reward == pytest.approx(0.5) and info["rm_score"] == pytest.approx(0.5)
    assert prm.calls == [[(question, f"a\nb\nThe answer is {gold}.")]]
    env.reset(seed=5)
    _, reward, terminated, _, info = env.step("one step only")
    assert terminated and reward == pytest.approx(0.9)


def test_per_step_rewards_land_on_the_last_token_of_each_step():
    prm = FakePRM()
    answer = "First 3 + 4 = 7.\nThen 7 * 2 = 14.\nThe answer is 14."
    delta = RewardModelEnv(envs.make("math-gsm8k-v0"), prm, aggregate="per_step", weight=2.0)
    ((reward, info),) = delta.score_many([(0, answer)])
    assert reward == 0.0  # all of it is dense
    # the change in score from 0.5: sums to 2 * (0.5 - 0.5) whatever the number of steps
    assert [r for _, r in info["step_rewards"]] == pytest.approx([0.8, -0.4, -0.4])
    env = RewardModelEnv(
        envs.make("math-gsm8k-v0"), prm, aggregate="per_step", weight=2.0, dense="score"
    )
    ((reward, info),) = env.score_many([(0, answer)])
    assert [r for _, r in info["step_rewards"]] == pytest.approx([1.8, 1.4, 1.0])

    tokenizer = load_tokenizer()
    ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    rollout = SimpleNamespace(
        completions=[Completion(answer, [1], ids, [0.0] * len(ids), "stop")],
        train_rewards=torch.zeros(1, 1),
        infos=[info],
    )
    mask = torch.ones(1, len(ids))
    dense = token_rewards(rollout, mask, tokenizer)[0]
    where = dense.nonzero().flatten().tolist()
    assert dense[where].tolist() == pytest.approx([1.8, 1.4, 1.0])
    # each rewarded token is the one that completes its step's text
    for t, step in zip(where, answer.split("\n"), strict=True):
        assert tokenizer.decode(ids[: t + 1]).endswith(step)
        assert not tokenizer.decode(ids[:t]).endswith(step)


def load_tokenizer():
    from assay.models import load_tokenizer_and_dir

    return load_tokenizer_and_dir("tiny-random-llama")[0]


def test_per_step_is_refused_for_an_orm_and_outside_ppo():
    with pytest.raises(ConfigError, match="needs a PRM"):
        RewardModelEnv(envs.make("math-gsm8k-v0"), FakeORM(), aggregate="per_step")
    with pytest.raises(ConfigError, match="algo.name: ppo"):
        load_config(RLConfig, overrides=["reward_model.aggregate=per_step", "algo.name=grpo"])
    with pytest.raises(ConfigError, match="advantage gae"):
        load_config(
            RLConfig,
            overrides=["reward_model.aggregate=per_step", "algo.name=ppo", "algo.advantage=grpo"],
        )
    with pytest.raises(ConfigError, match="aggregate must be one of"):
        load_config(RLConfig, overrides=["reward_model.aggregate=median"])
