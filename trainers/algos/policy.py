"""The clipped policy-gradient surrogate shared by the GRPO family and PPO, and how per-token
terms are reduced to one loss.

Schulman et al. 2017 (PPO), with DAPO's decoupled clip range (Yu et al. 2025, "DAPO",
arXiv:2503.14476, eq. 10): for a produced token with ratio rho = pi_theta / pi_old and advantage A,

    l = - min(rho * A, clip(rho, 1 - clip_low, 1 + clip_high) * A)

The clip is *active* (its gradient is zero) only when rho > 1 + clip_high with A > 0, or
rho < 1 - clip_low with A < 0; ``clip_frac_high`` / ``clip_frac_low`` count exactly those tokens.
"""

from __future__ import annotations

from typing import Literal

import torch

from trainers.algos.gspo import sequence_ratios
from trainers.algos.registry import policy_loss

Aggregation = Literal["token-mean", "seq-mean-token-mean", "seq-sum"]


def denominator(mask: torch.Tensor, mode: Aggregation, constant: float = 1.0) -> float:
    """What :func:`aggregate` divides by for this batch: produced tokens (``token-mean``),
    sequences (``seq-mean-token-mean``) or sequences * ``constant`` (``seq-sum``).

    A learner that splits a batch into micro-batches (or ranks) sums this over the pieces and
    passes the total to :func:`aggregate`, so the pieces' losses add up to the whole batch's."""
    if mode == "token-mean":
        return float(mask.sum())
    if mode == "seq-mean-token-mean":
        return float(mask.shape[0])
    if mode == "seq-sum":
        return float(mask.shape[0]) * constant
    raise ValueError(f"unknown loss aggregation {mode!r}")


def aggregate(
    per_token: torch.Tensor,  # (B, T)
    mask: torch.Tensor,  # (B, T) 1 where the policy produced the token
    mode: Aggregation = "token-mean",
    denom: float | None = None,
    constant: float = 1.0,
) -> torch.Tensor:
    """Reduce per-token terms x_it to a scalar:

    - ``token-mean``: sum_{i,t} x_it / sum_i |y_i| (DAPO's token-level loss; TRL's default);
    - ``seq-mean-token-mean``: 1/B sum_i (1/|y_i|) sum_t x_it (the GRPO paper; GSPO);
    - ``seq-sum``: sum_{i,t} x_it / (B * constant), with the constant the generation budget
      (Dr. GRPO, which removes the 1/|y_i| length bias).

    ``denom`` replaces the batch's own denominator (see :func:`denominator`).
    """
    m = mask.to(per_token.dtype)
    if denom is None:
        denom = denominator(mask, mode, constant)
    denom = max(denom, 1e-8)
    if mode == "seq-mean-token-mean":
        per_seq = (per_token * m).sum(1) / m.sum(1).clamp(min=1)
        return per_seq.sum() / denom
    if mode in ("token-mean", "seq-sum"):
        return (per_token * m).sum() / denom
    raise ValueError(f"unknown loss aggregation {mode!r}")


@policy_loss("clip")
def clipped_policy_loss(
    logprobs: torch.Tensor,  # (B, T) under the current policy, with grad
    old_logprobs: torch.Tensor,  # (B, T) under the policy that sampled, no grad
    advantages: torch.Tensor,  # (B,) one per completion, or (B, T) one per token
    mask: torch.Tensor,  # (B, T)
    clip_low: float = 0.2,
    clip_high: float | None = None,  # None: symmetric, = clip_low
    *,
    ratio_level: Literal["token", "sequence"] = "token",
    is_weights: torch.Tensor | None = None,  # (B, T) truncated importance weights, no grad
    aggregation: Aggregation = "token-mean",
    denom: float | None = None,
    constant: float = 1.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The clipped surrogate, aggregated, and its diagnostics (clip fractions, mean ratio).

    ``ratio_level="sequence"`` uses GSPO's length-normalised sequence ratio for every token of a
    completion (see :mod:`trainers.algos.gspo`). ``is_weights`` corrects for samples drawn by an
    engine whose weights or numerics differ from the learner's; each token's term is scaled by it.
    """
    clip_high = clip_low if clip_high is None else clip_high
    if ratio_level == "sequence":
        ratio = sequence_ratios(logprobs, old_logprobs, mask).unsqueeze(1).expand_as(logprobs)
    else:
        ratio = torch.exp(logprobs - old_logprobs)  # (B, T)
    adv = advantages if advantages.dim() == 2 else advantages.unsqueeze(1)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1 - clip_low, 1 + clip_high) * adv
    per_token = -torch.minimum(unclipped, clipped)
    if is_weights is not None:
        per_token = per_token * is_weights.detach()
    loss = aggregate(per_token, mask, aggregation, denom, constant)
    with torch.no_grad():
        m = mask.to(ratio.dtype)
        n = m.sum().clamp(min=1)
        high = ((ratio > 1 + clip_high) & (adv > 0)).to(m.dtype)
        low = ((ratio < 1 - clip_low) & (adv < 0)).to(m.dtype)
        stats = {
            "clip_frac_high": ((high * m).sum() / n).item(),
            "clip_frac_low": ((low * m).sum() / n).item(),
            "ratio_mean": ((ratio * m).sum() / n).item(),
        }
    stats["clip_frac"] = stats["clip_frac_high"] + stats["clip_frac_low"]
    return loss, stats


def truncated_is_weights(
    learner_logprobs: torch.Tensor,  # (B, T) log p_learner(token), no grad
    engine_logprobs: torch.Tensor,  # (B, T) log p_engine(token) reported by the engine
    cap: float,
) -> torch.Tensor:
    """min(p_learner / p_engine, cap) per token: truncated importance sampling (TIS) for samples
    from an engine that lags the learner (off-policy) or computes slightly different numbers
    (vLLM kernels, bf16). Yao et al. 2025, "Your efficient RL framework secretly brings you
    off-policy RL training"."""
    return torch.exp(learner_logprobs - engine_logprobs).clamp(max=cap)
