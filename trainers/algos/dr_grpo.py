"""Dr. GRPO (Liu et al. 2025, "Understanding R1-Zero-Like Training", arXiv:2503.20783): GRPO
without its two biases.

- No std normalisation: A_i = r_i - mean(r), so easy or hard prompts (low reward spread) are not
  up-weighted.
- No per-sequence length normalisation: the loss sums token terms and divides by a constant
  (B * generation budget; ``seq-sum`` aggregation in :mod:`trainers.algos.policy`), so long wrong
  answers are not penalised less per token than short ones.
"""

from __future__ import annotations

import torch

from trainers.algos.grpo import group_advantages
from trainers.algos.registry import advantage_estimator, preset


@advantage_estimator("dr_grpo")
def dr_grpo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """r_i - mean(r) within each group; ``rewards`` is ``(n_groups, group_size)``.

    >>> dr_grpo_advantages(torch.tensor([[3.0, 1.0, 2.0]]))
    tensor([[ 1., -1.,  0.]])
    """
    return group_advantages(rewards, scale=False)


preset("dr_grpo", advantage="dr_grpo", loss_agg="seq-sum")
