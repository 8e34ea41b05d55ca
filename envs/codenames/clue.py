"""``codenames-clue-v0``: the spymaster (clue-giver) role of Codenames as a one-step TextEnv.

The agent sees its targets T and the words to avoid N, and answers with one clue word and the
targets it intends. An answer that fails the format gate (:mod:`rewards.codenames_clue`) scores
-1 and the judge is not called. Otherwise a judge guesser (:mod:`envs.codenames.judges`) sees the
shuffled board and the clue and guesses |selected| words (at most the board's guess limit,
floor(|T|/2) in the expert tier); the reward is the guess task's formula
on those guesses (:func:`rewards.guess_reward`). A judge that fails (an API that never answers)
gives reward 0 and ``info["judge_failure"] = 1``.

``info`` from ``reset`` carries ``board``, ``targets`` and ``non_targets``; from ``step`` it adds
``clue``, ``selected``, ``guesses``, ``hits``, ``target_recall`` and ``rule`` (the gate rule that
failed, "" if none).
"""

from __future__ import annotations

from typing import Any

from gymnasium.error import ResetNeeded

from assay.errors import ConfigError
from envs.codenames.boards import Board
from envs.codenames.guess import _check_options, make_episode_board
from envs.codenames.judges import Judge, JudgeRequest, check_judge_options, make_judge
from envs.core import Message, TextEnv
from rewards.codenames import AnswerFormat, guess_reward
from rewards.codenames_clue import DEFAULT_MIN_ZIPF, check_clue, parse_clue

SYSTEM_PROMPT = (
    "You are the spymaster in the word game Codenames. You give a one-word clue that connects "
    "as many of your target words as possible while staying away from the words to avoid."
)
_EXAMPLE_TARGETS = ("APPLE", "BANANA")
_EXAMPLE_AVOID = ("TRAIN", "PIANO", "CAR")


def format_clue(clue: str, selected: tuple[str, ...] | list[str], answer_format: AnswerFormat):
    """Write a clue answer in the answer format (the prompt's example, tests, scripted agents)."""
    if answer_format == "tagged":
        return (
            f"[CODENAMES-CLUE-START] [Clue]: {clue} [Selected-Targets]: [{', '.join(selected)}] "
            "[CODENAMES-CLUE-END]"
        )
    return f"Clue: {clue}\nTargets: {', '.join(selected)}"


def render_clue_question(targets, avoid, answer_format: AnswerFormat) -> str:
    how = (
        "Answer with two lines:\nClue: WORD\nTargets: WORD, WORD"
        if answer_format == "simple"
        else "Answer with one block: [CODENAMES-CLUE-START] [Clue]: WORD "
        "[Selected-Targets]: [WORD, WORD] [CODENAMES-CLUE-END]"
    )
    return (
        f"Your targets: {', '.join(targets)}\nWords to avoid: {', '.join(avoid)}\n"
        "Give one English word as the clue (not a board word, nor a form of one) and the "
        f"targets it is meant for. {how}"
    )


