"""RLOO: REINFORCE with a leave-one-out baseline (Kool et al. 2019; Ahmadian et al. 2024,
"Back to Basics", arXiv:2402.14740). Each completion is compared with the mean reward of the
*other* G - 1 completions of its prompt:

    A_i = r_i - 1/(G-1) * sum_{j != i} r_j  =  G/(G-1) * (r_i - mean(r))
"""

from __future__ import annotations

import torch

from trainers.algos.registry import advantage_estimator, preset


@advantage_estimator("rloo")
def rloo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """Leave-one-out advantages for ``(n_groups, G)`` rewards, G >= 2.

    >>> rloo_advantages(torch.tensor([[1.0, 0.0, 0.0]]))
    tensor([[ 1.0000, -0.5000, -0.5000]])
    """
    g = rewards.shape[1]
    if g < 2:
        raise ValueError("RLOO needs at least 2 completions per prompt")
    others = (rewards.sum(dim=1, keepdim=True) - rewards) / (g - 1)
    return rewards - others


preset("rloo", advantage="rloo")
