"""KL to a frozen reference policy, estimated from the sampled tokens (Schulman 2020,
"Approximating KL divergence"). With log-ratio d = log pi_ref(y_t) - log pi_theta(y_t):

    k1 = -d                     unbiased, can be negative per token; the usual choice in a reward
    k3 = exp(d) - d - 1         unbiased, always >= 0, low variance; the GRPO paper's loss term

Both are zero per token when the policy equals the reference.
"""

from __future__ import annotations

from typing import Literal

import torch


def kl_estimate(
    logprobs: torch.Tensor, ref_logprobs: torch.Tensor, kind: Literal["k1", "k3"] = "k3"
) -> torch.Tensor:
    """Per-token KL(pi_theta || pi_ref) estimate; differentiable through ``logprobs``.

    >>> kl_estimate(torch.tensor([-1.0]), torch.tensor([-1.0]))
    tensor([0.])
    """
    d = ref_logprobs - logprobs
    if kind == "k1":
        return -d
    if kind == "k3":
        return torch.exp(d) - d - 1
    raise ValueError(f"unknown KL estimator {kind!r}; use k1 or k3")
