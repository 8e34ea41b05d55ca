"""Any single-turn env as a TRL ``reward_funcs`` callable, for a dataset of its episodes.

A dataset row names its episode by ``seed`` (and, for curricula, the env options it was drawn
with, in an ``env_kwargs`` JSON column); the reward function rebuilds that episode and scores
each completion with one batched ``envs.score_answers`` call per TRL batch, so a judge model or
API sees the whole batch at once. ``assay codenames export`` writes such datasets.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from envs.core import score_answers
from envs.registry import make


def _text(completion: Any) -> str:
    # TRL passes plain strings for text datasets and message lists for conversational ones.
    if isinstance(completion, str):
        return completion
    return "".join(message.get("content") or "" for message in completion)


def env_reward(env_id: str, **env_kwargs: Any) -> Callable[..., list[float]]:
    """``f(completions, seed, env_kwargs=None, **columns) -> rewards`` for ``GRPOTrainer``."""
    cache: dict[str, Any] = {}

    def env_for(options: str | None):
        key = options or "{}"
        if key not in cache:
            cache[key] = make(env_id, **{**env_kwargs, **json.loads(key)})
        return cache[key]

    def reward_func(completions: list[Any], seed: list[int], **columns: Any) -> list[float]:
        options = columns.get("env_kwargs") or [None] * len(completions)
        rewards: list[float] = [0.0] * len(completions)
        groups: dict[str | None, list[int]] = {}
        for i, option in enumerate(options):
            groups.setdefault(option, []).append(i)
        for option, rows in groups.items():
            pairs = [(int(seed[i]), _text(completions[i])) for i in rows]
            for i, (reward, _) in zip(rows, score_answers(env_for(option), pairs), strict=True):
                rewards[i] = float(reward)
        return rewards

    reward_func.__name__ = env_id.replace("-", "_")
    return reward_func
