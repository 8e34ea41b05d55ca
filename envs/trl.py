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


def environment_factory(
    env_id: str, seats: dict[str, str] | None = None, **env_kwargs: Any
) -> type:
    """An assay env for ``GRPOTrainer(environment_factory=...)`` (TRL's multi-turn training).

    TRL plays an environment through tool calls: each rollout calls ``reset(**row)`` with the
    dataset row (its ``seed`` column picks the episode; without a ``prompt`` column the first
    observation is returned as the prompt), the model acts by calling the ``act`` tool with its
    text, and ``get_reward`` gives the rollout's reward: the summed rewards of the agents the
    model plays. ``seats`` (``fnmatch`` pattern -> scripted kind, e.g. ``{"blue/*":
    "embedding"}``) are played by the env's scripted agents between the model's turns. Acting
    after the episode ended raises, which TRL returns to the model as the tool's error.
    """
    return type(
        "AssayEnvironment",
        (_ToolEnvironment,),
        {"env_id": env_id, "env_kwargs": dict(env_kwargs), "seats": dict(seats or {})},
    )


class _ToolEnvironment:
    env_id: str = ""
    env_kwargs: dict[str, Any] = {}
    seats: dict[str, str] = {}

    def __init__(self) -> None:
        self._env = make(self.env_id, **self.env_kwargs)
        self._players: dict[str, Callable[..., str]] = {}
        self._seed, self._observation, self._info = 0, [], {}
        self.reward, self.done = 0.0, False

    def reset(self, seed: int | None = None, prompt: Any = None, **columns: Any) -> str | None:
        """Start the row's episode; its first observation when the row brings no prompt."""
        self._seed = int(seed) if seed is not None else 0
        self._observation, self._info = self._env.reset(seed=seed)
        self._players, self.reward, self.done = {}, 0.0, False
        self._play_seats()
        return None if prompt else _observation_text(self._observation)

    def act(self, message: str) -> str:
        """Send your move or answer to the environment and see what happens next.

        Args:
            message: Your move or answer, in the format the environment asked for.
        """
        if self.done:
            raise ValueError("The episode is over: stop calling tools.")
        self._step(message)
        self._play_seats()
        if self.done:
            return f"The episode is over. Your reward: {self.reward:g}."
        return _observation_text(self._observation)

    def get_reward(self) -> float:
        return self.reward

    def _step(self, text: str) -> None:
        agent = self._info.get("agent", "")
        self._observation, reward, terminated, truncated, self._info = self._env.step(text)
        rewards = self._info.get("rewards") or {agent: reward}  # per agent, or the actor's
        self.reward += sum(float(v) for who, v in rewards.items() if not self._scripted(who))
        self.done = bool(terminated or truncated)

    def _play_seats(self) -> None:
        while not self.done and self._scripted(agent := self._info.get("agent", "")):
            if agent not in self._players:
                kind = self._scripted(agent)
                self._players[agent] = self._env.scripted_policy(kind, agent, seed=self._seed)
            self._step(self._players[agent](self._observation, self._info))

    def _scripted(self, agent: str) -> str | None:
        from fnmatch import fnmatch

        return next((kind for pattern, kind in self.seats.items() if fnmatch(agent, pattern)), None)


def _observation_text(observation: list[dict[str, str]]) -> str:
    """What the model is shown of an observation: its last message (the newest turn)."""
    return observation[-1]["content"] if observation else ""
