"""Summed token log-probabilities of texts and of continuations under a causal LM, batched with
right padding and no gradients: the scorer behind zero-shot BLiMP and label-word evaluation."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from assay.errors import ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def _start_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    # The BOS gives the first real token a context to be scored in; without one it goes unscored.
    return [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []


def _tail_logprobs(
    model: PreTrainedModel,
    sequences: list[list[int]],
    n_tail: list[int],
    pad_id: int,
    batch_size: int,
) -> list[float]:
    """Sum of the log-probs of the last ``n_tail[i]`` tokens of each sequence given the rest."""
    device = next(model.parameters()).device
    # Longest first: similar lengths share a batch (little padding) and a too-large batch fails
    # at once rather than at the end.
    order = sorted(range(len(sequences)), key=lambda i: -len(sequences[i]))
    out = [0.0] * len(sequences)
    was_training = model.training
    model.eval()  # no dropout: scores must not depend on the mode a trainer left the model in
    try:
        with torch.no_grad():
            for first in range(0, len(order), batch_size):
                rows = order[first : first + batch_size]
                lengths = torch.tensor([len(sequences[i]) for i in rows], device=device)  # (B,)
                width = int(lengths.max())
                input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)  # (B, T)
                for r, i in enumerate(rows):
                    input_ids[r, : len(sequences[i])] = torch.tensor(sequences[i])
                input_ids = input_ids.to(device)
                positions = torch.arange(width, device=device)  # (T,)
                attention_mask = (positions < lengths[:, None]).long()  # (B, T), right padding
                logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
                logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)  # (B, T-1, V)
                targets = input_ids[:, 1:]  # (B, T-1): logits at t predict token t+1
                token_logprobs = logprobs.gather(-1, targets[..., None]).squeeze(-1)  # (B, T-1)
                tail = torch.tensor([n_tail[i] for i in rows], device=device)  # (B,)
                target_pos = positions[1:]  # (T-1,)
                tail_mask = (target_pos >= (lengths - tail)[:, None]) & (
                    target_pos < lengths[:, None]
                )  # (B, T-1)
                sums = (token_logprobs * tail_mask).sum(-1).tolist()  # (B,)
                for r, i in enumerate(rows):
                    out[i] = sums[r]
    finally:
        model.train(was_training)
    return out


def _pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    # Padded positions are masked out and never scored, so any id will do.
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def sequence_logprob(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    batch_size: int = 16,
) -> list[float]:
    """Sum of the token log-probs of each text, given the tokenizer's BOS if it has one (else
    the first token is not scored)."""
    if not texts:
        return []
    start = _start_ids(tokenizer)
    ids = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    sequences = [start + t for t in ids]
    n_tail = [min(len(t), len(s) - 1) for t, s in zip(ids, sequences, strict=True)]
    return _tail_logprobs(model, sequences, n_tail, _pad_id(tokenizer), batch_size)


def _seam(context: str, continuation: str) -> tuple[str, str]:
    """Where the context meets the continuation, put the space on the continuation's side, as BPE
    sees " word" in running text: a context's trailing space moves over, and a space is added
    when neither side has whitespace at the seam."""
    if context.endswith(" "):
        return context[:-1], " " + continuation
    if context and not context[-1].isspace() and not continuation[:1].isspace():
        return context, " " + continuation
    return context, continuation


def continuation_logprob(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    contexts: Sequence[str],
    continuations: Sequence[str],
    batch_size: int = 16,
) -> list[float]:
    """Sum of log p(continuation tokens | BOS + context) for each pair.

    The two are tokenized separately and their ids concatenated, so a BPE merge across the seam
    cannot move context characters into the scored tail (see :func:`_seam` for the space)."""
    if len(contexts) != len(continuations):
        raise ConfigError(
            f"continuation_logprob got {len(contexts)} contexts but {len(continuations)} "
            "continuations; pass one continuation per context."
        )
    if not contexts:
        return []
    seams = [_seam(c, x) for c, x in zip(contexts, continuations, strict=True)]
    context_ids = tokenizer([c for c, _ in seams], add_special_tokens=False)["input_ids"]
    tail_ids = tokenizer([x for _, x in seams], add_special_tokens=False)["input_ids"]
    start = _start_ids(tokenizer)
    sequences = [start + c + x for c, x in zip(context_ids, tail_ids, strict=True)]
    n_tail = [min(len(x), len(s) - 1) for x, s in zip(tail_ids, sequences, strict=True)]
    return _tail_logprobs(model, sequences, n_tail, _pad_id(tokenizer), batch_size)
