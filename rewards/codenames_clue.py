"""Codenames clue-giving (the spymaster role): parse a clue answer and apply the format gate.

An answer names one clue word and the targets it is meant for. The gate fails an answer (reward
-1, judge not called) for the first rule it breaks, in this order; ``rule`` is the name below:

- ``format``: no answer in the expected format;
- ``compound``: the clue is hyphenated or several words (``sea-shell``, ``sea shell``);
- ``not_alphabetic``: the clue has characters other than letters (``r2d2``);
- ``no_targets``: no targets are selected;
- ``foreign_target``: a selected word is not one of the targets;
- ``on_board``: the clue is a board word;
- ``variant``: the clue is a morphological variant of a board word: the same lemma or an
  inflection of it (swim / swimming, mice / mouse; lemmas and inflections from ``lemminflect``),
  one contains the other with the shorter at least 3 letters (sea / seashell), or they share a
  Snowball stem (happy / happiness);
- ``not_english``: the clue is not an English word: its Zipf frequency in ``wordfreq`` is below
  ``min_zipf`` (unknown words have 0), or, below Zipf 3 (rarer than about 1 in a million words),
  ``lemminflect`` does not know it (this keeps out ``aaaa``, ``qwerty``, ``lol``).

The reward of a valid clue is the guess task's formula applied to the judge's guesses
(:func:`rewards.guess_reward`).

>>> parse_clue("Clue: ocean\\nTargets: whale, ship")
ClueAnswer(clue='OCEAN', selected=('WHALE', 'SHIP'))
>>> check_clue(ClueAnswer("WHALES", ("WHALE",)), ["WHALE", "CAR"], ["WHALE"]).reason
'clue WHALES is a form (same lemma) of board word WHALE'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from rewards.codenames import AnswerFormat

_TAGGED = re.compile(
    r"\[CODENAMES-CLUE-START\]\s*\[Clue\]\s*:(?P<clue>[^\[\n]*)"
    r"\[Selected-Targets\]\s*:\s*\[(?P<items>[^\]]*)\]\s*\[CODENAMES-CLUE-END\]",
    re.IGNORECASE,
)
# Greedy captures to the end of the line, stripped afterwards: linear time on long lines.
_SIMPLE_CLUE = re.compile(r"^[ \t>*_\-]*clue[*_ \t]*:(?P<clue>.*)$", re.I | re.M)
_SIMPLE_TARGETS = re.compile(r"^[ \t>*_\-]*targets?[*_ \t]*:(?P<items>.*)$", re.I | re.M)
_ITEM_STRIP = " \t\"'`*_.!?()[]{}"
DEFAULT_MIN_ZIPF = 1.5


@dataclass(frozen=True)
class ClueAnswer:
    clue: str  # as written, upper-cased and stripped of quotes
    selected: tuple[str, ...]  # upper-cased, duplicates removed


@dataclass(frozen=True)
class ClueCheck:
    valid: bool
    rule: str = ""  # the rule that failed (module docstring), "" when valid
    reason: str = ""


def parse_clue(text: str, answer_format: AnswerFormat = "simple") -> ClueAnswer | None:
    """The clue and selected targets of an answer (the last one if several), or ``None``.

    ``simple``: ``Clue: w`` and ``Targets: a, b`` on their own lines (label case, markdown
    emphasis and bullets are tolerated). ``tagged``: the block
    ``[CODENAMES-CLUE-START] [Clue]: w [Selected-Targets]: [a, b] [CODENAMES-CLUE-END]``.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if answer_format == "tagged":
        matches = list(_TAGGED.finditer(text))
        if not matches:
            return None
        clue, items = matches[-1].group("clue"), matches[-1].group("items")
    elif answer_format == "simple":
        clues = list(_SIMPLE_CLUE.finditer(text))
        targets = list(_SIMPLE_TARGETS.finditer(text))
        if not clues or not targets:
            return None
        clue, items = clues[-1].group("clue"), targets[-1].group("items")
    else:
        raise ValueError(f"answer_format must be 'simple' or 'tagged', got {answer_format!r}")
    selected = [p.strip(_ITEM_STRIP).upper() for p in re.split(r"[,;]", items)]
    unique = tuple(dict.fromkeys(s for s in selected if s))
    return ClueAnswer(clue.strip(_ITEM_STRIP).upper(), unique)


def check_clue(
    answer: ClueAnswer | None,
    board: Sequence[str],
    targets: Sequence[str],
    min_zipf: float = DEFAULT_MIN_ZIPF,
) -> ClueCheck:
    """Apply the format gate (module docstring) to a parsed answer."""
    if answer is None:
        return ClueCheck(False, "format", "no clue in the expected format")
    clue = answer.clue
    if re.search(r"[\s\-_]", clue) or not clue:
        return ClueCheck(False, "compound", f"clue {clue!r} is hyphenated or not one word")
    if not (clue.isascii() and clue.isalpha()):
        return ClueCheck(False, "not_alphabetic", f"clue {clue!r} is not a single alphabetic word")
    if not answer.selected:
        return ClueCheck(False, "no_targets", "no targets selected")
    target_set = {t.upper() for t in targets}
    foreign = [s for s in answer.selected if s not in target_set]
    if foreign:
        return ClueCheck(False, "foreign_target", f"selected word is not a target: {foreign[0]}")
    words = [w.upper() for w in board]
    if clue in words:
        return ClueCheck(False, "on_board", f"clue is a board word: {clue}")
    for word in words:
        why = variant_of(clue, word)
        if why:
            return ClueCheck(False, "variant", f"clue {clue} {why} board word {word}")
    zipf = _zipf(clue.lower())
    if zipf < min_zipf or (zipf < 3.0 and not _lemmas(clue.lower())):
        return ClueCheck(False, "not_english", f"clue {clue!r} is not an English word")
    return ClueCheck(True)


def variant_of(clue: str, word: str) -> str:
    """Why ``clue`` counts as a variant of board ``word`` ("" if it does not); a two-word board
    entry (ICE CREAM) is checked part by part."""
    a = clue.lower()
    for part in word.lower().split():
        if a == part:
            return "is part of"
        if _lemmas(a) & _lemmas(part) or a in _forms(part) or part in _forms(a):
            return "is a form (same lemma) of"
        short, long_ = sorted((a, part), key=len)
        if len(short) >= 3 and short in long_:
            return "contains" if long_ == a else "is contained in"
        if _stem(a) == _stem(part):
            return "shares a stem with"
    return ""


@lru_cache(maxsize=65536)
def _lemmas(word: str) -> frozenset[str]:
    """The word's lemmas under every part of speech (lemminflect); empty if it is unknown."""
    from lemminflect import getAllLemmas

    return frozenset(lemma.lower() for group in getAllLemmas(word).values() for lemma in group)


@lru_cache(maxsize=65536)
def _forms(word: str) -> frozenset[str]:
    """The inflections of the word itself (swim -> swims, swam, swimming). Two words are the
    same word when their lemmas meet or one is an inflection of the other; comparing all forms
    of both would join different words that share one (LEFT and LEAF share "leaves")."""
    from lemminflect import getAllInflections

    return frozenset(f.lower() for group in getAllInflections(word).values() for f in group)


@lru_cache(maxsize=1)
def _stemmer():
    import snowballstemmer

    return snowballstemmer.stemmer("english")


@lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    return _stemmer().stemWord(word)


@lru_cache(maxsize=65536)
def _zipf(word: str) -> float:
    from wordfreq import zipf_frequency

    return zipf_frequency(word, "en")
