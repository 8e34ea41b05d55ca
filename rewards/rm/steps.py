"""Split a solution into reasoning steps, the unit a process reward model scores.

One splitter is used everywhere a step boundary matters (data generation, step labels, PRM
training, PRM scoring, dense RL rewards), so the steps a PRM was trained on are the steps it
scores. Splitters, by name:

- ``newline``: every non-empty line is a step (GSM8K solutions, most chat-model answers);
- ``paragraph``: blocks separated by a blank line (``\\n\\n``; MATH-style and Qwen-PRM data);
- ``step_k``: a step starts at each ``Step k:`` marker (``Step 1:``, ``step 2.``); text before
  the first marker is a step of its own;
- ``sentence``: a step ends after ``.``, ``!`` or ``?`` followed by whitespace (so ``3.5`` never
  splits), and at every line break.

Each splitter returns character spans into the original text, so a step's end can be mapped to
the token that ends it (dense rewards, :func:`rewards.rm.aggregate.step_rewards`).

>>> split_steps("Step 1: 2 + 2 = 4. Step 2: So 4.", "step_k")
['Step 1: 2 + 2 = 4.', 'Step 2: So 4.']
>>> split_steps("It costs 3.5 dollars. So 7 in all!", "sentence")
['It costs 3.5 dollars.', 'So 7 in all!']
"""

from __future__ import annotations

import re
from collections.abc import Callable

from assay.errors import ConfigError, did_you_mean

Span = tuple[int, int]

_STEP_MARKER = re.compile(r"(?im)(?:^|(?<=\s))step\s*\d+\s*[:.]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def _trimmed(text: str, start: int, end: int) -> Span | None:
    """The span without its surrounding whitespace; None when nothing is left."""
    piece = text[start:end]
    if not piece.strip():
        return None
    left = len(piece) - len(piece.lstrip())
    right = len(piece.rstrip())
    return start + left, start + right


def _cut(text: str, cuts: list[int]) -> list[Span]:
    bounds = [0, *cuts, len(text)]
    spans = (_trimmed(text, a, b) for a, b in zip(bounds, bounds[1:], strict=False))
    return [s for s in spans if s is not None]


def _newline(text: str) -> list[Span]:
    return _cut(text, [m.end() for m in re.finditer(r"\n", text)])


def _paragraph(text: str) -> list[Span]:
    return _cut(text, [m.end() for m in re.finditer(r"\n[ \t]*\n", text)])


def _step_k(text: str) -> list[Span]:
    return _cut(text, [m.start() for m in _STEP_MARKER.finditer(text)])


def _sentence(text: str) -> list[Span]:
    return _cut(text, [m.end() for m in _SENTENCE_END.finditer(text)])


SPLITTERS: dict[str, Callable[[str], list[Span]]] = {
    "newline": _newline,
    "paragraph": _paragraph,
    "step_k": _step_k,
    "sentence": _sentence,
}


def check_splitter(how: str) -> str:
    if how not in SPLITTERS:
        raise ConfigError(
            f"Unknown step splitter {how!r}; known: {', '.join(SPLITTERS)}.{did_you_mean(how, SPLITTERS)}"
        )
    return how


def step_spans(solution: str, how: str = "newline") -> list[Span]:
    """``(start, end)`` character spans of the steps of ``solution``, in order."""
    return SPLITTERS[check_splitter(how)](solution)


def split_steps(solution: str, how: str = "newline") -> list[str]:
    """The steps of ``solution`` (stripped of surrounding whitespace)."""
    return [solution[a:b] for a, b in step_spans(solution, how)]
