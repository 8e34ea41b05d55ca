"""Per-token log-probs and entropies straight from the last hidden states and the LM head, a
chunk of tokens at a time, so peak memory is O(chunk x vocab) instead of O(tokens x vocab).

With Qwen3's 151,936-token vocabulary one batch of 64 x 1,024 tokens of fp32 logits is 40 GB,
before ``log_softmax`` makes a second copy. :class:`ChunkedTokenLogprobs` never holds more than
one chunk's logits: the forward keeps only each token's log-sum-exp, and the backward recomputes
each chunk's logits to form its gradient.

Why our own autograd function: liger-kernel's fused linear cross-entropy does the same on GPUs
(Triton), but it returns a reduced loss rather than per-token log-probs and entropies, runs on
CUDA only, and folds the gradient into the forward, which RL losses cannot allow (the weight of
each token's log-prob, its advantage times a clipped ratio, is only known after the forward).
:func:`lm_head_outputs` swaps the head's ``forward`` for the call instead of calling the head
from outside, so FSDP2's hooks on the root module still gather and reduce the head's weight.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

DEFAULT_CHUNK = 512


class ChunkedTokenLogprobs(torch.autograd.Function):
    """``(logprobs, entropy)``, each (N,), of ``targets`` (N,) under
    ``softmax((hidden @ weight.T + bias) / temperature)``, computed in fp32 (fp64 for fp64)."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, targets, temperature: float, chunk: int):
        n, acc = hidden.shape[0], _accumulation_dtype(hidden)
        logprobs = hidden.new_empty(n, dtype=acc)
        entropy = hidden.new_empty(n, dtype=acc)
        lse = hidden.new_empty(n, dtype=acc)
        w = weight.to(acc)  # no copy for fp32 weights
        for start in range(0, n, chunk):
            part = slice(start, start + chunk)
            log_p = _logits(hidden[part], w, bias, temperature)  # (c, V), two such at most
            lse[part] = torch.logsumexp(log_p, dim=-1)
            log_p.sub_(lse[part].unsqueeze(-1))
            logprobs[part] = log_p.gather(-1, targets[part].unsqueeze(-1)).squeeze(-1)
            # -sum p log p, summed as the full path sums it (the product in p's buffer)
            entropy[part] = -torch.exp(log_p).mul_(log_p).sum(-1)
        # One chunk holds the whole batch: keep its log-probs (as the full path keeps its
        # log_softmax) instead of recomputing them, so small batches pay nothing for chunking.
        kept = log_p if n <= chunk else None
        ctx.save_for_backward(hidden, weight, bias, targets, torch.stack([lse, entropy]), kept)
        ctx.temperature, ctx.chunk = temperature, chunk
        return logprobs, entropy

    @staticmethod
    def backward(ctx, grad_logprobs, grad_entropy):
        hidden, weight, bias, targets, (lse, entropy), kept = ctx.saved_tensors
        t, acc = ctx.temperature, _accumulation_dtype(hidden)
        w = weight.to(acc)
        grad_hidden = torch.empty_like(hidden, dtype=acc)
        grad_weight = torch.zeros_like(weight, dtype=acc)
        grad_bias = torch.zeros_like(bias, dtype=acc) if bias is not None else None
        for start in range(0, hidden.shape[0], ctx.chunk):
            part = slice(start, start + ctx.chunk)
            g_lp, g_ent = grad_logprobs[part].unsqueeze(-1), grad_entropy[part].unsqueeze(-1)
            if kept is not None:  # the only chunk: log_p kept from the forward
                log_p = kept.clone()
            else:
                log_p = _logits(hidden[part], w, bias, t)
                log_p.sub_(lse[part].unsqueeze(-1))
            p = torch.exp(log_p)
            # d logprob / dz = onehot(target) - p;  d entropy / dz = -p * (log p + H), so
            # dL/dz = onehot * g_lp - p * (g_lp + g_ent * (log p + H)), built in place.
            factor = log_p.add_(entropy[part].unsqueeze(-1)).mul_(g_ent).add_(g_lp)
            grad_z = p.mul_(factor).neg_()
            del factor, log_p
            grad_z.scatter_add_(-1, targets[part].unsqueeze(-1), g_lp)
            if t != 1:
                grad_z.div_(t)
            grad_hidden[part] = grad_z @ w
            grad_weight.addmm_(grad_z.T, hidden[part].to(acc))
            if grad_bias is not None:
                grad_bias += grad_z.sum(0)
        return (
            grad_hidden.to(hidden.dtype),
            grad_weight.to(weight.dtype),
            grad_bias.to(bias.dtype) if grad_bias is not None else None,
            None,
            None,
            None,
        )


def _accumulation_dtype(hidden: torch.Tensor) -> torch.dtype:
    """fp32 for fp32 and half-precision models, fp64 for fp64 ones."""
    return torch.promote_types(hidden.dtype, torch.float32)


def _logits(hidden, weight, bias, temperature: float) -> torch.Tensor:
    """(c, V) logits in ``weight``'s (accumulation) dtype, scaled by the temperature."""
    with torch.autocast(hidden.device.type, enabled=False):
        z = hidden.to(weight.dtype) @ weight.T
        if bias is not None:
            z.add_(bias.to(weight.dtype))
    return z.div_(temperature) if temperature != 1 else z


def chunked_token_logprobs(
    hidden: torch.Tensor,  # (..., H)
    weight: torch.Tensor,  # (V, H)
    bias: torch.Tensor | None,
    targets: torch.Tensor,  # (...)
    temperature: float = 1.0,
    chunk: int = DEFAULT_CHUNK,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logprobs, entropy)`` shaped like ``targets``; both carry gradients."""
    shape = targets.shape
    lp, ent = ChunkedTokenLogprobs.apply(
        hidden.reshape(-1, hidden.shape[-1]), weight, bias, targets.reshape(-1),
        float(temperature), int(chunk),
    )  # fmt: skip
    return lp.view(shape), ent.view(shape)


@contextmanager
def lm_head_outputs(model, targets: torch.Tensor, temperature: float, chunk: int, repeat=1):
    """While active, ``model(...)``'s ``logits`` are ``(rows, K, 2)``: the log-prob of
    ``targets`` (rows, K) and the entropy at each of the first K kept positions. ``repeat``:
    each hidden row stands for that many target rows (a prompt shared by a group)."""
    head = model.get_output_embeddings()

    def forward(hidden: torch.Tensor) -> torch.Tensor:
        if repeat > 1:
            hidden = hidden.repeat_interleave(repeat, dim=0)
        hidden = hidden[:, : targets.shape[1]]
        lp, ent = chunked_token_logprobs(
            hidden, head.weight, head.bias, targets, temperature, chunk
        )
        return torch.stack([lp, ent], dim=-1)

    head.forward = forward  # an instance attribute: the module's hooks still run around it
    try:
        yield
    finally:
        del head.forward