class CodenamesClueEnv(TextEnv):
    """Codenames clue-giving. Options (keyword arguments of ``envs.make``):

    - ``answer_format``: ``"simple"`` (``Clue: w`` / ``Targets: a, b``; default) or ``"tagged"``.
    - ``judge``: ``"embedding"`` (default), ``"model"`` or ``"api"``, or a judge object;
      ``judge_options``: keyword arguments of the judge (``model=...`` for ``model``;
      ``base_url``, ``model``, ``key_env``, ``timeout``, ``retries`` for ``api``).
    - ``min_zipf``: the gate's English-word threshold (wordfreq Zipf frequency).
    - Board options as in ``codenames-guess-v0``: ``n_targets``, ``n_non_targets``,
      ``difficulty``, ``trick_non_targets``, ``tier``; and ``example`` (a solved example turn).

    Its teacher (:meth:`demonstration`, for SFT) is the scripted embedding spymaster
    (:class:`envs.codenames.agents.EmbeddingSpymaster`): the clue-vocabulary word whose k-th
    nearest target clears the nearest word to avoid by a margin, for the largest such k, with
    those k targets.
    """

    metric_keys = ("target_recall", "judge_failure")

    def __init__(
        self,
        answer_format: AnswerFormat = "simple",
        judge: str | Judge = "embedding",
        judge_options: dict[str, Any] | None = None,
        min_zipf: float = DEFAULT_MIN_ZIPF,
        n_targets: tuple[int, int] | list[int] = (2, 4),
        n_non_targets: tuple[int, int] | list[int] = (2, 4),
        difficulty: str = "close",
        trick_non_targets: int = 0,
        tier: str | None = None,
        tier_weights: dict[str, float] | None = None,
        example: bool = True,
    ):
        _check_options(
            answer_format=answer_format, lenient=True, n_targets=n_targets,
            n_non_targets=n_non_targets, n_neutral=(0, 0), difficulty=difficulty,
            trick_non_targets=trick_non_targets, max_guesses=None, example=example, tier=tier,
            tier_weights=tier_weights,
        )  # fmt: skip
        if not isinstance(min_zipf, int | float) or min_zipf < 0:
            raise ConfigError(f"min_zipf must be a number >= 0, got {min_zipf!r}.")
        self.answer_format = answer_format
        self.min_zipf = float(min_zipf)
        if isinstance(judge, str):
            check_judge_options(judge, dict(judge_options or {}))  # before any work
            self._judge_spec: tuple[str, dict] | None = (judge, dict(judge_options or {}))
            self._judge: Judge | None = None  # built on first use: loading may take seconds
        else:
            self._judge_spec, self._judge = None, judge
        self.board_options = dict(
            n_targets=tuple(n_targets),
            n_non_targets=tuple(n_non_targets),
            n_neutral=(0, 0),
            difficulty=difficulty,
            trick_non_targets=trick_non_targets,
            max_guesses=None,
        )
        self.tier, self.tier_weights = tier, tier_weights
        self.example = example
        self.board: Board | None = None
        self._messages: list[Message] = []

    @property
    def judge(self) -> Judge:
        if self._judge is None:
            kind, options = self._judge_spec
            self._judge = make_judge(kind, **options)
        return self._judge

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.board = make_episode_board(
            self.np_random, self.board_options, self.tier, self.tier_weights
        )
        messages: list[Message] = [{"role": "system", "content": SYSTEM_PROMPT}]
        if self.example:
            messages += [
                {
                    "role": "user",
                    "content": render_clue_question(
                        _EXAMPLE_TARGETS, _EXAMPLE_AVOID, self.answer_format
                    ),
                },
                {
                    "role": "assistant",
                    "content": format_clue("FRUIT", _EXAMPLE_TARGETS, self.answer_format),
                },
            ]
        b = self.board
        messages.append(
            {
                "role": "user",
                "content": render_clue_question(b.targets, b.non_targets, self.answer_format),
            }
        )
        self._messages = messages
        return list(messages), self._info(b)

    def _info(self, board: Board, **extra: Any) -> dict[str, Any]:
        return (
            self.make_info(
                "spymaster",
                board=list(board.words),
                targets=list(board.targets),
                non_targets=list(board.non_targets),
            )
            | extra
        )

    def demonstration(self) -> str | None:
        b = self.board
        if b is None:
            return None
        from envs.codenames.agents import EmbeddingSpymaster, nearest_words

        key = {w: "neutral" for w in b.words} | {w: "blue" for w in b.non_targets}
        key |= {w: "red" for w in b.targets}
        view = {"words": list(b.words), "key": key, "revealed": [], "team": "red"}
        spymaster = EmbeddingSpymaster(max_number=min(len(b.targets), b.max_guesses))
        clue, k = spymaster.choose(view)
        return format_clue(clue, nearest_words(clue, b.targets, k), self.answer_format)

    def step(self, action: str):
        if self.board is None:
            raise ResetNeeded("Call reset() before step(); a Codenames clue episode is one step.")
        board, self.board = self.board, None
        ((reward, info),) = self._score([(board, action)])
        transcript = self._messages + [{"role": "assistant", "content": action}]
        return transcript, reward, True, False, info

    def score_many(self, episodes: list[tuple[int, str]]) -> list[tuple[float, dict[str, Any]]]:
        """Score many (seed, answer) pairs with one batched judge call: the same rewards and
        infos as ``reset(seed=seed)`` then ``step(answer)`` for each pair."""
        boards = []
        for seed, action in episodes:
            self.reset(seed=seed)
            boards.append((self.board, action))
        self.board = None
        return self._score(boards)

    def _score(self, episodes: list[tuple[Board, str]]) -> list[tuple[float, dict[str, Any]]]:
        results: list[tuple[float, dict[str, Any]] | None] = [None] * len(episodes)
        pending: list[tuple[int, JudgeRequest]] = []
        for i, (board, action) in enumerate(episodes):
            answer = parse_clue(action, self.answer_format)
            check = check_clue(answer, board.words, board.targets, self.min_zipf)
            base = dict(
                clue=answer.clue if answer else "",
                selected=list(answer.selected) if answer else [],
                guesses=[],
                hits=[],
                target_recall=0.0,
                judge_failure=0.0,
                rule=check.rule,
            )
            if not check.valid:
                info = self._info(board, **base)
                info.update(valid=False, reason=check.reason)
                results[i] = (-1.0, info)
            else:
                results[i] = (0.0, self._info(board, **base))
                k = min(len(answer.selected), board.max_guesses)  # the expert tier's lower limit
                pending.append((i, JudgeRequest(board.words, answer.clue, k)))
        if pending:
            guesses = self.judge.guess_many([request for _, request in pending])
            for (i, _), guessed in zip(pending, guesses, strict=True):
                board = episodes[i][0]
                _, info = results[i]
                if guessed is None:
                    info.update(judge_failure=1.0, reason="judge failed; scored 0")
                    results[i] = (0.0, info)
                    continue
                hits = [g for g in guessed if g in board.targets]
                reward = guess_reward(guessed, board.targets, board.non_targets) if guessed else 0.0
                info.update(
                    guesses=list(guessed),
                    hits=hits,
                    target_recall=len(hits) / len(board.targets),
                    reason="" if guessed else "the judge named no board word; scored 0",
                )
                results[i] = (float(reward), info)
        return results  # type: ignore[return-value]
