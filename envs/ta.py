"""TextArena's games as assay envs: ``ta/<game id>`` (e.g. ``ta/TicTacToe-v0``,
``ta/Codenames-v0``) for every game it registers (``pip install 'assay[gyms]'``; loaded only
when such an env is listed or made).

Seats are named from TextArena's player ids (``player_0``, ``player_1``, ...); the observation is
the acting player's text as one user message; when the game ends, every player's reward from
TextArena's close-out goes into ``info["rewards"]`` (assay's multi-agent contract) and the last
actor's into the step's reward. Train one with ``episodes.multi_turn: true``. ``num_players``
unset takes the first of 2, 4, 3, 5, 6, 1 that the game accepts.
"""

from __future__ import annotations

from typing import Any

from assay.errors import ConfigError
from envs.core import TextEnv

PLAYER_COUNTS = (2, 4, 3, 5, 6, 1)


def game_ids(include_variants: bool = False) -> list[str]:
    """TextArena's game ids ([] when it is not installed); its ``-train``/``-raw`` variants only
    with ``include_variants``."""
    try:
        from textarena.envs.registration import ENV_REGISTRY
    except ImportError:
        return []
    ids = sorted(ENV_REGISTRY)
    return ids if include_variants else [i for i in ids if not i.endswith(("-train", "-raw"))]


class TextArenaEnv(TextEnv):
    """One TextArena game per episode; every player is a seat."""

    def __init__(self, game: str, num_players: int | None = None, **options: Any):
        super().__init__()
        try:
            import textarena
        except ImportError:
            raise ConfigError("ta/* envs need textarena: pip install 'assay[gyms]'.") from None
        self.game, self.options = game, options
        self._make = lambda: textarena.make(game, **options)
        try:
            self.ta = self._make()
        except TypeError as err:
            raise ConfigError(f"ta/{game}: {err}.") from None
        counts = (num_players,) if num_players is not None else PLAYER_COUNTS
        self.num_players = self._players(counts)
        self.possible_agents = tuple(f"player_{i}" for i in range(self.num_players))
        self.fixed_start = self.reset(seed=1)[0] == self.reset(seed=2)[0]  # e.g. an empty board
        self._agent = ""
        self._last: list[dict[str, str]] = []

    def _players(self, counts: tuple[int, ...]) -> int:
        errors = []
        for count in counts:
            try:
                self.ta.reset(num_players=count, seed=0)
                return count
            except Exception as err:  # TextArena says "needs exactly N players" in many ways
                errors.append(f"{count}: {err}")
        raise ConfigError(f"ta/{self.game} refused every player count ({'; '.join(errors)[:300]}).")

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        game_seed = seed if seed is not None else int(self.np_random.integers(2**31))
        self.ta = self._make()  # a fresh game: nothing of the last one carries over
        self.ta.reset(num_players=self.num_players, seed=game_seed)
        return self._observe(), self.make_info(self._agent)

    def step(self, action: str):
        if not self._agent:
            raise ConfigError("call reset() before step().")
        actor, state = self._agent, self._state()
        errors = getattr(state, "error_count", 0)
        done, _ = self.ta.step(action)
        refused = getattr(state, "error_count", 0) > errors  # TextArena asks the player again
        reason = "TextArena refused the move (see the observation)" if refused else ""
        if not done:
            observation = self._observe()
            return observation, 0.0, False, False, self.make_info(self._agent, not refused, reason)
        rewards, game_info = self.ta.close()
        per_seat = {f"player_{p}": float(r) for p, r in (rewards or {}).items()}
        mine = (game_info or {}).get(int(actor.split("_")[1]), {})
        invalid = refused or bool(mine.get("invalid_move", False))
        why = str(mine.get("reason", "")) if invalid else ""
        info = self.make_info(actor, not invalid, why or reason or ("" if not invalid else "invalid move"),
                              rewards=per_seat)  # fmt: skip
        self._agent = ""
        return list(self._last), per_seat.get(actor, 0.0), True, False, info

    def _state(self):
        inner = self.ta
        while not hasattr(inner, "state") and hasattr(inner, "env"):
            inner = inner.env
        return getattr(inner, "state", None)

    def _observe(self) -> list[dict[str, str]]:
        player, text = self.ta.get_observation()
        if not isinstance(text, str):  # a raw (unwrapped) game gives (sender, message) pairs
            text = "\n".join(f"[{sender}] {message}" for sender, message, *_ in text)
        self._agent = f"player_{player}"
        self._last = [{"role": "user", "content": text}]
        return list(self._last)
