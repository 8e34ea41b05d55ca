"""The learning-rate schedule of an RL run: linear warm-up, then constant or cosine decay."""

from __future__ import annotations

import math

from trainers.rl.config import RLConfig


def lr_lambda(config: RLConfig):
    """Warm-up then constant or cosine decay, as a multiplier of ``optim.lr`` per RL step."""
    opt, total = config.optim, config.train.steps

    def factor(step: int) -> float:  # step counts from 0
        if opt.warmup_steps and step < opt.warmup_steps:
            return (step + 1) / opt.warmup_steps
        if opt.schedule == "constant":
            return 1.0
        span = max(total - opt.warmup_steps, 1)
        progress = min((step - opt.warmup_steps) / span, 1.0)
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        return opt.min_lr_ratio + (1 - opt.min_lr_ratio) * cosine

    return factor
