"""The TextEnv contract: a gymnasium Env whose observations are chat messages and actions are text.

- ``reset(seed=None, options=None) -> (observation, info)``
- ``step(action: str) -> (observation, reward, terminated, truncated, info)``

``observation`` is the chat-message list (``[{"role": ..., "content": ...}]``) the acting agent
sees. ``info`` always carries ``agent`` (who acts next, e.g. ``"guesser"`` or ``"red/spymaster"``),
``valid`` (did the last action parse and was it legal; ``True`` after ``reset``) and ``reason``
(why not, ``""`` if valid). Hidden state for the training loop (boards, gold answers) also goes in
``info`` and never in the observation. The same seed gives the same episode: everything random is
drawn from ``self.np_random``, which ``reset(seed=...)`` seeds.

Optional, for trainers:

- ``score_many(episodes)``: rewards of many single-turn ``(seed, answer)`` pairs at once. The
  default replays each (``reset`` then one ``step``); envs whose scoring batches well (a judge
  model, an API) override it. Single-turn RL and evaluation score through it.
- ``info["step_rewards"]``: ``[[char_end, reward], ...]`` in ``step``'s info, dense rewards
  inside one answer (a process reward model's per-step scores): each lands on the token that
  ends at or after ``char_end`` of the answer text. Estimators with a critic (PPO's GAE) use
  them; group estimators use the episode's reward only.
- ``metric_keys``: numeric ``info`` keys that trainers average and log.
- ``demonstration()``: a good answer for the turn the env is at (after ``reset`` or a ``step``):
  the env as a teacher. ``assay train sft`` with ``data.env`` fine-tunes on these answers (the
  warm start before RL). ``None`` (the default) where the env has none.
- ``chance_reward()``: the expected reward of a uniformly random *valid* answer on the
  episode the env is at, computed exactly; evaluations report it next to the reward among
  valid answers, so a policy that only learned the format is told apart from one that learned
  the task. ``None`` (the default) where the env does not define one.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from assay.errors import ConfigError

Message = dict[str, str]
ROLES = ("system", "user", "assistant")


class FreeText(spaces.Space[str]):
    """Any Python string up to ``max_length`` characters (gymnasium's ``Text`` limits the charset)."""

    def __init__(self, max_length: int = 4096, seed: int | None = None):
        super().__init__(shape=None, dtype=None, seed=seed)
        self.max_length = max_length

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        letters = np.array(list("abcdefghijklmnopqrstuvwxyz ,:"))
        length = int(self.np_random.integers(1, min(self.max_length, 64) + 1))
        return "".join(self.np_random.choice(letters, size=length))

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and len(x) <= self.max_length

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"FreeText(max_length={self.max_length})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, FreeText) and other.max_length == self.max_length


class ChatMessages(spaces.Space[list]):
    """A non-empty list of ``{"role": system|user|assistant, "content": str}`` messages."""

    def __init__(self, seed: int | None = None):
        super().__init__(shape=None, dtype=None, seed=seed)

    def sample(self, mask: Any = None, probability: Any = None) -> list[Message]:
        return [
            {"role": "user", "content": FreeText(seed=int(self.np_random.integers(2**31))).sample()}
        ]

    def contains(self, x: Any) -> bool:
        return (
            isinstance(x, list)
            and len(x) > 0
            and all(
                isinstance(m, dict)
                and set(m) == {"role", "content"}
                and m["role"] in ROLES
                and isinstance(m["content"], str)
                for m in x
            )
        )

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "ChatMessages()"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, ChatMessages)


class TextEnv(gym.Env[list, str]):
    """Base class of assay environments; subclasses implement ``reset`` and ``step``.

    Subclasses call ``super().reset(seed=seed)`` first in ``reset`` so that ``self.np_random`` is
    seeded, and build ``info`` with :meth:`make_info`.
    """

    metadata = {"render_modes": []}
    metric_keys: tuple[str, ...] = ()
    """Numeric ``info`` keys from ``step`` that trainers average and log (e.g. ``target_recall``)."""
    observation_space = ChatMessages()
    action_space = FreeText()
    possible_agents: tuple[str, ...] = ()
    """Every agent (``info["agent"]``) that may act, where the env knows them up front."""
    scripted_kinds: tuple[str, ...] = ()
    """Scripted agents :meth:`scripted_policy` can make (multi-agent envs: opponents)."""
    fixed_start: bool = False
    """True where every episode starts from the same observation (a board game's empty board);
    the checker then does not ask different seeds for different first observations."""

    def scripted_policy(self, kind: str, agent: str, seed: int = 0):
        """A scripted agent for the seat ``agent``: ``policy(observation, info) -> str``."""
        raise ConfigError(
            f"{type(self).__name__} has no scripted agents"
            + (f"; it offers {', '.join(self.scripted_kinds)}" if self.scripted_kinds else "")
            + f" (asked for {kind!r} on {agent!r})."
        )

    def demonstration(self) -> str | None:
        """A good answer for the current turn (the env as a teacher for SFT), or ``None``."""
        return None

    def chance_reward(self) -> float | None:
        """The exact expected reward of a uniformly random valid answer on the current
        episode, or ``None`` where the env defines no chance baseline."""
        return None

    @staticmethod
    def make_info(
        agent: str, valid: bool = True, reason: str = "", **hidden: Any
    ) -> dict[str, Any]:
        """Build an ``info`` dict with the three contract keys first, then any hidden state.
        ``hidden`` may carry ``step_rewards`` (see the module docstring)."""
        return {"agent": agent, "valid": valid, "reason": reason, **hidden}

    def score_many(self, episodes: list[tuple[int, str]]) -> list[tuple[float, dict[str, Any]]]:
        """``(reward, info)`` of each single-turn ``(seed, answer)``: by default ``reset(seed)``
        then ``step(answer)`` for each. Override it where one call for the batch is cheaper
        (a judge model, an API); the results must be the same as the default's. An env whose
        episode goes on after the first step is refused (it is not single-turn)."""
        return _replay(self, episodes)


def score_answers(env, episodes: list[tuple[int, str]]) -> list[tuple[float, dict]]:
    """Reward and info of each single-turn (seed, answer) pair: the env's ``score_many`` (every
    :class:`TextEnv` has one), or a replay of each for other gymnasium envs."""
    batched = getattr(env, "score_many", None)
    if batched is not None:
        return batched(episodes)
    return _replay(env, episodes)


def _replay(env, episodes: list[tuple[int, str]]) -> list[tuple[float, dict]]:
    out = []
    for seed, answer in episodes:
        env.reset(seed=seed)
        _, reward, terminated, truncated, info = env.step(answer)
        if not (terminated or truncated):
            name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
            raise ConfigError(
                f"{name} goes on after the first answer, and single-turn scoring (assay train "
                "rl, assay eval) would take its first step's reward for the episode's; train "
                "multi-turn envs with episodes.multi_turn: true, play them with assay rollout."
            )
        out.append((float(reward), info))
    return out
