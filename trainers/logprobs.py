"""Log-probabilities of sampled completions under the learner's model.

:func:`completion_logprobs` runs each (prompt, completion) row in full; :func:`grouped_completion_logprobs`
gives the same numbers and gradients but runs each group's shared prompt once (GRPO samples G
completions per prompt, and prompts are usually much longer than answers).

``chunk`` > 0 computes them from the LM head a chunk of tokens at a time
(:mod:`trainers.chunked_head`: the same values and gradients, without the (rows, T, vocab) logits);
0 keeps the full logits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trainers.chunked_head import lm_head_outputs


def completion_logprobs(
    model,
    input_ids: torch.Tensor,  # (B, T) prompt (left-padded) + completion (right-padded)
    attention_mask: torch.Tensor,  # (B, T)
    n_completion: int,  # completion width T_c: the last T_c positions of input_ids
    temperature: float = 1.0,
    with_entropy: bool = False,
    chunk: int = 0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs ``(B, T_c)`` of the completion tokens under ``model`` (and entropies if asked)."""
    # Left padding shifts where each row starts, so positions come from the mask, as in generate().
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    targets = input_ids[:, -n_completion:]
    # Only the positions that predict completion tokens are needed: skip the vocab projection of
    # the prompt (most of the sequence), which saves most of the lm_head cost.
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask,
              "position_ids": position_ids, "logits_to_keep": n_completion + 1}  # fmt: skip
    if chunk:
        with lm_head_outputs(model, targets, temperature, chunk):
            out = model(**inputs).logits  # (B, T_c, 2): log-prob and entropy
        return out[..., 0], (out[..., 1].detach() if with_entropy else None)
    logits = model(**inputs).logits[:, :-1, :]  # (B, T_c, V): logits at t predict token t+1
    return _select_logprobs(logits, targets, temperature, with_entropy)


def _select_logprobs(
    logits: torch.Tensor,  # (B, T_c, V): logits at t predict targets[:, t]
    targets: torch.Tensor,  # (B, T_c)
    temperature: float,
    with_entropy: bool,
    entropy_grad: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    log_probs = torch.log_softmax(logits.float() / temperature, dim=-1)  # (B, T_c, V)
    token_logprobs = log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, T_c)
    entropy = None
    if with_entropy:
        with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
            entropy = -(log_probs.exp() * log_probs).sum(-1)  # (B, T_c)
    return token_logprobs, entropy


@dataclass
class GroupedOutput:
    """What one grouped pass gives, each ``(P*G, T_c)`` and aligned with the completion tokens."""

    logprobs: torch.Tensor
    entropy: torch.Tensor | None = None
    hidden: torch.Tensor | None = None  # (P*G, T_c, H): the state each token was sampled from


