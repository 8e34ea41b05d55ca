"""The fixed evaluation data every analysis measures on: packed held-out windows and their mean
next-token loss. Landscapes, interpolation and activation similarity all need "L(θ) on the same
tokens", so they share this one definition."""

from __future__ import annotations

import torch

from pretraining.trainer import lm_loss


def eval_windows(
    tokenizer, corpus: str = "wikitext2-test", seq_len: int = 128, n: int = 32
) -> torch.Tensor:
    """The first ``n`` packed windows of ``corpus`` (see :mod:`pretraining.corpus`), ``(n, L)``."""
    from pretraining.corpus import load_corpus
    from pretraining.packing import pack, tokenize_documents

    eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    packed = pack(tokenize_documents(load_corpus(corpus), tokenizer), seq_len, eos)
    return torch.as_tensor(packed.windows[:n], dtype=torch.long)


@torch.no_grad()
def mean_loss(model, windows: torch.Tensor, batch_size: int = 8) -> float:
    """Mean next-token cross-entropy of ``model`` over ``windows`` (every window equally long)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total = 0.0
    for chunk in windows.split(batch_size):
        total += float(lm_loss(model, chunk.to(device))) * len(chunk)
    model.train(was_training)
    return total / len(windows)
