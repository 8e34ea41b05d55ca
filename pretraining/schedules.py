"""Learning-rate schedules for pretraining, as multipliers of the peak learning rate.

Each function maps a 0-based optimizer step to a float in ``[0, 1]``; wrap one in
``torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine(step, ...))``.

- :func:`warmup_cosine`: linear warmup, then cosine decay to ``min_lr_ratio``.
- :func:`jagged_cosine`: the ReLoRA schedule (Lialin et al. 2023, "ReLoRA: High-Rank Training
  Through Low-Rank Updates", Sec. 3): the same cosine, with a short linear re-warmup after each
  merge-and-reinit reset, because the optimizer state was just pruned and the fresh low-rank
  factors would otherwise take full-size steps from an almost empty Adam state.
"""

from __future__ import annotations

import math

from assay.errors import AssayError, ConfigError


def warmup_cosine(step: int, *, max_steps: int, warmup_steps: int, min_lr_ratio: float) -> float:
    """LR multiplier: linear warmup from 0 to 1, then cosine decay from 1 to ``min_lr_ratio``.

    With ``w = warmup_steps`` and ``m = min_lr_ratio``::

        step < w:   step / w
        otherwise:  m + (1 - m) * 0.5 * (1 + cos(pi * p))
                    with p = clamp((step - w) / (max_steps - w), 0, 1)

    Steps past ``max_steps`` stay at ``m``.

    >>> warmup_cosine(5, max_steps=110, warmup_steps=10, min_lr_ratio=0.0)  # half-way up
    0.5
    >>> warmup_cosine(60, max_steps=110, warmup_steps=10, min_lr_ratio=0.0)  # p = 0.5
    0.5
    >>> warmup_cosine(110, max_steps=110, warmup_steps=10, min_lr_ratio=0.1)
    0.1
    """
    _check_cosine(max_steps, warmup_steps, min_lr_ratio)
    _check_step(step)
    if step < warmup_steps:
        return step / warmup_steps
    progress = (step - warmup_steps) / (max_steps - warmup_steps)
    progress = min(max(progress, 0.0), 1.0)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return min_lr_ratio + (1.0 - min_lr_ratio) * cosine


def jagged_cosine(
    step: int,
    *,
    max_steps: int,
    warmup_steps: int,
    min_lr_ratio: float,
    reset_every: int,
    restart_warmup_steps: int,
) -> float:
    """The ReLoRA "jagged" cosine: :func:`warmup_cosine` with a linear re-warmup after each reset.

    Resets happen at steps ``k * reset_every`` for ``k >= 1``. With ``r = step % reset_every``,
    ``R = restart_warmup_steps`` and ``g(s)`` the :func:`warmup_cosine` multiplier::

        step >= reset_every and r < R:  (r / R) * g(step - r + R)
        otherwise:                      g(step)

    so the LR is 0 at each reset step and climbs linearly back to the global cosine, which it
    meets exactly at ``reset_step + R``. ``R = 0`` gives plain :func:`warmup_cosine`.

    Example with ``max_steps=110, warmup_steps=10, min_lr_ratio=0, reset_every=50, R=10``: the
    reset at 50 re-warms towards ``g(60) = 0.5`` (the cosine's midpoint), so step 50 gives 0,
    step 55 gives ``5/10 * 0.5 = 0.25`` and step 60 gives 0.5.

    >>> kw = dict(max_steps=110, warmup_steps=10, min_lr_ratio=0.0, reset_every=50)
    >>> [jagged_cosine(s, **kw, restart_warmup_steps=10) for s in (50, 55, 60)]
    [0.0, 0.25, 0.5]
    """
    _check_cosine(max_steps, warmup_steps, min_lr_ratio)
    _check_step(step)
    if reset_every <= 0:
        raise ConfigError(f"reset_every must be a positive number of steps, got {reset_every}.")
    if not 0 <= restart_warmup_steps <= reset_every:
        raise ConfigError(
            f"restart_warmup_steps must be in [0, reset_every={reset_every}], got "
            f"{restart_warmup_steps}: a re-warmup cannot outlast the cycle it starts."
        )
    if reset_every < warmup_steps:
        raise ConfigError(
            f"reset_every={reset_every} is shorter than warmup_steps={warmup_steps}: the first "
            "reset would fall inside the global warmup. Raise reset_every or shorten the warmup."
        )
    cosine = dict(max_steps=max_steps, warmup_steps=warmup_steps, min_lr_ratio=min_lr_ratio)
    since_reset = step % reset_every
    if step >= reset_every and since_reset < restart_warmup_steps:
        target = warmup_cosine(step - since_reset + restart_warmup_steps, **cosine)
        return since_reset / restart_warmup_steps * target
    return warmup_cosine(step, **cosine)


def _check_cosine(max_steps: int, warmup_steps: int, min_lr_ratio: float) -> None:
    if max_steps <= 0:
        raise ConfigError(f"max_steps must be positive, got {max_steps}.")
    if not 0 <= warmup_steps < max_steps:
        raise ConfigError(
            f"warmup_steps must be in [0, max_steps={max_steps}), got {warmup_steps}: the cosine "
            "decay needs at least one step after the warmup."
        )
    if not 0.0 <= min_lr_ratio <= 1.0:
        raise ConfigError(f"min_lr_ratio must be in [0, 1], got {min_lr_ratio}.")


def _check_step(step: int) -> None:
    if step < 0:
        raise AssayError(f"step must be a 0-based optimizer step (>= 0), got {step}.")
