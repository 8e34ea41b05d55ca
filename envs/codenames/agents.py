"""Scripted Codenames agents for ``codenames-game-v0``: opponents, partners and baselines.

Each agent has ``act(observation, view) -> str``; ``view`` is the seat's view as data
(``info["view"]``). One agent object may fill several seats.

- :class:`EmbeddingSpymaster`: the best clue over the clue vocabulary: for each candidate word and
  each k, the margin between its k-th most similar own word and the most similar other
  unrevealed word (opponent, neutral, assassin weighted up); the legal clue with the largest k
  whose margin clears ``margin``, else the best single-word clue.
- :class:`EmbeddingOperative`: guesses the unrevealed words most similar to the clue, up to the
  clue's number, then passes.
- :class:`RandomSpymaster` / :class:`RandomOperative`: random legal clue with number 1 / random
  unrevealed word.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from envs.codenames.judges import EmbeddingJudge
from envs.codenames.tiers import clue_vocabulary
from rewards.codenames_clue import variant_of


@lru_cache(maxsize=1)
def _judge() -> EmbeddingJudge:
    return EmbeddingJudge()  # holds the board and clue-vocabulary vectors


class EmbeddingSpymaster:
    def __init__(self, margin: float = 0.05, max_number: int = 3, assassin_weight: float = 1.2):
        self.margin, self.max_number, self.assassin_weight = margin, max_number, assassin_weight
        self._board: tuple[str, ...] = ()
        self._sims: np.ndarray | None = None

    def _similarities(self, words: tuple[str, ...]) -> np.ndarray:
        """(vocabulary, board) cosine similarities, computed once per board."""
        if words != self._board:
            vocab_vectors = clue_vocabulary()[2]
            self._sims = vocab_vectors @ _judge().vectors(words).T
            self._board = words
        return self._sims

    def choose(self, view: dict) -> tuple[str, int]:
        words = tuple(view["words"])
        sims = self._similarities(words)
        key, revealed, team = view["key"], view["revealed"], view["team"]
        live = [i for i, w in enumerate(words) if w not in revealed]
        own = [i for i in live if key[words[i]] == team]
        weight = np.asarray([self.assassin_weight if key[words[i]] == "assassin" else 1.0
                             for i in live if key[words[i]] != team])  # fmt: skip
        others = [i for i in live if key[words[i]] != team]
        danger = (sims[:, others] * weight).max(axis=1) if others else np.zeros(len(sims))
        own_sorted = -np.sort(-sims[:, own], axis=1)  # (vocab, n_own) best first
        vocab = clue_vocabulary()[0]
        for k in range(min(self.max_number, len(own)), 0, -1):
            margin = own_sorted[:, k - 1] - danger
            for index in np.argsort(-margin, kind="stable")[:20]:
                if margin[index] < (self.margin if k > 1 else -np.inf):
                    break
                clue = vocab[index]
                if not any(variant_of(clue, w) for w in words):
                    return clue, k
        return "THING", 1  # unreachable in practice: 3,000 candidates

    def act(self, observation, view) -> str:
        clue, number = self.choose(view)
        return f"Clue: {clue} {number}"


def nearest_words(clue: str, words, k: int) -> list[str]:
    """The ``k`` words most similar to ``clue`` (embedding cosine), most similar first."""
    judge = _judge()
    sims = judge.vectors(list(words)) @ judge.vectors([clue])[0]
    return [words[i] for i in np.argsort(-sims, kind="stable")[:k]]


class EmbeddingOperative:
    def act(self, observation, view) -> str:
        if view["guesses_made"] >= view["number"]:
            return "Pass"
        live = [w for w in view["words"] if w not in view["revealed"]]
        return f"Guess: {nearest_words(view['clue'], live, 1)[0]}"


class RandomSpymaster:
    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def act(self, observation, view) -> str:
        vocab = clue_vocabulary()[0]
        while True:
            clue = vocab[int(self.rng.integers(len(vocab)))]
            if not any(variant_of(clue, w) for w in view["words"]):
                return f"Clue: {clue} 1"


class RandomOperative:
    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def act(self, observation, view) -> str:
        live = [w for w in view["words"] if w not in view["revealed"]]
        return f"Guess: {live[int(self.rng.integers(len(live)))]}"


def scripted_agent(kind: str, role: str, seed: int = 0):
    """``embedding`` or ``random`` agent for ``role`` (spymaster | operative)."""
    table = {
        ("embedding", "spymaster"): EmbeddingSpymaster,
        ("embedding", "operative"): EmbeddingOperative,
        ("random", "spymaster"): lambda: RandomSpymaster(seed),
        ("random", "operative"): lambda: RandomOperative(seed),
    }
    if (kind, role) not in table:
        raise ValueError(f"no scripted {kind!r} {role}; use embedding or random")
    return table[(kind, role)]()
