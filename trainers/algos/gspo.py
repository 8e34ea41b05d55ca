"""GSPO: sequence-level importance ratios (Zheng et al. 2025, "Group Sequence Policy
Optimization", arXiv:2507.18071, eq. 7):

    s_i = (pi_theta(y_i | x) / pi_old(y_i | x)) ** (1 / |y_i|)
        = exp( 1/|y_i| * sum_t (log pi_theta(y_it) - log pi_old(y_it)) )

Every token of completion i is clipped with the same s_i, and the loss is a mean over sequences
(``seq-mean-token-mean``). The paper's clip range is much narrower than PPO's (3e-4 / 4e-4).
"""

from __future__ import annotations

import torch

from trainers.algos.registry import preset


def sequence_ratios(
    logprobs: torch.Tensor,  # (B, T) with grad
    old_logprobs: torch.Tensor,  # (B, T)
    mask: torch.Tensor,  # (B, T)
) -> torch.Tensor:
    """s_i per completion, shape (B,), differentiable through ``logprobs``."""
    m = mask.to(logprobs.dtype)
    mean_log_ratio = ((logprobs - old_logprobs) * m).sum(1) / m.sum(1).clamp(min=1)
    return torch.exp(mean_log_ratio)


# GSPO = GRPO's advantage with sequence ratios, a sequence-mean loss and the paper's narrow clip.
preset(
    "gspo",
    advantage="grpo",
    clip_low=3e-4,
    clip_high=4e-4,
    loss_agg="seq-mean-token-mean",
    ratio_level="sequence",
)
