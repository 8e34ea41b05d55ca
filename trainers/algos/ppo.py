"""PPO with a learned value (critic) for dense per-token rewards (Schulman et al. 2017; GAE from
Schulman et al. 2016, "High-Dimensional Continuous Control Using Generalized Advantage
Estimation", arXiv:1506.02438).

Tokens are time steps. With per-token rewards r_t (the outcome reward on the last token, plus any
step rewards, e.g. from a process reward model) and values V_t of the state before token t:

    delta_t = r_t + gamma * V_{t+1} - V_t           (V after the last token is 0)
    A_t     = sum_l (gamma * lam)^l * delta_{t+l}    returns R_t = A_t + V_t

The critic is a linear head on the policy's last hidden state, trained with PPO's clipped value
loss 1/2 * max((V - R)^2, (clip(V, V_old - c, V_old + c) - R)^2).
"""

from __future__ import annotations

import torch
from torch import nn

from trainers.algos.registry import advantage_estimator, preset


class ValueHead(nn.Module):
    """V(h) = w . h + b on the policy's final hidden states; starts at zero output."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.proj = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:  # (B, T, H) -> (B, T)
        return self.proj(hidden.to(self.proj.weight.dtype)).squeeze(-1)


@advantage_estimator("gae", needs_values=True)
def gae(
    rewards: torch.Tensor,  # (B, T) per-token rewards, 0 on padding
    values: torch.Tensor,  # (B, T) V_t, no grad
    mask: torch.Tensor,  # (B, T) 1 on produced tokens (a prefix of each row)
    gamma: float = 1.0,
    lam: float = 0.95,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns), both (B, T) and zero on padding.

    >>> adv, ret = gae(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.5, 0.5]]), torch.ones(1, 2), 1.0, 1.0)
    >>> adv.tolist(), ret.tolist()
    ([[0.5, 0.5]], [[1.0, 1.0]])
    """
    m = mask.to(values.dtype)
    values = values * m
    rewards = rewards * m
    advantages = torch.zeros_like(values)
    running = torch.zeros(values.shape[0], dtype=values.dtype, device=values.device)
    for t in reversed(range(values.shape[1])):
        next_value = values[:, t + 1] if t + 1 < values.shape[1] else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * lam * running) * m[:, t]
        advantages[:, t] = running
    return advantages, (advantages + values) * m


def value_loss(
    values: torch.Tensor,  # (B, T) with grad
    old_values: torch.Tensor,  # (B, T)
    returns: torch.Tensor,  # (B, T)
    clip: float | None = 0.2,
) -> torch.Tensor:
    """Per-token clipped value loss (aggregate it like the policy loss)."""
    unclipped = (values - returns) ** 2
    if clip is None:
        return 0.5 * unclipped
    clipped_values = old_values + (values - old_values).clamp(-clip, clip)
    return 0.5 * torch.maximum(unclipped, (clipped_values - returns) ** 2)


def whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(x - mean) / std over the masked entries (PPO's advantage normalisation)."""
    m = mask.to(x.dtype)
    n = m.sum().clamp(min=1)
    mean = (x * m).sum() / n
    var = (((x - mean) * m) ** 2).sum() / n
    return (x - mean) * torch.rsqrt(var + eps) * m


preset("ppo", advantage="gae")
