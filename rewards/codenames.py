"""Codenames guessing: parse an answer and score it against the hidden board.

The reward is the one of "Playing with Words, Improving with Rewards" for the operative role:

    R = |T ∩ G| / |T|  -  |N ∩ G| / |N|  -  |G \\ (T ∪ N)| / |G|

where T are the targets, N the non-targets and G the set of guesses (case-folded). An answer that
fails the format gate scores -1: no answer found, an empty answer, a guess that is not on the
board, or more distinct guesses than the allowed maximum.

>>> score_guess_answer("Guesses: shark, fish", board=["SHARK", "FISH", "MOON", "CAR"],
...                    targets=["SHARK", "FISH"], non_targets=["MOON", "CAR"], max_guesses=2).reward
1.0
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

AnswerFormat = Literal["simple", "tagged"]
INVALID_REWARD = -1.0

_TAGGED = re.compile(
    r"\[CODENAMES-GUESS-START\]\s*\[Guesses\]\s*:\s*\[(?P<items>[^\]]*)\]\s*\[CODENAMES-GUESS-END\]",
    re.IGNORECASE,
)
# Strict simple format: a line that is exactly `Guesses: a, b`.
_SIMPLE_STRICT = re.compile(r"^Guesses:[ \t]*(?P<items>.*?)[ \t]*$", re.MULTILINE)
# Lenient simple format: markdown emphasis or a list bullet around the label, `Guess`/`Guesses`
# in any case, `:` or `-` after it.
_SIMPLE_LENIENT = re.compile(
    r"^[ \t>*_\-]*guess(?:es)?[*_ \t]*[:\-][*_ \t]*(?P<items>.*?)[ \t]*$",
    re.MULTILINE | re.IGNORECASE,
)
_ITEM_STRIP = " \t\"'`*_.!?()[]{}"


@dataclass(frozen=True)
class GuessScore:
    """The outcome of scoring one answer: ``reward``, ``valid`` and why not (``reason``)."""

    reward: float
    valid: bool
    reason: str
    guesses: tuple[str, ...] = ()
    hits: tuple[str, ...] = field(default=())

    @property
    def n_guesses(self) -> int:
        return len(self.guesses)


def _split_items(items: str, lenient: bool, quoted: bool) -> list[str]:
    """Split on commas (and, leniently, on ``;`` and ``and``); strip quotes where allowed."""
    parts = re.split(r"[,;]|\band\b", items, flags=re.IGNORECASE) if lenient else items.split(",")
    strip = _ITEM_STRIP if lenient or quoted else " \t"
    return [p.strip(strip).upper() for p in parts if p.strip(strip)]


def parse_guesses(
    text: str, answer_format: AnswerFormat = "simple", lenient: bool = True
) -> list[str] | None:
    """Extract the guesses from model output, upper-cased, or ``None`` if no answer is found.

    ``tagged`` reads the block ``[CODENAMES-GUESS-START] [Guesses]: [a, b] [CODENAMES-GUESS-END]``.
    ``simple`` reads the last line ``Guesses: a, b``. With ``lenient`` (the default) the simple
    format also accepts ``Guess:``, any letter case, markdown emphasis or a bullet around the label,
    quotes around words, and ``;`` or ``and`` between words. Leniency never changes what counts as
    a legal guess: every word must still be on the board.
    """
    if answer_format == "tagged":
        matches = list(_TAGGED.finditer(text))
    elif answer_format == "simple":
        pattern = _SIMPLE_LENIENT if lenient else _SIMPLE_STRICT
        matches = list(pattern.finditer(text))
    else:
        raise ValueError(f"answer_format must be 'simple' or 'tagged', got {answer_format!r}")
    if not matches:
        return None
    # The tagged block is a list literal, so quotes around its items are part of the format.
    return _split_items(matches[-1].group("items"), lenient, quoted=answer_format == "tagged")


def guess_reward(
    guesses: Sequence[str], targets: Sequence[str], non_targets: Sequence[str]
) -> float:
    """The paper's reward for a non-empty, already validated set of guesses (case-folded)."""
    chosen = {g.casefold() for g in guesses}
    t = {w.casefold() for w in targets}
    n = {w.casefold() for w in non_targets}
    if not chosen or not t or not n:
        raise ValueError("guess_reward needs non-empty guesses, targets and non-targets")
    return len(t & chosen) / len(t) - len(n & chosen) / len(n) - len(chosen - t - n) / len(chosen)


def guess_chance_reward(
    n_words: int, n_targets: int, n_non_targets: int, max_guesses: int
) -> float:
    """The exact expected :func:`guess_reward` of a uniformly random valid answer: every
    non-empty set of at most ``max_guesses`` distinct board words equally likely.

    Sums over how many targets (a), non-targets (b) and other words (c) a set of k words
    holds, weighted by how many sets hold them; no sampling, so evaluations can put it next
    to a policy's reward among its valid answers.

    >>> guess_chance_reward(4, 2, 2, 2)  # no neutral words: chance is exactly 0
    0.0
    """
    from fractions import Fraction
    from math import comb

    t, n = n_targets, n_non_targets
    rest = n_words - t - n
    if min(t, n) < 1 or rest < 0 or max_guesses < 1:
        raise ValueError("a board needs >= 1 target and non-target among its words")
    total, weighted = 0, Fraction(0)
    for k in range(1, min(max_guesses, n_words) + 1):
        for a in range(min(t, k) + 1):
            for b in range(min(n, k - a) + 1):
                c = k - a - b
                if c > rest:
                    continue
                sets = comb(t, a) * comb(n, b) * comb(rest, c)
                total += sets
                weighted += sets * (Fraction(a, t) - Fraction(b, n) - Fraction(c, k))
    return float(weighted / total)


def score_guess_answer(
    text: str,
    board: Sequence[str],
    targets: Sequence[str],
    non_targets: Sequence[str],
    max_guesses: int,
    *,
    answer_format: AnswerFormat = "simple",
    lenient: bool = True,
) -> GuessScore:
    """Parse ``text``, apply the format gate, and score it (see the module docstring)."""
    parsed = parse_guesses(text, answer_format, lenient)
    if parsed is None:
        return GuessScore(INVALID_REWARD, False, "no answer in the expected format")
    unique = list(dict.fromkeys(g.casefold() for g in parsed))
    if not unique:
        return GuessScore(INVALID_REWARD, False, "empty answer")
    on_board = {w.casefold(): w for w in board}
    off_board = [g for g in unique if g not in on_board]
    if off_board:
        return GuessScore(INVALID_REWARD, False, f"guess not on the board: {off_board[0].upper()}")
    if len(unique) > max_guesses:
        return GuessScore(
            INVALID_REWARD, False, f"{len(unique)} guesses, more than the maximum {max_guesses}"
        )
    guesses = tuple(on_board[g] for g in unique)
    hits = tuple(g for g in guesses if g.casefold() in {t.casefold() for t in targets})
    return GuessScore(guess_reward(guesses, targets, non_targets), True, "", guesses, hits)
