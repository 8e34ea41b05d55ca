"""REINFORCE++ advantages (Hu et al. 2025, "REINFORCE++", arXiv:2501.03262), in the "baseline"
form for group sampling: subtract the group's mean reward, then normalise by the mean and std of
those centred rewards over the *whole batch* (global, not per-group, normalisation):

    a_i = r_i - mean(r_group(i));   A_i = (a_i - mean_batch(a)) / (std_batch(a) + eps)

Normalising over the batch keeps the scale stable without GRPO's per-prompt std, which
over-weights prompts whose rewards barely vary.
"""

from __future__ import annotations

import torch

from trainers.algos.registry import advantage_estimator, preset


# Normalised over the whole batch: a group's advantages depend on the other groups.
@advantage_estimator("reinforce_pp", within_group=False)
def reinforce_pp_advantages(rewards: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``(n_groups, G)`` rewards -> advantages of the same shape.

    >>> reinforce_pp_advantages(torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    tensor([[ 1.2247, -1.2247],
            [ 0.0000,  0.0000]])
    """
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    std = centred.std()
    if not std > 0:
        return torch.zeros_like(centred)
    return (centred - centred.mean()) / (std + eps)


preset("reinforce_pp", advantage="reinforce_pp")
