"""Advantages for a step's samples, from the estimator the config names (``trainers.algos``).

Group estimators see the rewards of every rank's groups (REINFORCE++ normalises over the whole
batch) and give each completion one number, spread over its tokens; estimators with a critic
(GAE) take per-token rewards and the value head's values. KL in the reward (``algo.kl_in:
reward``) comes off the rewards first: the sequence's summed k1 for group estimators, each
token's k1 for per-token ones.
"""

from __future__ import annotations

import math

import torch

from trainers.algos import kl_estimate
from trainers.algos.registry import AdvantageEstimator
from trainers.distributed import World, all_gather_rows, all_sum
from trainers.rl.config import AlgoConfig
from trainers.rl.samples import Samples


def compute_advantages(
    estimator: AdvantageEstimator,
    algo: AlgoConfig,
    samples: Samples,
    mask: torch.Tensor,  # (B, T_c) the tokens trained on
    *,
    old_logprobs: torch.Tensor | None,  # (B, T_c), needed for KL in the reward
    ref_logprobs: torch.Tensor | None,  # (B, T_c)
    values: torch.Tensor | None,  # (B, T_c), needed by critic estimators
    world: World,
    tokenizer,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-token advantages (B, T_c), and the value head's returns (critic estimators; else
    None). Samples that carry their own advantages (multi-turn episodes) keep them."""
    if samples.advantages is not None:
        return samples.advantages.to(mask.device).float().unsqueeze(1) * mask, None
    kl_reward = algo.kl_coef > 0 and algo.kl_in == "reward"
    if estimator.needs_values:
        rewards = token_rewards(samples, mask, tokenizer)
        if kl_reward:
            rewards = rewards - algo.kl_coef * kl_estimate(old_logprobs, ref_logprobs, "k1")
        adv, returns = estimator.fn(rewards, values, mask, algo.gamma, algo.lam)
        if algo.whiten_advantages:
            adv = whiten(adv, mask, world)
        return adv, returns
    rewards = samples.train_rewards.to(mask.device).float()  # (P, G)
    if kl_reward:  # the sequence's summed k1 comes off its reward
        kl_seq = (kl_estimate(old_logprobs, ref_logprobs, "k1") * mask).sum(1).view_as(rewards)
        rewards = rewards - algo.kl_coef * kl_seq
    everyone = all_gather_rows(rewards, world)  # (P_total, G)
    adv_all = estimator.fn(everyone)
    mine = adv_all[world.rank * len(rewards) : (world.rank + 1) * len(rewards)]
    return mine.flatten().unsqueeze(1) * mask, None


def whiten(x: torch.Tensor, mask: torch.Tensor, world: World) -> torch.Tensor:
    """(x - mean) / std over the masked entries of every rank (PPO's advantage normalisation)."""
    m = mask.to(x.dtype)
    n = all_sum(float(m.sum()), world)
    mean = all_sum(float((x * m).sum()), world) / max(n, 1)
    var = all_sum(float((((x - mean) * m) ** 2).sum()), world) / max(n, 1)
    return (x - mean) / math.sqrt(var + 1e-8) * m


def token_rewards(samples: Samples, mask: torch.Tensor, tokenizer) -> torch.Tensor:
    """(B, T_c): each completion's reward on its last token, plus the env's step rewards
    (``info["step_rewards"]``, see :class:`envs.TextEnv`) on the token that ends at or after
    each step's ``char_end`` in the completion text."""
    out = torch.zeros(mask.shape, device=mask.device)
    flat = samples.train_rewards.flatten()
    for i, c in enumerate(samples.completions):
        n = len(c.token_ids)
        if n == 0:
            continue
        out[i, n - 1] += flat[i]
        steps = samples.infos[i].get("step_rewards") if i < len(samples.infos) else None
        if steps:
            ends = _token_ends(tokenizer, c.token_ids)
            for char_end, value in steps:
                t = next((k for k, e in enumerate(ends) if e >= char_end), n - 1)
                out[i, t] += float(value)
    return out


def _token_ends(tokenizer, token_ids: list[int]) -> list[int]:
    """Character length of the decoded text after each token (where each token ends)."""
    return [len(tokenizer.decode(token_ids[: k + 1])) for k in range(len(token_ids))]
