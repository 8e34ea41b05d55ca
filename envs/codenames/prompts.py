"""The operative's prompt for Codenames guessing: the system prompt, the solved example board
and the question and answer formats. Its own module so that the env (``guess``) and the judges
that play the operative (``judges``) share it without importing each other."""

from __future__ import annotations

from envs.codenames.boards import Board
from rewards.codenames import AnswerFormat

SYSTEM_PROMPT = (
    "You are the guesser in the word game Codenames. "
    "You pick the board words that are most related to the clue."
)
_EXAMPLE = Board(
    words=("APPLE", "TRAIN", "BANANA", "PIANO", "CAR"),
    targets=("APPLE", "BANANA"),
    non_targets=("TRAIN", "PIANO", "CAR"),
    clue="FRUIT",
    max_guesses=2,
)


def format_answer(guesses: list[str] | tuple[str, ...], answer_format: AnswerFormat) -> str:
    """Write guesses in the answer format (used for the prompt's example and in tests)."""
    if answer_format == "tagged":
        return f"[CODENAMES-GUESS-START] [Guesses]: [{', '.join(guesses)}] [CODENAMES-GUESS-END]"
    return f"Guesses: {', '.join(guesses)}"


def render_question(board: Board, answer_format: AnswerFormat) -> str:
    """The user message for one board."""
    g = board.max_guesses
    how = (
        f"Answer with one line: Guesses: followed by at most {g} board words, separated by commas."
        if answer_format == "simple"
        else f"Answer with one block: [CODENAMES-GUESS-START] [Guesses]: [WORD, WORD] "
        f"[CODENAMES-GUESS-END] with at most {g} board words."
    )
    return (
        f"Board: {', '.join(board.words)}\nClue: {board.clue}\n"
        f"Which {g} board words go best with the clue? {how}"
    )
