"""Board construction for Codenames: a clue word, targets near it, non-targets elsewhere.

Words are ranked by MiniLM cosine similarity to the clue (:func:`envs.codenames.words.similarity`).
Targets come from the top of that ranking so the clue means something; non-targets come from its
far half. The ``difficulty`` tier moves targets down the ranking, and ``trick_non_targets`` puts
some non-targets among the words nearest the clue.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np

from envs.codenames.words import similarity, wordlist

Difficulty = Literal["close", "mixed", "far"]
DIFFICULTIES: tuple[str, ...] = ("close", "mixed", "far")


@dataclass(frozen=True)
class Board:
    """One guessing episode's hidden state. ``words`` is the shuffled board the agent sees."""

    words: tuple[str, ...]
    targets: tuple[str, ...]
    non_targets: tuple[str, ...]
    clue: str
    max_guesses: int

    @property
    def neutral(self) -> tuple[str, ...]:
        hidden = set(self.targets) | set(self.non_targets)
        return tuple(w for w in self.words if w not in hidden)


@lru_cache(maxsize=1)
def _single_word_indices() -> np.ndarray:
    # A clue is one word, so the four two-word entries (ICE CREAM, ...) are never clues.
    return np.asarray([i for i, w in enumerate(wordlist()) if " " not in w])


def _clue_candidates(clue: int, words: tuple[str, ...]) -> np.ndarray:
    """Indices of words ranked by similarity to the clue, without the clue and words containing it."""
    ranked = np.argsort(-similarity()[clue], kind="stable")
    c = words[clue]
    keep = [i for i in ranked if i != clue and c not in words[i] and words[i] not in c]
    return np.asarray(keep)


def make_board(
    rng: np.random.Generator,
    n_targets: tuple[int, int] = (2, 6),
    n_non_targets: tuple[int, int] = (2, 6),
    n_neutral: tuple[int, int] = (0, 0),
    difficulty: Difficulty = "close",
    trick_non_targets: int = 0,
    max_guesses: int | None = None,
) -> Board:
    """Draw a board from ``rng``; ranges are inclusive ``(low, high)``.

    ``difficulty``: ``close`` draws every target from the ``2|T|`` words nearest the clue,
    ``far`` from ranks ``2|T|..10|T|``, ``mixed`` half from each. ``max_guesses`` defaults to |T|.
    """
    words = wordlist()
    nt = int(rng.integers(n_targets[0], n_targets[1], endpoint=True))
    nn = int(rng.integers(n_non_targets[0], n_non_targets[1], endpoint=True))
    nz = int(rng.integers(n_neutral[0], n_neutral[1], endpoint=True))
    clue = int(rng.choice(_single_word_indices()))
    ranked = _clue_candidates(clue, words)

    near, farther = ranked[: 2 * nt], ranked[2 * nt : 10 * nt]
    n_near = {"close": nt, "mixed": (nt + 1) // 2, "far": 0}[difficulty]
    targets = np.concatenate(
        [rng.choice(near, n_near, replace=False), rng.choice(farther, nt - n_near, replace=False)]
    )

    n_trick = min(trick_non_targets, nn)
    # Trick non-targets come from the words nearest the clue that are not targets; the pool is
    # sized so it always holds enough of them whatever the tier put among the targets.
    trick_pool = np.setdiff1d(ranked[: 2 * nt + n_trick + 10], targets, assume_unique=True)
    far_half = ranked[len(ranked) // 2 :]
    non_targets = np.concatenate(
        [
            rng.choice(trick_pool, n_trick, replace=False),
            rng.choice(far_half, nn - n_trick, replace=False),
        ]
    )
    middle = np.setdiff1d(ranked[10 * nt : len(ranked) // 2], non_targets, assume_unique=True)
    neutral = rng.choice(middle, nz, replace=False)

    board = np.concatenate([targets, non_targets, neutral]).astype(int)
    rng.shuffle(board)
    return Board(
        words=tuple(words[i] for i in board),
        targets=tuple(words[i] for i in targets.astype(int)),
        non_targets=tuple(words[i] for i in non_targets.astype(int)),
        clue=words[clue],
        max_guesses=nt if max_guesses is None else max_guesses,
    )
