"""``grade``, ``is_equivalent`` and ``grade_many``: the public face of the math grader.

Each call extracts the answer (:mod:`rewards.math.extract`), settles easy cases in-process
(:func:`rewards.math.equiv.quick_equivalent`: numbers, letters, words) and sends the rest to a
worker process with a hard time limit (:mod:`rewards.math.bounded`). A timeout, a parse failure
or an oversized answer grades False with the reason recorded; nothing raises on bad model output.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from rewards.math import bounded
from rewards.math.equiv import EquivalenceOptions, Verdict, full_equivalent, quick_equivalent
from rewards.math.extract import Extraction, extract_answer, extract_gold
from rewards.math.normalize import normalize, parse_number

DEFAULT_TIMEOUT = 2.0


@dataclass(frozen=True)
class GradeResult:
    """The verdict on one model output.

    ``answer`` is the extracted answer (None if none was found) and ``rule`` the extraction rule
    that found it; ``answer_norm``/``gold_norm`` the normalised forms that were compared;
    ``reason`` says why the verdict is what it is (e.g. ``"equal numbers"``, ``"timeout"``).
    """

    correct: bool
    answer: str | None
    rule: str | None
    gold: str
    answer_norm: str
    gold_norm: str
    reason: str

    def __bool__(self) -> bool:
        return self.correct


def grade(
    output: str,
    gold: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    last_number_fallback: bool = True,
    options: EquivalenceOptions | None = None,
) -> GradeResult:
    """Extract the final answer from ``output`` and compare it with ``gold`` (a bare answer, or a
    full solution: both sides are read by the same rules, see :mod:`rewards.math.extract`).

    >>> grade(r"... so the total is \\boxed{\\dfrac{3}{4}}", "0.75").correct
    True
    """
    return grade_many([output], [gold], timeout=timeout, last_number_fallback=last_number_fallback,
                      options=options)[0]  # fmt: skip


def is_equivalent(
    answer: str,
    gold: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    options: EquivalenceOptions | None = None,
) -> bool:
    """Whether an already extracted ``answer`` equals ``gold`` (False on timeout or bad input);
    ``gold`` may be a full solution, read by :func:`rewards.math.extract_gold`.

    >>> is_equivalent("1/2", "12")
    False
    """
    if not isinstance(gold, str | int | float):
        return False
    return _verdicts([answer], [extract_gold(str(gold))], timeout, options or EquivalenceOptions())[
        0
    ].correct


def grade_many(
    outputs: Sequence[str],
    golds: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    last_number_fallback: bool = True,
    options: EquivalenceOptions | None = None,
) -> list[GradeResult]:
    """Grade a batch; the slow cases run in parallel across the worker processes.

    ``timeout`` bounds each answer's comparison (seconds of worker time).
    """
    if len(outputs) != len(golds):
        raise ValueError(f"grade_many got {len(outputs)} outputs but {len(golds)} gold answers.")
    extractions = [
        extract_answer(o, last_number_fallback) if isinstance(o, str) else None for o in outputs
    ]
    gold_answers = [extract_gold(str(g)) for g in golds]
    found = [i for i, e in enumerate(extractions) if e is not None]
    # The last number of prose is a guess: it may only score against a plain-number gold, so
    # "page 5 of the notes" never matches `\sqrt{25}` or any other expression equal to 5.
    refused = {
        i
        for i in found
        if extractions[i].rule == "last_number"
        and parse_number(normalize(gold_answers[i]).text) is None
    }
    scored = [i for i in found if i not in refused]
    verdicts = _verdicts(
        [extractions[i].text for i in scored],
        [gold_answers[i] for i in scored],
        timeout,
        options or EquivalenceOptions(),
    )
    by_index = dict(zip(scored, verdicts, strict=True))
    for i in refused:
        by_index[i] = Verdict(
            False, "a last number in prose only scores against a number", "", gold_answers[i]
        )
    return [_result(extractions[i], str(golds[i]), by_index.get(i)) for i in range(len(outputs))]


async def grade_async(output: str, gold: str, **kwargs) -> GradeResult:
    """:func:`grade` for asyncio code: runs in the default executor, so the loop is not blocked."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, lambda: grade(output, gold, **kwargs))


def _result(extraction: Extraction | None, gold: str, verdict: Verdict | None) -> GradeResult:
    if extraction is None or verdict is None:
        return GradeResult(
            correct=False,
            answer=None,
            rule=None,
            gold=gold,
            answer_norm="",
            gold_norm="",
            reason="no answer found",
        )
    return GradeResult(
        correct=verdict.correct,
        answer=extraction.text,
        rule=extraction.rule,
        gold=gold,
        answer_norm=verdict.answer_norm,
        gold_norm=verdict.gold_norm,
        reason=verdict.reason,
    )


def _verdicts(
    answers: Sequence[str], golds: Sequence[str], timeout: float, options: EquivalenceOptions
) -> list[Verdict]:
    results = [_quick(a, g, options) for a, g in zip(answers, golds, strict=True)]
    pending = [i for i, r in enumerate(results) if r is None]
    if len(pending) == 1:  # no thread hand-off for a single grade
        i = pending[0]
        try:
            outcomes = [bounded.pool().run(full_equivalent, answers[i], str(golds[i]), options,
                                           timeout=timeout)]  # fmt: skip
        except Exception as err:
            outcomes = [err]
    else:
        calls = [(answers[i], str(golds[i]), options) for i in pending]
        outcomes = bounded.pool().map(full_equivalent, calls, timeout=timeout)
    for i, outcome in zip(pending, outcomes, strict=True):
        results[i] = _verdict(outcome, answers[i], golds[i])
    return results  # type: ignore[return-value]


def _quick(answer: str, gold: str, options: EquivalenceOptions) -> Verdict | None:
    if not isinstance(answer, str):
        return Verdict(False, f"answer is a {type(answer).__name__}, not text", "", str(gold))
    try:
        return quick_equivalent(answer, str(gold), options)
    except Exception as err:  # a grader bug must cost one sample, not a training run
        return Verdict(False, f"grader error: {type(err).__name__}: {err}", answer, str(gold))


def _verdict(outcome: Verdict | Exception, answer: str, gold: str) -> Verdict:
    if isinstance(outcome, Verdict):
        return outcome
    if isinstance(outcome, bounded.WorkerTimeout):
        return Verdict(False, "timeout", answer, gold)
    if isinstance(outcome, bounded.WorkerDied):
        return Verdict(False, "grader worker died (memory limit?)", answer, gold)
    # A grader bug must cost one sample, not a training run.
    return Verdict(False, f"grader error: {outcome}", answer, gold)


def accuracy_reward(
    completions: Sequence,
    answer: Sequence[str] | None = None,
    solution: Sequence[str] | None = None,
    **kwargs,
) -> list[float]:
    """TRL ``reward_funcs`` callable: 1.0 per correct completion, else 0.0, graded in one batch.

    The gold comes from the dataset's ``answer`` column (GSM8K style), or else from the last
    ``\\boxed{}`` of its ``solution`` column (MATH style). Completions may be strings or
    conversational message lists.

    >>> accuracy_reward(["The answer is 4.", "It is 5."], answer=["4", "4"])
    [1.0, 0.0]
    """
    from rewards.trl import _completion_text

    if answer is None and solution is None:
        raise ValueError("accuracy_reward needs an `answer` or a `solution` dataset column.")
    golds = list(answer) if answer is not None else list(solution)
    texts = [_completion_text(c) for c in completions]
    return [float(r.correct) for r in grade_many(texts, golds)]
