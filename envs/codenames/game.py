"""``codenames-game-v0``: the full two-team board game as a multi-agent TextEnv.

25 words; the starting team has 9, the other 8, 7 are neutral and 1 is the assassin. Turns
alternate: the team's spymaster gives a clue (a word and a number), then its operative guesses
one word per step, up to number + 1 guesses, and may pass after the first. A guess of the team's
own colour lets it go on; a neutral or opponent word ends the turn; the assassin loses the game
for the guessing team. A team wins when all its words are revealed (also by the other team's
mistakes). An illegal clue (on the board, a variant of a board word, not an English word, a
number outside 1-9, unreadable) or an illegal guess forfeits the turn and is flagged
(``info["valid"] = False``). The episode is truncated after ``max_turns`` team turns (a draw).

``info["agent"]`` names who acts next: ``red/spymaster``, ``red/operative``, ``blue/spymaster``
or ``blue/operative``; the observation is what that seat may see (operatives never see the key),
and ``info["view"]`` is the same view as data, for scripted agents. Answers:
``Clue: WORD N`` for spymasters, ``Guess: WORD`` or ``Pass`` for operatives.

Rewards: the step's ``reward`` is the acting seat's; ``info["rewards"]`` gives every seat's
reward for the step. At the end each agent of the winning team gets +1 and of the losing team
-1 (0 each on a draw). Optional shaping per revealed card (``shaping`` option, all 0 by default):
``own`` (the guessing team found one of its words), ``opponent`` and ``neutral`` (it hit one),
``assassin``, and ``illegal`` (a forfeited turn), credited to both agents of the acting team.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from gymnasium.error import ResetNeeded

from assay.errors import ConfigError
from envs.codenames.words import wordlist
from envs.core import Message, TextEnv
from rewards.codenames_clue import ClueAnswer, check_clue

TEAMS = ("red", "blue")
SEATS = tuple(f"{t}/{r}" for t in TEAMS for r in ("spymaster", "operative"))
SHAPING_KEYS = ("own", "opponent", "neutral", "assassin", "illegal")
_CLUE = re.compile(
    r"^[ \t>*_\-]*clue[*_ \t]*:[*_ \t]*(?P<word>[^\s,:]+)[\s,:]+(?P<n>\d+)", re.I | re.M
)
_GUESS = re.compile(r"^[ \t>*_\-]*guess[*_ \t]*:(?P<word>.*)$", re.I | re.M)
_PASS = re.compile(r"^[ \t>*_\-]*(pass|stop|end turn)\b", re.I | re.M)

SPYMASTER_PROMPT = (
    "You are the {team} spymaster in the board game Codenames. You see which words belong to "
    "which team. Give a one-word clue and a number: how many of your team's words it points to. "
    "Avoid clues that lead to the other team's words, neutral words, and above all the assassin."
)
OPERATIVE_PROMPT = (
    "You are the {team} operative in the board game Codenames. Your spymaster gives a one-word "
    "clue and a number; guess the board words that belong to your team, one at a time."
)


@dataclass
class GameState:
    words: tuple[str, ...]
    key: dict[str, str]  # word -> red | blue | neutral | assassin
    starting: str
    revealed: dict[str, str] = field(default_factory=dict)  # word -> colour, in reveal order
    team: str = ""
    role: str = "spymaster"
    clue: str = ""
    number: int = 0
    guesses_left: int = 0
    guesses_made: int = 0
    turns: int = 0  # team turns started
    history: list[str] = field(default_factory=list)
    winner: str | None = None

    def left(self, colour: str) -> int:
        return sum(1 for w, c in self.key.items() if c == colour and w not in self.revealed)


def other(team: str) -> str:
    return "blue" if team == "red" else "red"


class CodenamesGameEnv(TextEnv):
    """The two-team game. Options: ``max_turns`` (team turns before a draw, default 30),
    ``shaping`` (per-card rewards, see the module docstring), ``min_zipf`` (the clue gate's
    English-word threshold)."""

    metric_keys = ()
    possible_agents = SEATS
    scripted_kinds = ("embedding", "random")

    def __init__(
        self,
        max_turns: int = 30,
        shaping: dict[str, float] | None = None,
        min_zipf: float = 1.5,
    ):
        if not isinstance(max_turns, int) or isinstance(max_turns, bool) or max_turns < 1:
            raise ConfigError(f"max_turns must be an int >= 1, got {max_turns!r}.")
        shaping = dict(shaping or {})
        unknown = set(shaping) - set(SHAPING_KEYS)
        if unknown:
            raise ConfigError(
                f"shaping keys must be among {', '.join(SHAPING_KEYS)}; got {sorted(unknown)}."
            )
        self.max_turns = max_turns
        self.shaping = {k: float(shaping.get(k, 0.0)) for k in SHAPING_KEYS}
        self.min_zipf = min_zipf
        self.state: GameState | None = None

    def scripted_policy(self, kind: str, agent: str, seed: int = 0):
        """``embedding`` or ``random`` agent for a seat (``red/spymaster``, ...), as a policy
        ``(observation, info) -> str`` for :func:`trainers.episodes.run_episodes`."""
        from envs.codenames.agents import scripted_agent

        role = agent.rpartition("/")[2]
        if kind not in self.scripted_kinds or role not in ("spymaster", "operative"):
            return super().scripted_policy(kind, agent, seed)
        player = scripted_agent(kind, role, seed=seed)
        return lambda observation, info: player.act(observation, info["view"])

    def demonstration(self) -> str | None:
        """The scripted embedding agent's move for the seat to act (the SFT teacher)."""
        if self.state is None or self.state.winner is not None:
            return None
        from envs.codenames.agents import scripted_agent

        player = scripted_agent("embedding", self.state.role)
        return player.act(self._observe(), self._info()["view"])

    # --- episode -------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        picked = rng.choice(len(wordlist()), 25, replace=False)
        words = tuple(wordlist()[i] for i in picked)
        starting = TEAMS[int(rng.integers(2))]
        colours = [starting] * 9 + [other(starting)] * 8 + ["neutral"] * 7 + ["assassin"]
        order = rng.permutation(25)
        key = {words[int(i)]: colours[k] for k, i in enumerate(order)}
        self.state = GameState(words, key, starting)
        self._start_turn(starting)
        return self._observe(), self._info()

    def _start_turn(self, team: str) -> None:
        s = self.state
        s.team, s.role, s.clue, s.number, s.guesses_left, s.guesses_made = (
            team,
            "spymaster",
            "",
            0,
            0,
            0,
        )
        s.turns += 1

    @property
    def agent(self) -> str:
        s = self.state
        return f"{s.team}/{s.role}"

    def step(self, action: str):
        if self.state is None or self.state.winner is not None:
            raise ResetNeeded("Call reset() before step(); this game is over or not started.")
        s = self.state
        action = action.replace("\r\n", "\n").replace("\r", "\n")
        rewards = dict.fromkeys(SEATS, 0.0)
        acting, team = self.agent, s.team
        if s.role == "spymaster":
            valid, reason = self._clue(action, rewards)
        else:
            valid, reason = self._guess(action, rewards)
        terminated = s.winner is not None
        truncated = False
        if not terminated and s.role == "spymaster" and s.team != team and s.turns > self.max_turns:
            truncated = True  # the next team turn would exceed the limit: a draw
            s.winner = "draw"
        if terminated:
            for seat in SEATS:
                rewards[seat] += 1.0 if seat.startswith(s.winner) else -1.0
        info = self._info(acting=acting, valid=valid, reason=reason, rewards=rewards)
        observation = self._observe() if not (terminated or truncated) else []
        return observation, rewards[acting], terminated, truncated, info

    def _credit(self, rewards: dict[str, float], team: str, key: str) -> None:
        for role in ("spymaster", "operative"):
            rewards[f"{team}/{role}"] += self.shaping[key]

    def _clue(self, action: str, rewards) -> tuple[bool, str]:
        s = self.state
        match = list(_CLUE.finditer(action))
        reason = ""
        if not match:
            reason = "no clue in the form 'Clue: WORD N'"
        else:
            word, number = (
                match[-1].group("word").strip("\"'*_.").upper(),
                int(match[-1].group("n")),
            )
            # Only words still showing are off limits (revealed cards are covered in the game).
            showing = [w for w in s.words if w not in s.revealed]
            check = check_clue(ClueAnswer(word, ("_",)), showing, ["_"], self.min_zipf)
            if not check.valid:
                reason = check.reason
            elif not 1 <= number <= 9:
                reason = f"number must be 1-9, got {number}"
        if reason:  # an illegal clue forfeits the turn
            s.history.append(f"{s.team} spymaster: illegal clue ({reason}); turn forfeited")
            self._credit(rewards, s.team, "illegal")
            self._start_turn(other(s.team))
            return False, reason
        s.clue, s.number, s.guesses_left, s.role = word, number, number + 1, "operative"
        s.history.append(f"{s.team} spymaster: {word} {number}")
        return True, ""

    def _guess(self, action: str, rewards) -> tuple[bool, str]:
        s = self.state
        if _PASS.search(action) and not _GUESS.search(action):
            if s.guesses_made == 0:
                reason = "pass before any guess"
                s.history.append(f"{s.team} operative: illegal pass; turn forfeited")
                self._credit(rewards, s.team, "illegal")
                self._start_turn(other(s.team))
                return False, reason
            s.history.append(f"{s.team} operative: pass")
            self._start_turn(other(s.team))
            return True, ""
        match = list(_GUESS.finditer(action))
        word = match[-1].group("word").strip(" \t\"'*_.").upper() if match else ""
        if word not in s.key or word in s.revealed:
            reason = (
                "no guess in the form 'Guess: WORD'"
                if not match
                else (f"{word} is not an unrevealed board word")
            )
            s.history.append(f"{s.team} operative: illegal guess ({reason}); turn forfeited")
            self._credit(rewards, s.team, "illegal")
            self._start_turn(other(s.team))
            return False, reason
        colour = s.key[word]
        s.revealed[word] = colour
        s.guesses_made += 1
        s.guesses_left -= 1
        s.history.append(f"{s.team} operative: {word} ({colour})")
        team = s.team
        if colour == "assassin":
            self._credit(rewards, team, "assassin")
            s.winner = other(team)
            return True, ""
        if colour == team:
            self._credit(rewards, team, "own")
        else:
            self._credit(rewards, team, "opponent" if colour in TEAMS else "neutral")
        for t in TEAMS:
            if s.left(t) == 0:
                s.winner = t
                return True, ""
        if colour != team or s.guesses_left == 0:
            self._start_turn(other(team))
        return True, ""

    # --- what each seat sees -------------------------------------------------------------------
    def view(self) -> dict[str, Any]:
        """The acting seat's view as data: the key only for spymasters."""
        s = self.state
        out: dict[str, Any] = {
            "team": s.team,
            "role": s.role,
            "words": list(s.words),
            "revealed": dict(s.revealed),
            "left": {t: s.left(t) for t in TEAMS},
            "history": list(s.history),
        }
        if s.role == "spymaster":
            out["key"] = dict(s.key)
        else:
            out.update(clue=s.clue, number=s.number, guesses_left=s.guesses_left,
                       guesses_made=s.guesses_made)  # fmt: skip
        return out

    def _observe(self) -> list[Message]:
        s = self.state
        v = self.view()
        lines = []
        for word in s.words:
            if word in s.revealed:
                lines.append(f"{word} [revealed: {s.revealed[word]}]")
            elif s.role == "spymaster":
                lines.append(f"{word} [{s.key[word]}]")
            else:
                lines.append(word)
        board = "\n".join(lines)
        history = "\n".join(s.history[-12:]) or "(none yet)"
        left = f"Words left: red {v['left']['red']}, blue {v['left']['blue']}."
        if s.role == "spymaster":
            system = SPYMASTER_PROMPT.format(team=s.team)
            ask = "Answer with one line: Clue: WORD N"
        else:
            system = OPERATIVE_PROMPT.format(team=s.team)
            ask = (
                f"Clue: {s.clue} {s.number}. Guesses left this turn: {s.guesses_left}. "
                "Answer with one line: Guess: WORD"
                + (" (or Pass to end the turn)" if s.guesses_made else "")
            )
        user = f"Board:\n{board}\n\n{left}\nHistory:\n{history}\n\n{ask}"
        return [{"role": "system", "content": system}, {"role": "user", "content": user}]

    def _info(self, **extra: Any) -> dict[str, Any]:
        s = self.state
        info = self.make_info(self.agent if s.winner is None else "", **extra)
        info["winner"] = s.winner
        info["turns"] = s.turns
        if s.winner is None:
            info["view"] = self.view()
        else:
            info["key"] = dict(s.key)  # the game is over: the key may be shown
        return info


def play_game(env: CodenamesGameEnv, agents: dict[str, Any], seed: int | None = None):
    """Play one game with ``agents[seat].act(observation, view) -> str`` (one agent object may
    fill several seats: self-play). Returns (winner, the final info, the transcript)."""
    observation, info = env.reset(seed=seed)
    transcript: list[tuple[str, str, dict]] = []
    while True:
        seat = info["agent"]
        action = agents[seat].act(observation, info["view"])
        observation, _, terminated, truncated, info = env.step(action)
        transcript.append((seat, action, info))
        if terminated or truncated:
            return info["winner"], info, transcript
