"""Reward models for math reasoning: step splitting, step labels, ORM and PRM, aggregation.

>>> from rewards.rm import aggregate, split_steps
>>> aggregate([0.9, 0.2, 0.7], "min")
0.2
"""

from rewards.rm.aggregate import AGGREGATIONS, aggregate, step_rewards
from rewards.rm.aggregate import NAMES as AGGREGATION_NAMES
from rewards.rm.formats import load_prm_rows, math_shepherd_row, prm800k_rows
from rewards.rm.labels import arithmetic_labels
from rewards.rm.steps import SPLITTERS, split_steps, step_spans

_MODELS = ("OutcomeRewardModel", "ProcessRewardModel", "RMFormat", "load_reward_model")


def __getattr__(name: str):
    # The models import torch and transformers; aggregation and step labels do not need them.
    if name in _MODELS:
        from rewards.rm import models

        return getattr(models, name)
    raise AttributeError(f"module 'rewards.rm' has no attribute {name!r}")


__all__ = [
    "AGGREGATIONS",
    "AGGREGATION_NAMES",
    "SPLITTERS",
    "OutcomeRewardModel",
    "ProcessRewardModel",
    "RMFormat",
    "aggregate",
    "arithmetic_labels",
    "load_prm_rows",
    "load_reward_model",
    "math_shepherd_row",
    "prm800k_rows",
    "split_steps",
    "step_rewards",
    "step_spans",
]
