"""Reward a single-turn env's answers with a learned reward model instead of (or beside) its
verifiable reward: how ``assay train rl`` runs GRPO with an ORM or a PRM, and PPO with dense
per-step PRM rewards.

``RewardModelEnv(env, scorer, ...)`` wraps any single-turn TextEnv. Its reward for an answer is

    reward = weight * rm_score + grader_weight * env_reward

where ``rm_score`` is the ORM's probability that the answer is right, or the PRM's step scores
aggregated by ``aggregate`` (``rewards.rm.aggregate``: min, prod, mean, last, max, geomean).
With ``aggregate="per_step"`` the episode reward is ``grader_weight * env_reward`` and each
step's reward (:func:`dense_rewards`: the change in PRM score by default, or the score itself)
times ``weight`` goes in ``info["step_rewards"]`` (``[[char_end, reward], ...]``), which the PPO
learner places on the token that ends each step (the "fine-grained" delivery of Lightman et al.
/ Wu et al.). ``info`` keeps the env's own keys (e.g. ``correct``, so training
curves still show accuracy) and adds ``rm_score`` (the aggregated score; the mean step score for
``per_step``) and ``grader_reward``.

The problem text the reward model reads is ``env.problem.question`` for the math envs (what the
RM was trained on), otherwise the last user message. ``scorer`` is a
:class:`rewards.rm.OutcomeRewardModel` or :class:`rewards.rm.ProcessRewardModel`, or any object
with the same ``kind`` and ``score_many`` / ``score_solutions`` methods (e.g. the Ray actor proxy
of ``trainers.rm_actor``). All answers of a batch are scored in one call (``score_many``).
"""

from __future__ import annotations

from typing import Any

from assay.errors import ConfigError
from envs.core import score_answers
from rewards.rm.aggregate import aggregate, check_aggregation, step_rewards

DENSE_MODES = ("delta", "score")
DENSE_START = 0.5
"""The score before the first step for ``dense="delta"``: an uninformed PRM's verdict."""


def dense_rewards(step_scores: list[float], mode: str = "delta") -> list[float]:
    """Per-step rewards from per-step scores s_1..s_K.

    - ``delta``: r_k = s_k - s_{k-1} with s_0 = 0.5, potential-based shaping (Ng et al. 1999):
      the rewards sum to s_K - 0.5 whatever K is, so extra steps earn nothing by themselves;
    - ``score``: r_k = s_k, the PRM's score on every step (Lightman et al.'s fine-grained
      reward). Every step adds a positive reward, so a policy can gain by writing more steps.

    >>> [round(r, 2) for r in dense_rewards([0.9, 0.4, 0.7])]
    [0.4, -0.5, 0.3]
    """
    if mode == "score":
        return list(step_scores)
    previous = [DENSE_START, *step_scores[:-1]]
    return [s - p for s, p in zip(step_scores, previous, strict=True)]


class RewardModelEnv:
    """A single-turn env whose reward comes (partly) from a reward model; see the module
    docstring. Every other attribute is the wrapped env's."""

    def __init__(
        self,
        env,
        scorer,
        aggregate: str = "min",
        weight: float = 1.0,
        grader_weight: float = 0.0,
        dense: str = "delta",
    ):
        check_aggregation(aggregate)
        if dense not in DENSE_MODES:
            raise ConfigError(f"dense must be one of {', '.join(DENSE_MODES)}, got {dense!r}.")
        self.dense = dense
        if scorer.kind == "orm" and aggregate == "per_step":
            raise ConfigError("aggregate=per_step needs a PRM; an ORM gives one score per answer.")
        self.env = env
        self.scorer = scorer
        self.aggregate = aggregate
        self.weight = float(weight)
        self.grader_weight = float(grader_weight)
        self.metric_keys = (*getattr(env, "metric_keys", ()), "rm_score", "grader_reward")

    def __getattr__(self, name: str):
        return getattr(self.env, name)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        observation, info = self.env.reset(seed=seed, options=options)
        self._problem = self.problem_text(observation)
        return observation, info

    def problem_text(self, observation: list[dict[str, str]]) -> str:
        problem = getattr(self.env, "problem", None)
        if problem is not None and hasattr(problem, "question"):
            return problem.question
        return next(m["content"] for m in reversed(observation) if m["role"] == "user")

    def step(self, action: str):
        transcript, env_reward, terminated, truncated, env_info = self.env.step(action)
        ((reward, info),) = self._score([(self._problem, action)], [(float(env_reward), env_info)])
        return transcript, reward, terminated, truncated, info

    def score_many(self, episodes: list[tuple[int, str]]) -> list[tuple[float, dict[str, Any]]]:
        """Reward and info of every (seed, answer) pair, the reward model called once."""
        problems = []
        for seed, _ in episodes:
            observation, _ = self.env.reset(seed=seed)
            problems.append(self.problem_text(observation))
        graded = score_answers(self.env, episodes)
        pairs = [(p, answer) for p, (_, answer) in zip(problems, episodes, strict=True)]
        return self._score(pairs, graded)

    def _score(self, pairs: list[tuple[str, str]], graded: list[tuple[float, dict]]):
        if self.scorer.kind == "orm":
            per_answer: list[Any] = self.scorer.score_many(pairs)
        else:
            per_answer = self.scorer.score_solutions(pairs)
        out = []
        for (_, answer), (env_reward, env_info), score in zip(
            pairs, graded, per_answer, strict=True
        ):
            info = dict(env_info, grader_reward=float(env_reward))
            reward = self.grader_weight * float(env_reward)
            if self.scorer.kind == "orm":
                info["rm_score"] = float(score)
                reward += self.weight * float(score)
            elif self.aggregate == "per_step":
                split = self.scorer.format.split
                info["rm_score"] = sum(score) / len(score) if score else 0.0
                placed = step_rewards(answer, dense_rewards(score, self.dense), split)
                info["step_rewards"] = [[end, self.weight * r] for end, r in placed]
            else:
                info["rm_score"] = float(aggregate(score, self.aggregate))
                reward += self.weight * info["rm_score"]
            out.append((reward, info))
        return out
