"""The loss of one micro-batch: the registered policy loss, plus the KL to the reference, the
entropy bonus and (PPO) the value loss, each scaled so that micro-batches and ranks add up to
the mini-batch's loss; and its diagnostics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from trainers.algos import aggregate, kl_estimate, truncated_is_weights, value_loss
from trainers.rl.batch import Batch, group_rows, slice_groups
from trainers.rl.config import RLConfig
from trainers.rl.forward import PolicyForward


@dataclass
class StepTensors:
    """What every micro-batch's loss reads for one step: the padded batch and per-token
    tensors, each (B, T_c). ``None``: not computed this step."""

    batch: Batch
    group_size: int
    mask: torch.Tensor  # 1 on the tokens trained on
    advantages: torch.Tensor
    returns: torch.Tensor | None = None  # value targets (critic estimators)
    old_logprobs: torch.Tensor | None = None  # the sampling policy's, when a pass computed them
    old_values: torch.Tensor | None = None
    ref_logprobs: torch.Tensor | None = None  # the KL reference's
    engine_logprobs: torch.Tensor | None = None  # what a separate engine reported
    is_weights: torch.Tensor | None = None  # truncated importance weights (old vs engine)


@dataclass
class Scale:
    """One mini-batch's denominators, summed over ranks: the policy loss's aggregation and the
    number of trained tokens (token means of KL, entropy and value loss)."""

    denom: float
    n_tokens: float


class Objective:
    """``objective(tensors, groups, scale, epoch)`` -> the loss of prompt groups ``groups`` and
    its diagnostics. With a separate engine, ``gap_max`` keeps the largest |log p_learner -
    log p_engine| seen since :meth:`reset`."""

    def __init__(self, config: RLConfig, forward: PolicyForward, policy_loss, separate_engine):
        algo = config.algo
        self.algo, self.forward, self.policy_loss = algo, forward, policy_loss
        self.separate_engine = separate_engine
        self.is_cap = config.engines.is_cap
        self.aggregation = algo.setting("loss_agg")
        self.constant = float(algo.loss_constant or config.sampling.max_new_tokens)
        self.gap_max = 0.0

    def reset(self) -> None:
        self.gap_max = 0.0

    def __call__(
        self, t: StepTensors, groups: list[int], scale: Scale, epoch: int
    ) -> dict[str, Any]:
        algo = self.algo
        rows = group_rows(groups, t.group_size).to(t.mask.device)
        m = t.mask[rows]
        out = self.forward.policy(
            slice_groups(t.batch, groups, t.group_size), algo.entropy_coef > 0
        )
        logprobs = out.logprobs
        old = t.old_logprobs[rows] if t.old_logprobs is not None else logprobs.detach()
        weights = t.is_weights[rows] if t.is_weights is not None else None
        parts: dict[str, Any] = {}
        if t.engine_logprobs is not None:
            weights = self._engine_terms(parts, old, t.engine_logprobs[rows], weights, m, epoch)
        agg = {"mode": self.aggregation, "denom": scale.denom, "constant": self.constant}
        loss, diag = self.policy_loss(
            logprobs,
            old,
            t.advantages[rows],
            m,
            algo.setting("clip_low"),
            algo.setting("clip_high"),
            ratio_level=algo.setting("ratio_level"),
            is_weights=weights,
            aggregation=self.aggregation,
            denom=scale.denom,
            constant=self.constant,
        )
        parts = {**diag, **parts}
        if t.ref_logprobs is not None:
            kl = kl_estimate(logprobs, t.ref_logprobs[rows], algo.kl_estimator)
            if algo.kl_in == "loss":
                loss = loss + algo.kl_coef * aggregate(kl, m, **agg)
            parts["kl"] = _mean(kl, m)
        if out.entropy is not None:
            if algo.entropy_coef > 0:
                loss = loss - algo.entropy_coef * aggregate(out.entropy, m, **agg)
            parts["entropy"] = _mean(out.entropy, m)
        if self.forward.value_head is not None:
            values = self.forward.value_head(out.hidden).float()
            v_loss = value_loss(values, t.old_values[rows], t.returns[rows], algo.value_clip)
            token_mean = {"mode": "token-mean", "denom": scale.n_tokens}
            loss = loss + algo.vf_coef * aggregate(v_loss, m, **token_mean)
            parts["value_loss"] = _mean(v_loss, m)
            parts["value_mean"] = _mean(values, m)
        parts["loss"] = loss
        return parts

    def _engine_terms(self, parts, old, engine_lp, weights, m, epoch: int):
        """Importance weights where the step did not compute them, and (first epoch) the
        learner-engine gap, token-weighted over the whole batch."""
        if weights is None and self.separate_engine:
            weights = truncated_is_weights(old, engine_lp, self.is_cap)
        if epoch == 0:
            gap = (old - engine_lp).abs() * m
            parts["engine_logprob_gap"] = (gap.sum() / m.sum().clamp(min=1)).item()
            self.gap_max = max(self.gap_max, gap.max().item())
            if weights is not None:
                parts.update(_is_stats(weights, m, self.is_cap))
        return weights


def _mean(x: torch.Tensor, m: torch.Tensor) -> float:
    return ((x.detach() * m).sum() / m.sum().clamp(min=1)).item()


def _is_stats(weights: torch.Tensor, mask: torch.Tensor, cap: float) -> dict[str, float]:
    m = mask.to(weights.dtype)
    n = m.sum().clamp(min=1)
    return {
        "is_weight_mean": ((weights * m).sum() / n).item(),
        "is_weight_capped": (((weights >= cap).to(m.dtype) * m).sum() / n).item(),
    }
