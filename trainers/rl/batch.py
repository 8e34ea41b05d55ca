"""Samples as tensors: one prompt per group (left-padded) and every completion (right-padded),
sliced by prompt group into mini- and micro-batches that stay under a token budget.

A batch holds ``P`` groups of ``G`` completions; row ``p * G + j`` is completion ``j`` of group
``p``. Every function takes ``G`` (``group_size``) explicitly.
"""

from __future__ import annotations

import torch

from trainers.engines.base import Completion

Batch = dict[str, torch.Tensor]


def pad_batch(completions: list[Completion], group_size: int, pad_id: int, device) -> Batch:
    """``prompt_ids``/``prompt_mask`` (P, T_p), ``completion_ids``/``completion_mask``/``loss_mask``
    (B, T_c). ``loss_mask`` is ``completion_mask`` without the env's tokens of multi-turn
    contexts (``Completion.train_mask``)."""
    prompts = [c.prompt_ids for c in completions[::group_size]]  # a group shares its prompt
    width_p = max(len(p) for p in prompts)
    width_c = max(max(len(c.token_ids) for c in completions), 1)
    prompt_ids = torch.full((len(prompts), width_p), pad_id, dtype=torch.long)  # (P, T_p)
    prompt_mask = torch.zeros_like(prompt_ids)
    for i, p in enumerate(prompts):
        prompt_ids[i, width_p - len(p) :] = torch.tensor(p)
        prompt_mask[i, width_p - len(p) :] = 1
    completion_ids = torch.full((len(completions), width_c), pad_id, dtype=torch.long)  # (B, T_c)
    completion_mask = torch.zeros_like(completion_ids)
    loss_mask = torch.zeros_like(completion_ids)
    for i, c in enumerate(completions):
        completion_ids[i, : len(c.token_ids)] = torch.tensor(c.token_ids, dtype=torch.long)
        completion_mask[i, : len(c.token_ids)] = 1
        train = c.train_mask if c.train_mask is not None else [1] * len(c.token_ids)
        loss_mask[i, : len(train)] = torch.tensor(train, dtype=torch.long)
    return {
        "prompt_ids": prompt_ids.to(device),
        "prompt_mask": prompt_mask.to(device),
        "completion_ids": completion_ids.to(device),
        "completion_mask": completion_mask.to(device),
        "loss_mask": loss_mask.to(device),
    }


def group_rows(groups: list[int], group_size: int) -> torch.Tensor:
    """The completion rows of prompt groups ``groups``."""
    g = group_size
    return torch.tensor([p * g + j for p in groups for j in range(g)], dtype=torch.long)


def slice_groups(batch: Batch, groups: list[int], group_size: int) -> Batch:
    """The prompt groups ``groups`` of ``batch`` (what a forward pass takes)."""
    idx = torch.tensor(groups, dtype=torch.long)
    rows = group_rows(groups, group_size)
    prompt_mask = batch["prompt_mask"][idx]
    # Prompts are left-padded to the batch's longest: drop the columns that are padding in
    # every prompt of this slice (positions come from the mask, so nothing else changes).
    keep = int(prompt_mask.any(0).nonzero()[0]) if prompt_mask.any() else 0
    return {
        "prompt_ids": batch["prompt_ids"][idx][:, keep:],
        "prompt_mask": prompt_mask[:, keep:],
        "completion_ids": batch["completion_ids"][rows],
        "completion_mask": batch["completion_mask"][rows],
    }


def split_evenly(items: list[int], n: int) -> list[list[int]]:
    """``items`` split into ``n`` contiguous, nearly equal, non-empty parts (n <= len)."""
    n = max(1, min(n, len(items)))
    size, extra = divmod(len(items), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (i < extra)
        out.append(items[start:end])
        start = end
    return out


def fit_token_budget(
    chunks: list[list[int]], batch: Batch, group_size: int, budget: int
) -> list[list[int]]:
    """Split chunks of prompt groups so that none holds more than ``budget`` tokens (0: no
    limit): as computed, every prompt padded to the chunk's longest and every completion to the
    batch's width (a group is never split)."""
    if not budget:
        return chunks
    prompt = batch["prompt_mask"].sum(1).tolist()
    rows = group_size * batch["completion_ids"].shape[1]
    out = []
    for chunk in chunks:
        part, longest = [], 0
        for group in chunk:
            wider = max(longest, prompt[group])
            if part and (len(part) + 1) * (wider + rows) > budget:
                out.append(part)
                part, wider = [], prompt[group]
            part.append(group)
            longest = wider
        if part:
            out.append(part)
    return out


def engine_logprobs(completions: list[Completion], width: int, device) -> torch.Tensor | None:
    """The engine's log-probs as a (B, T_c) tensor, or None if it reported none."""
    if not all(len(c.logprobs) == len(c.token_ids) for c in completions):
        return None
    out = torch.zeros(len(completions), width)
    for i, c in enumerate(completions):
        out[i, : len(c.logprobs)] = torch.tensor(c.logprobs)
    return out.to(device)


def trained_tokens(completion: Completion) -> int:
    """The number of tokens the policy generated (multi-turn contexts hold the env's too)."""
    if completion.train_mask is None:
        return len(completion.token_ids)
    return sum(completion.train_mask)
