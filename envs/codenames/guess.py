"""``codenames-guess-v0``: the operative (guesser) role of Codenames as a one-step TextEnv.

The agent sees the shuffled board, a clue and the maximum number of guesses, and answers with
its guesses. The reward is :func:`rewards.score_guess_answer` (the paper's formula, -1 on a format
failure). ``info`` from ``reset`` carries the hidden ``board``, ``targets``, ``non_targets``,
``clue`` and ``max_guesses``; ``info`` from ``step`` adds ``guesses``, ``hits`` and
``target_recall`` (|T ∩ G| / |T|, 0 for an invalid answer).
"""

from __future__ import annotations

from typing import Any, get_args

from gymnasium.error import ResetNeeded

from assay.errors import ConfigError, did_you_mean
from envs.codenames.boards import DIFFICULTIES, Board, make_board
from envs.codenames.prompts import _EXAMPLE, SYSTEM_PROMPT, format_answer, render_question
from envs.core import Message, TextEnv
from rewards.codenames import AnswerFormat, guess_chance_reward, score_guess_answer

TEACHERS = ("targets", "embedding")


class CodenamesGuessEnv(TextEnv):
    """Codenames guessing. Options (all keyword arguments of ``envs.make``):

    - ``answer_format``: ``"simple"`` (``Guesses: a, b``; default, learnable by a 135M model) or
      ``"tagged"`` (the paper's ``[CODENAMES-GUESS-START] ... [CODENAMES-GUESS-END]`` block).
    - ``lenient``: accept small variations of the simple format (see :func:`rewards.parse_guesses`).
    - ``n_targets``, ``n_non_targets``, ``n_neutral``: inclusive ``[low, high]`` sizes.
    - ``difficulty``: ``close`` / ``mixed`` / ``far`` targets; ``trick_non_targets``: how many
      non-targets are drawn from the words nearest the clue.
    - ``tier``: ``simple`` / ``moderate`` / ``advanced`` / ``expert`` / ``mixed`` boards built
      around a topic from the clue vocabulary (:mod:`envs.codenames.tiers`; the topic is the
      clue); replaces ``difficulty`` and ``trick_non_targets``. ``tier_weights`` weighs the
      tiers of ``mixed`` (default equal).
    - ``max_guesses``: the guess limit g_max; default |T| (floor(|T|/2) in the expert tier).
    - ``example``: prepend one solved example board as a chat turn (helps small models find the
      format; the example board never appears in play since FRUIT is not a Codenames word).
    - ``teacher``: what :meth:`demonstration` answers, for SFT: ``"targets"`` (the hidden
      targets, at most ``max_guesses``; default) or ``"embedding"`` (the scripted embedding
      operative: the board words nearest the clue, as many as there are targets).

    The chance baseline (:meth:`chance_reward`) is the exact expected reward of a uniformly
    random valid answer on the board (:func:`rewards.guess_chance_reward`): 0 on boards
    without neutral words, since a random word is as likely a target as a non-target in
    proportion to their counts.
    """

    metric_keys = ("target_recall",)

    def __init__(
        self,
        answer_format: AnswerFormat = "simple",
        lenient: bool = True,
        n_targets: tuple[int, int] | list[int] = (2, 6),
        n_non_targets: tuple[int, int] | list[int] = (2, 6),
        n_neutral: tuple[int, int] | list[int] = (0, 0),
        difficulty: str = "close",
        trick_non_targets: int = 0,
        max_guesses: int | None = None,
        example: bool = True,
        tier: str | None = None,
        tier_weights: dict[str, float] | None = None,
        teacher: str = "targets",
    ):
        _check_choice("teacher", teacher, TEACHERS)
        self.teacher = teacher
        _check_options(
            answer_format=answer_format,
            lenient=lenient,
            n_targets=n_targets,
            n_non_targets=n_non_targets,
            n_neutral=n_neutral,
            difficulty=difficulty,
            trick_non_targets=trick_non_targets,
            max_guesses=max_guesses,
            example=example,
            tier=tier,
            tier_weights=tier_weights,
        )
        self.tier, self.tier_weights = tier, tier_weights
        self.answer_format = answer_format
        self.lenient = lenient
        self.board_options = dict(
            n_targets=tuple(n_targets),
            n_non_targets=tuple(n_non_targets),
            n_neutral=tuple(n_neutral),
            difficulty=difficulty,
            trick_non_targets=trick_non_targets,
            max_guesses=max_guesses,
        )
        self.example = example
        self.board: Board | None = None
        self._messages: list[Message] = []

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.board = make_episode_board(
            self.np_random, self.board_options, self.tier, self.tier_weights
        )
        messages: list[Message] = [{"role": "system", "content": SYSTEM_PROMPT}]
        if self.example:
            messages += [
                {"role": "user", "content": render_question(_EXAMPLE, self.answer_format)},
                {
                    "role": "assistant",
                    "content": format_answer(_EXAMPLE.targets, self.answer_format),
                },
            ]
        messages.append(
            {"role": "user", "content": render_question(self.board, self.answer_format)}
        )
        self._messages = messages
        return list(messages), self._hidden_info()

    def _hidden_info(self, **extra: Any) -> dict[str, Any]:
        b = self.board
        return (
            self.make_info(
                "guesser",
                board=list(b.words),
                targets=list(b.targets),
                non_targets=list(b.non_targets),
                clue=b.clue,
                max_guesses=b.max_guesses,
            )
            | extra
        )

    def demonstration(self) -> str | None:
        b = self.board
        if b is None:
            return None
        if self.teacher == "targets":
            return format_answer(b.targets[: b.max_guesses], self.answer_format)
        from envs.codenames.agents import nearest_words

        k = min(len(b.targets), b.max_guesses)
        return format_answer(nearest_words(b.clue, b.words, k), self.answer_format)

    def chance_reward(self) -> float | None:
        b = self.board
        if b is None:
            return None
        return guess_chance_reward(len(b.words), len(b.targets), len(b.non_targets), b.max_guesses)

    def step(self, action: str):
        if self.board is None:
            raise ResetNeeded("Call reset() before step(); a Codenames guess episode is one step.")
        b = self.board
        score = score_guess_answer(
            action,
            b.words,
            b.targets,
            b.non_targets,
            b.max_guesses,
            answer_format=self.answer_format,
            lenient=self.lenient,
        )
        info = self._hidden_info(
            guesses=list(score.guesses),
            hits=list(score.hits),
            target_recall=len(score.hits) / len(b.targets),
        )
        info.update(valid=score.valid, reason=score.reason)
        transcript = self._messages + [{"role": "assistant", "content": action}]
        self.board = None
        return transcript, score.reward, True, False, info


