"""``assay play codenames``: the full game in the terminal. Humans take any seats; language
models (registry names or paths), ``embedding`` or ``random`` scripted agents take the others.

A human's input is checked before it reaches the game: a bad clue or guess gets a message and
another try, never a crash. ``--watch`` plays models against each other and prints the game.
The command itself (its options) is registered in :mod:`assay.cli.codenames`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from envs.codenames.game import SEATS, CodenamesGameEnv
from rewards.codenames_clue import ClueAnswer, check_clue

_STYLE = {
    "red": "\033[1;97;41m",
    "blue": "\033[1;97;44m",
    "neutral": "\033[30;43m",
    "assassin": "\033[1;97;40m",
}
_RESET = "\033[0m"


def render_board(view: dict, show_key: bool, colour: bool = True) -> str:
    """The 5x5 board; revealed cards in their colour, the key too when ``show_key``."""
    key = view.get("key", {}) if show_key else {}
    cells = []
    for word in view["words"]:
        revealed = view["revealed"].get(word)
        shade = revealed or key.get(word)
        label = word if not revealed else f"[{word}]"
        text = f"{label:^14}"
        if colour and shade:
            text = f"{_STYLE[shade]}{text}{_RESET}"
        elif shade:
            text = f"{(label + ' ' + shade[0].upper()):^14}"
        cells.append(text)
    rows = [" ".join(cells[i : i + 5]) for i in range(0, 25, 5)]
    left = view["left"]
    return "\n".join(rows) + f"\nwords left: red {left['red']}, blue {left['blue']}"


class HumanAgent:
    """Reads moves from the terminal (``ask``/``say`` are replaceable for tests)."""

    def __init__(self, ask: Callable[[str], str] = input, say: Callable[[str], None] = print,
                 colour: bool = True):  # fmt: skip
        self.ask, self.say, self.colour = ask, say, colour

    def act(self, observation, view) -> str:
        spymaster = view["role"] == "spymaster"
        self.say(render_board(view, show_key=spymaster, colour=self.colour))
        if view["history"]:
            self.say("last moves: " + " | ".join(view["history"][-4:]))
        while True:
            if spymaster:
                raw = self.ask(f"{view['team']} spymaster, your clue (WORD N): ").strip()
                problem = clue_problem(raw, view["words"])
                if not problem:
                    word, number = raw.split()
                    return f"Clue: {word} {number}"
            else:
                extra = " or 'pass'" if view["guesses_made"] else ""
                prompt = (
                    f"{view['team']} operative, clue {view['clue']} {view['number']}, "
                    f"{view['guesses_left']} guesses left. Your guess{extra}: "
                )
                raw = self.ask(prompt).strip()
                problem = guess_problem(raw, view)
                if not problem:
                    return "Pass" if raw.lower() == "pass" else f"Guess: {raw.upper()}"
            self.say(f"  {problem}; try again.")


def clue_problem(raw: str, words) -> str:
    """Why a typed clue cannot be played ("" if it can)."""
    parts = raw.split()
    if len(parts) != 2 or not re.fullmatch(r"[0-9]+", parts[1]):
        return "type one word and a number, e.g. OCEAN 2"
    if not re.fullmatch(r"[1-9]", parts[1]):
        return "the number must be 1-9"
    check = check_clue(ClueAnswer(parts[0].upper(), ("_",)), words, ["_"])
    return check.reason


def guess_problem(raw: str, view: dict) -> str:
    if raw.lower() == "pass":
        return "" if view["guesses_made"] else "make at least one guess before passing"
    word = raw.upper()
    if word not in view["words"]:
        return f"{word or 'that'} is not on the board"
    if word in view["revealed"]:
        return f"{word} is already revealed"
    return ""


class ModelAgent:
    """A causal LM playing a seat: greedy answer to the seat's observation."""

    def __init__(self, name: str, max_new_tokens: int = 24):
        from assay.models import load_causal_lm
        from trainers.engines.base import Sampling
        from trainers.engines.hf import HFEngine

        model, tokenizer = load_causal_lm(name)
        self.engine = HFEngine(model, tokenizer)
        self.sampling = Sampling(temperature=0.0, max_new_tokens=max_new_tokens, logprobs=False)

    def act(self, observation, view) -> str:
        return self.engine.generate([observation], self.sampling)[0][0].text


def make_agents(who: dict[str, str], ask=input, say=print, colour=True) -> dict[str, object]:
    """An agent per seat from ``who[seat]``: ``human``, ``embedding``, ``random`` or a model
    name (one model object serves every seat that names it)."""
    from envs.codenames.agents import scripted_agent

    models: dict[str, ModelAgent] = {}
    agents = {}
    for seat in SEATS:
        kind = who.get(seat, "embedding")
        role = seat.split("/")[1]
        if kind == "human":
            agents[seat] = HumanAgent(ask, say, colour)
        elif kind in ("embedding", "random"):
            agents[seat] = scripted_agent(kind, role, seed=SEATS.index(seat))
        else:
            models.setdefault(kind, ModelAgent(kind))
            agents[seat] = models[kind]
    return agents


def parse_seats(items: list[str]) -> dict[str, str]:
    """``["red/operative=human", "blue=embedding"]`` -> one entry per seat (a team name sets
    both of its seats)."""
    out: dict[str, str] = {}
    for item in items:
        seat, sep, who = item.partition("=")
        if not sep or not who:
            raise ValueError(f"--seat takes SEAT=WHO (e.g. red/operative=human), got {item!r}")
        matched = [s for s in SEATS if s == seat or s.split("/")[0] == seat]
        if not matched:
            raise ValueError(f"unknown seat {seat!r}; seats are {', '.join(SEATS)} or red/blue")
        out.update(dict.fromkeys(matched, who))
    return out


def play(env: CodenamesGameEnv, agents: dict, seed: int | None, say=print,
         watch: bool = False, colour: bool = True) -> str | None:  # fmt: skip
    """Play one game, narrating each move; returns the winner (``draw`` on the turn limit)."""
    observation, info = env.reset(seed=seed)
    while True:
        seat = info["agent"]
        if watch and seat.endswith("spymaster"):
            say(render_board(info["view"], show_key=True, colour=colour))
        action = agents[seat].act(observation, info["view"])
        observation, _, terminated, truncated, info = env.step(action)
        move = re.sub(r"\s+", " ", action.strip())[:60]
        note = "" if info["valid"] else f"  (illegal: {info['reason']})"
        say(f"{seat}: {move}{note}")
        if terminated or truncated:
            state = env.state
            final = {"words": list(state.words), "revealed": dict(state.revealed),
                     "key": info["key"], "left": {t: state.left(t) for t in ("red", "blue")}}  # fmt: skip
            say(render_board(final, show_key=True, colour=colour))
            say("Draw: the turn limit was reached." if info["winner"] == "draw"
                else f"{info['winner']} team wins.")  # fmt: skip
            return info["winner"]
