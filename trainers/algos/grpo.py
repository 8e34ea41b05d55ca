"""GRPO advantages (Shao et al. 2024, "DeepSeekMath", arXiv:2402.03300, section 4.1.2): for a
group of G completions of one prompt with rewards r_i, every token of completion i gets

    A_i = (r_i - mean(r)) / (std(r) + eps)

with the unbiased std, as TRL computes it. A group whose rewards are all equal carries no signal
and gets zero advantages (never NaN).
"""

from __future__ import annotations

import torch

from trainers.algos.registry import advantage_estimator, preset


@advantage_estimator("grpo")
def group_advantages(rewards: torch.Tensor, scale: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """Advantages for rewards shaped ``(n_groups, group_size)``; same shape out.

    >>> group_advantages(torch.tensor([[1.0, 0.0]]), scale=False)
    tensor([[ 0.5000, -0.5000]])
    """
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    if not scale:
        return centred
    std = rewards.std(dim=1, keepdim=True)
    return torch.where(std > 0, centred / (std + eps), torch.zeros_like(centred))


preset("grpo", advantage="grpo")
