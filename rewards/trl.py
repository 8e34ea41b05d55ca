"""Wrap assay rewards as TRL ``reward_funcs`` callables (``GRPOTrainer(reward_funcs=[...])``)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any


def _completion_text(completion: Any) -> str:
    # TRL passes plain strings for text datasets and message lists for conversational ones.
    if isinstance(completion, str):
        return completion
    return "".join(message.get("content") or "" for message in completion)


def as_trl_reward(
    score: Callable[..., float], name: str | None = None
) -> Callable[..., list[float]]:
    """Turn ``score(text, **row) -> float`` into TRL's ``f(completions, **columns) -> list[float]``.

    TRL passes every extra dataset column as a keyword argument holding one value per completion;
    each completion is scored with its own row's values. Columns that ``score`` does not name
    (TRL also passes ``prompts``, ``completion_ids``, ``trainer_state``) are left out.
    """
    params = dict(inspect.signature(score).parameters)
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    text_param = next(iter(params))  # the first parameter receives the completion text
    del params[text_param]

    def wanted(key: str, value: Any) -> bool:
        if key == text_param:
            return False
        return key in params or (takes_any and isinstance(value, list | tuple))

    def reward_func(completions: list[Any], **columns: Any) -> list[float]:
        columns = {k: v for k, v in columns.items() if wanted(k, v)}
        return [
            float(score(_completion_text(c), **{k: v[i] for k, v in columns.items()}))
            for i, c in enumerate(completions)
        ]

    reward_func.__name__ = name or getattr(score, "__name__", "assay_reward")
    return reward_func


def as_trl_reward_model(model: Any, aggregate: str = "min", problem_key: str = "problem"):
    """A trained ORM or PRM as one TRL reward function, scoring the whole batch in one call.

    The problem text comes from the dataset column ``problem_key``, or else from the last user
    message (or the text) of TRL's ``prompts``. A PRM's step scores are reduced with
    ``rewards.aggregate(scores, aggregate)``; ``per_step`` is refused (TRL rewards are one
    number per completion).
    """
    from assay.errors import ConfigError
    from rewards.rm.aggregate import aggregate as reduce
    from rewards.rm.aggregate import check_aggregation

    check_aggregation(aggregate)
    if aggregate == "per_step":
        raise ConfigError(
            "TRL reward functions return one number per completion; pick min, prod, ..."
        )

    def problem_of(prompt: Any) -> str:
        if isinstance(prompt, str):
            return prompt
        return next(m["content"] for m in reversed(prompt) if m.get("role") == "user")

    def reward_func(completions: list[Any], prompts: list[Any] | None = None, **columns: Any):
        if problem_key in columns:
            problems = list(columns[problem_key])
        elif prompts is not None:
            problems = [problem_of(p) for p in prompts]
        else:
            raise ConfigError(f"No {problem_key!r} column and no prompts to read the problem from.")
        pairs = [(p, _completion_text(c)) for p, c in zip(problems, completions, strict=True)]
        if model.kind == "orm":
            return [float(s) for s in model.score_many(pairs)]
        return [float(reduce(s, aggregate)) for s in model.score_solutions(pairs)]

    reward_func.__name__ = f"{model.kind}_{aggregate}" if model.kind == "prm" else "orm"
    return reward_func
