"""GRPO: group-relative advantages and the clipped token-level policy-gradient loss.

Shao et al. 2024, "DeepSeekMath" (arXiv:2402.03300), eq. 3 with the outcome-supervision
advantage of section 4.1.2: for a group of G completions of one prompt with rewards r_i,

    A_i = (r_i - mean(r)) / (std(r) + eps)          (every token of completion i gets A_i)

    L = - 1/|tokens| * sum_{i,t} min(rho_{i,t} A_i, clip(rho_{i,t}, 1-eps_c, 1+eps_c) A_i)

with rho = pi_theta(o_t | q, o_<t) / pi_old(o_t | q, o_<t), averaged over every produced token in
the batch ("token-mean", as DAPO and TRL do). No KL term: the reference-policy KL is optional in
later work and left to the trainer issue.
"""

from __future__ import annotations

import torch


def group_advantages(rewards: torch.Tensor, scale: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """Advantages for rewards shaped ``(n_groups, group_size)``; same shape out.

    >>> group_advantages(torch.tensor([[1.0, 0.0]]), scale=False)
    tensor([[ 0.5000, -0.5000]])
    """
    centred = rewards - rewards.mean(dim=1, keepdim=True)
    if not scale:
        return centred
    # Unbiased std as in TRL; a group with equal rewards gets zero advantage, not NaN.
    std = rewards.std(dim=1, keepdim=True)
    return torch.where(std > 0, centred / (std + eps), torch.zeros_like(centred))


def completion_logprobs(
    model,
    input_ids: torch.Tensor,  # (B, T) prompt (left-padded) + completion (right-padded)
    attention_mask: torch.Tensor,  # (B, T)
    n_completion: int,  # completion width T_c: the last T_c positions of input_ids
    temperature: float = 1.0,
    with_entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs ``(B, T_c)`` of the completion tokens under ``model`` (and entropies if asked)."""
    # Left padding shifts where each row starts, so positions come from the mask, as in generate().
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    # Only the logits that predict completion tokens are needed: skip the vocab projection of the
    # prompt (most of the sequence), which saves most of the lm_head cost.
    logits = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        logits_to_keep=n_completion + 1,
    ).logits[:, :-1, :]  # (B, T_c, V): logits at t predict token t+1
    return _select_logprobs(logits, input_ids[:, -n_completion:], temperature, with_entropy)


def _select_logprobs(
    logits: torch.Tensor,  # (B, T_c, V): logits at t predict targets[:, t]
    targets: torch.Tensor,  # (B, T_c)
    temperature: float,
    with_entropy: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    log_probs = torch.log_softmax(logits.float() / temperature, dim=-1)  # (B, T_c, V)
    token_logprobs = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, T_c)
    entropy = None
    if with_entropy:
        with torch.no_grad():
            entropy = -(log_probs.exp() * log_probs).sum(-1)  # (B, T_c)
    return token_logprobs, entropy


def grouped_completion_logprobs(
    model,
    prompt_ids: torch.Tensor,  # (P, T_p) one prompt per group, left-padded
    prompt_mask: torch.Tensor,  # (P, T_p)
    completion_ids: torch.Tensor,  # (P*G, T_c) G completions per prompt, group-major, right-padded
    completion_mask: torch.Tensor,  # (P*G, T_c)
    temperature: float = 1.0,
    with_entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Same result as :func:`completion_logprobs`, but each group's shared prompt runs once.

    GRPO samples G completions per prompt, and prompts are usually much longer than answers, so
    most of a naive forward/backward pass recomputes the same prompt G times. Here the prompt is
    run once per group with gradients, its KV cache is repeated G times, and only the completion
    tokens run per sample; gradients still reach the prompt's keys and values through the cache.
    """
    from transformers import DynamicCache

    n_groups = prompt_ids.shape[0]
    group_size = completion_ids.shape[0] // n_groups
    cache = DynamicCache()
    prompt_positions = (prompt_mask.cumsum(-1) - 1).clamp(min=0)
    first_logits = model(
        input_ids=prompt_ids,
        attention_mask=prompt_mask,
        position_ids=prompt_positions,
        past_key_values=cache,
        use_cache=True,
        logits_to_keep=1,
    ).logits  # (P, 1, V): predicts each group's first completion token
    cache.batch_repeat_interleave(group_size)  # (P, ...) -> (P*G, ...), differentiable
    prompt_len = prompt_mask.sum(-1).repeat_interleave(group_size)  # (P*G,)
    n_completion = completion_ids.shape[1]
    positions = prompt_len.unsqueeze(1) + torch.arange(n_completion, device=completion_ids.device)
    attention = torch.cat(
        [prompt_mask.repeat_interleave(group_size, dim=0), completion_mask], dim=1
    )
    rest_logits = model(
        input_ids=completion_ids,
        attention_mask=attention,
        position_ids=positions,
        past_key_values=cache,
        use_cache=True,
        logits_to_keep=n_completion,
    ).logits[:, :-1, :]  # (P*G, T_c - 1, V): logits at t predict completion token t+1
    logits = torch.cat([first_logits.repeat_interleave(group_size, dim=0), rest_logits], dim=1)
    return _select_logprobs(logits, completion_ids, temperature, with_entropy)


def clipped_policy_loss(
    logprobs: torch.Tensor,  # (B, T_c) under the current policy, with grad
    old_logprobs: torch.Tensor,  # (B, T_c) under the policy that sampled, no grad
    advantages: torch.Tensor,  # (B,) one per completion
    response_mask: torch.Tensor,  # (B, T_c) 1 where the policy produced the token
    clip_eps: float,
    is_weights: torch.Tensor | None = None,  # (B, T_c) truncated importance weights, no grad
) -> tuple[torch.Tensor, dict[str, float]]:
    """The token-mean clipped surrogate loss and its diagnostics (clip fraction, mean ratio).

    ``is_weights`` corrects for samples drawn by an engine whose weights or numerics differ from
    the learner's (see :func:`truncated_is_weights`); each token's term is scaled by its weight.
    """
    ratio = torch.exp(logprobs - old_logprobs)  # (B, T_c)
    adv = advantages.unsqueeze(1)  # (B, 1)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1 - clip_eps, 1 + clip_eps) * adv
    per_token = -torch.minimum(unclipped, clipped)
    if is_weights is not None:
        per_token = per_token * is_weights.detach()
    mask = response_mask.to(per_token.dtype)
    n_tokens = mask.sum().clamp(min=1)
    loss = (per_token * mask).sum() / n_tokens
    with torch.no_grad():
        clip_frac = (((ratio - 1).abs() > clip_eps).to(mask.dtype) * mask).sum() / n_tokens
        mean_ratio = (ratio * mask).sum() / n_tokens
    return loss, {"clip_frac": clip_frac.item(), "ratio_mean": mean_ratio.item()}


def truncated_is_weights(
    learner_logprobs: torch.Tensor,  # (B, T_c) log p_learner(token), no grad
    engine_logprobs: torch.Tensor,  # (B, T_c) log p_engine(token) reported by the engine
    cap: float,
) -> torch.Tensor:
    """min(p_learner / p_engine, cap) per token: truncated importance sampling (TIS) for samples
    from an engine that lags the learner (off-policy) or computes slightly different numbers
    (vLLM kernels, bf16). Yao et al. 2025, "Your efficient RL framework secretly brings you
    off-policy RL training"."""
    return torch.exp(learner_logprobs - engine_logprobs).clamp(max=cap)
