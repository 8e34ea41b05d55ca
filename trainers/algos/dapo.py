"""DAPO's two batch-level ideas (Yu et al. 2025, "DAPO", arXiv:2503.14476). Its third and fourth,
the decoupled clip (clip_low 0.2, clip_high 0.28) and the token-level loss, are options of
:func:`trainers.algos.policy.clipped_policy_loss`.

Dynamic sampling (section 3.2): a group whose rewards are all equal has zero advantage and only
dilutes the batch, so such groups are dropped and more prompts are sampled until the batch is
full (or a sampling budget runs out).

Overlong reward shaping (eq. 13): with generation limit L_max and a buffer L_cache, a completion
of length |y| gets

    0                                  if |y| <= L_max - L_cache
    ((L_max - L_cache) - |y|) / L_cache  if L_max - L_cache < |y| <= L_max
    -1                                 if |y| > L_max

added to its reward (times a factor, 1 in the paper).
"""

from __future__ import annotations

import torch

from trainers.algos.registry import preset


def overlong_penalty(lengths: torch.Tensor, max_len: int, buffer: int) -> torch.Tensor:
    """The soft length penalty for completion ``lengths`` (any shape); 0 everywhere if buffer is 0.

    >>> overlong_penalty(torch.tensor([10, 14, 16, 17]), max_len=16, buffer=4)
    tensor([ 0.0000, -0.5000, -1.0000, -1.0000])
    """
    lengths = lengths.to(torch.float32)
    if buffer <= 0:
        return torch.zeros_like(lengths)
    start = max_len - buffer
    soft = (start - lengths) / buffer
    out = torch.where(lengths <= start, torch.zeros_like(lengths), soft)
    return torch.where(lengths > max_len, torch.full_like(lengths, -1.0), out)


def varied_groups(rewards: torch.Tensor) -> torch.Tensor:
    """Boolean ``(n_groups,)``: True for groups whose rewards are not all equal (kept).

    >>> varied_groups(torch.tensor([[1.0, 1.0], [0.0, 1.0], [0.5, 0.5]]))
    tensor([False,  True, False])
    """
    return (rewards.max(dim=1).values - rewards.min(dim=1).values) > 0


# DAPO = GRPO's advantage with clip-higher, dynamic sampling and overlong shaping (-1: a quarter
# of sampling.max_new_tokens).
preset("dapo", advantage="grpo", clip_high=0.28, dynamic_sampling=True, overlong_buffer=-1)