def make_episode_board(rng, board_options: dict, tier: str | None, tier_weights=None) -> Board:
    """The episode's board: a curriculum tier's (``mixed`` draws the tier first) or, without a
    tier, :func:`make_board` with the difficulty options."""
    if tier is None:
        return make_board(rng, **board_options)
    from envs.codenames.tiers import TIERS, make_tier_board

    if tier == "mixed":
        weights = [float((tier_weights or {}).get(t, 1.0)) for t in TIERS]
        tier = TIERS[int(rng.choice(len(TIERS), p=[w / sum(weights) for w in weights]))]
    options = {k: board_options[k] for k in ("n_targets", "n_non_targets", "n_neutral")}
    return make_tier_board(rng, tier, max_guesses=board_options["max_guesses"], **options)


def _check_options(
    *,
    answer_format,
    lenient,
    n_targets,
    n_non_targets,
    n_neutral,
    difficulty,
    trick_non_targets,
    max_guesses,
    example,
    tier=None,
    tier_weights=None,
) -> None:
    """Raise ConfigError for the first bad env option, naming it and what it accepts."""
    from envs.codenames.tiers import TIERS

    if tier is not None:
        _check_choice("tier", tier, (*TIERS, "mixed"))
    if tier_weights is not None:
        bad = set(tier_weights) - set(TIERS) if isinstance(tier_weights, dict) else {"?"}
        values = list(tier_weights.values()) if isinstance(tier_weights, dict) else []
        if bad or any(not isinstance(v, int | float) or v < 0 for v in values) or not any(values):
            raise ConfigError(
                f"tier_weights must map tiers ({', '.join(TIERS)}) to weights >= 0, not all 0; "
                f"got {tier_weights!r}."
            )
    _check_choice("answer_format", answer_format, get_args(AnswerFormat))
    _check_choice("difficulty", difficulty, DIFFICULTIES)
    for name, value, low in (
        ("n_targets", n_targets, 1),
        ("n_non_targets", n_non_targets, 1),
        ("n_neutral", n_neutral, 0),
    ):
        if not (
            isinstance(value, list | tuple)
            and len(value) == 2
            and all(_is_int(v) for v in value)
            and low <= value[0] <= value[1] <= 12
        ):
            raise ConfigError(
                f"{name} must be [low, high] with {low} <= low <= high <= 12, got {value!r}."
            )
    if not (_is_int(trick_non_targets) and 0 <= trick_non_targets <= n_non_targets[0]):
        raise ConfigError(
            f"trick_non_targets must be an int from 0 to n_non_targets' low end "
            f"({n_non_targets[0]}), got {trick_non_targets!r}."
        )
    if max_guesses is not None and not (_is_int(max_guesses) and max_guesses >= 1):
        raise ConfigError(f"max_guesses must be a positive int or None, got {max_guesses!r}.")
    for name, flag in (("lenient", lenient), ("example", example)):
        if not isinstance(flag, bool):
            raise ConfigError(f"{name} must be true or false, got {flag!r}.")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise ConfigError(
            f"{name} must be one of {', '.join(allowed)}; got {value!r}."
            f"{did_you_mean(str(value), allowed)}"
        )