def grouped_completion_logprobs(
    model,
    prompt_ids: torch.Tensor,  # (P, T_p) one prompt per group, left-padded
    prompt_mask: torch.Tensor,  # (P, T_p)
    completion_ids: torch.Tensor,  # (P*G, T_c) G completions per prompt, group-major, right-padded
    completion_mask: torch.Tensor,  # (P*G, T_c)
    temperature: float = 1.0,
    with_entropy: bool = False,
    chunk: int = 0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Same result as :func:`completion_logprobs`, but each group's shared prompt runs once.

    The prompt is run once per group with gradients, its KV cache is repeated G times, and only
    the completion tokens run per sample; gradients still reach the prompt's keys and values
    through the cache.
    """
    out = grouped_forward(
        model,
        prompt_ids,
        prompt_mask,
        completion_ids,
        completion_mask,
        temperature=temperature,
        with_entropy=with_entropy,
        chunk=chunk,
    )
    return out.logprobs, out.entropy


def grouped_forward(
    model,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    temperature: float = 1.0,
    with_entropy: bool = False,
    entropy_grad: bool = False,
    with_hidden: bool = False,
    chunk: int = 0,
) -> GroupedOutput:
    """:func:`grouped_completion_logprobs` with the extras a learner may need: entropies that
    carry gradients (an entropy bonus) and the last hidden states (a value head)."""
    from transformers import DynamicCache

    n_groups = prompt_ids.shape[0]
    group_size = completion_ids.shape[0] // n_groups
    cache = DynamicCache()
    prompt_positions = (prompt_mask.cumsum(-1) - 1).clamp(min=0)
    first = _run(
        model,
        {"input_ids": prompt_ids, "attention_mask": prompt_mask, "position_ids": prompt_positions,
         "past_key_values": cache, "use_cache": True, "logits_to_keep": 1,
         "output_hidden_states": with_hidden},
        completion_ids[:, :1], temperature, chunk, repeat=group_size,
    )  # fmt: skip  # predicts each group's first completion token
    cache.batch_repeat_interleave(group_size)  # (P, ...) -> (P*G, ...), differentiable
    prompt_len = prompt_mask.sum(-1).repeat_interleave(group_size)  # (P*G,)
    n_completion = completion_ids.shape[1]
    positions = prompt_len.unsqueeze(1) + torch.arange(n_completion, device=completion_ids.device)
    attention = torch.cat(
        [prompt_mask.repeat_interleave(group_size, dim=0), completion_mask], dim=1
    )
    rest = _run(
        model,
        {"input_ids": completion_ids, "attention_mask": attention, "position_ids": positions,
         "past_key_values": cache, "use_cache": True, "logits_to_keep": n_completion,
         "output_hidden_states": with_hidden},
        completion_ids[:, 1:], temperature, chunk,
    )  # fmt: skip  # position t predicts completion token t+1
    if chunk:
        out = torch.cat([first.logits, rest.logits], dim=1)  # (P*G, T_c, 2)
        logprobs, entropy = out[..., 0], None
        if with_entropy:
            entropy = out[..., 1] if entropy_grad else out[..., 1].detach()
    else:
        logits = torch.cat(
            [first.logits.repeat_interleave(group_size, dim=0), rest.logits[:, :-1, :]], dim=1
        )
        logprobs, entropy = _select_logprobs(
            logits, completion_ids, temperature, with_entropy, entropy_grad
        )
    hidden = None
    if with_hidden:
        hidden = torch.cat(
            [
                first.hidden_states[-1][:, -1:, :].repeat_interleave(group_size, dim=0),
                rest.hidden_states[-1][:, :-1, :],
            ],
            dim=1,
        )
    return GroupedOutput(logprobs, entropy, hidden)


def rowwise_forward(
    model,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    completion_ids: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    temperature: float = 1.0,
    with_entropy: bool = False,
    entropy_grad: bool = False,
    with_hidden: bool = False,
    chunk: int = 0,
) -> GroupedOutput:
    """:func:`grouped_forward`'s result from one pass per completion, its prompt repeated: the
    path for activation checkpointing, under which transformers drops the KV cache that the
    shared-prompt pass needs."""
    group_size = completion_ids.shape[0] // prompt_ids.shape[0]
    n_completion = completion_ids.shape[1]
    input_ids = torch.cat([prompt_ids.repeat_interleave(group_size, 0), completion_ids], 1)
    mask = torch.cat([prompt_mask.repeat_interleave(group_size, 0), completion_mask], 1)
    inputs = {"input_ids": input_ids, "attention_mask": mask,
              "position_ids": (mask.cumsum(-1) - 1).clamp(min=0),
              "logits_to_keep": n_completion + 1, "output_hidden_states": with_hidden}  # fmt: skip
    out = _run(model, inputs, completion_ids, temperature, chunk)
    if chunk:  # (B, T_c, 2)
        logprobs, entropy = out.logits[..., 0], out.logits[..., 1] if with_entropy else None
        if entropy is not None and not entropy_grad:
            entropy = entropy.detach()
    else:
        logprobs, entropy = _select_logprobs(
            out.logits[:, :-1], completion_ids, temperature, with_entropy, entropy_grad
        )
    hidden = out.hidden_states[-1][:, -n_completion - 1 : -1] if with_hidden else None
    return GroupedOutput(logprobs, entropy, hidden)


def _run(model, inputs: dict, targets: torch.Tensor, temperature: float, chunk: int, repeat=1):
    """``model(**inputs)``; with ``chunk``, its ``logits`` are the log-probs and entropies of
    ``targets`` (:func:`trainers.chunked_head.lm_head_outputs`)."""
    if not chunk:
        return model(**inputs)
    with lm_head_outputs(model, targets, temperature, chunk, repeat=repeat):
        return model(**inputs)
