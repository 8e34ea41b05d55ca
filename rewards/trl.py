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
