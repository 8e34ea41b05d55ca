"""RL objectives, one small module per idea, each written from its paper's formula.

- :mod:`~trainers.algos.policy` the clipped surrogate (token or sequence ratios) and the loss
  aggregations every algorithm picks from;
- :mod:`~trainers.algos.grpo`, :mod:`~trainers.algos.dr_grpo`, :mod:`~trainers.algos.rloo`,
  :mod:`~trainers.algos.reinforce_pp`: advantage estimators for groups of sampled completions;
- :mod:`~trainers.algos.dapo`: dynamic sampling and overlong reward shaping;
- :mod:`~trainers.algos.gspo`: sequence-level importance ratios;
- :mod:`~trainers.algos.ppo`: a value head, GAE and the clipped value loss;
- :mod:`~trainers.algos.kl`: k1/k3 estimators of the KL to a reference policy, and entropy.

:mod:`~trainers.algos.registry` holds them by name: each module registers its estimator or loss
and its presets (``algo.name``) as it is imported, and importing this package imports them all.
No module here imports transformers.
"""

from trainers.algos.dapo import overlong_penalty, varied_groups
from trainers.algos.dr_grpo import dr_grpo_advantages
from trainers.algos.grpo import group_advantages
from trainers.algos.gspo import sequence_ratios
from trainers.algos.kl import kl_estimate
from trainers.algos.policy import aggregate, clipped_policy_loss, truncated_is_weights
from trainers.algos.ppo import ValueHead, gae, value_loss
from trainers.algos.registry import (
    ADVANTAGES,
    POLICY_LOSSES,
    PRESETS,
    advantage_estimator,
    policy_loss,
    preset,
)
from trainers.algos.reinforce_pp import reinforce_pp_advantages
from trainers.algos.rloo import rloo_advantages

__all__ = [
    "ADVANTAGES",
    "POLICY_LOSSES",
    "PRESETS",
    "advantage_estimator",
    "policy_loss",
    "preset",
    "ValueHead",
    "aggregate",
    "clipped_policy_loss",
    "dr_grpo_advantages",
    "gae",
    "group_advantages",
    "kl_estimate",
    "overlong_penalty",
    "reinforce_pp_advantages",
    "rloo_advantages",
    "sequence_ratios",
    "truncated_is_weights",
    "value_loss",
    "varied_groups",
]
