"""Chunked log-probs and entropies (trainers.chunked_head) against the full-logits path:
same values and gradients, for chunk sizes that do and do not divide the token count."""

import copy

import pytest
import torch

from trainers.chunked_head import chunked_token_logprobs
from trainers.logprobs import completion_logprobs, grouped_forward


def close(actual, expected):
    """Equal relative to the tensor's scale (the largest difference over the largest magnitude):
    to 1e-5 in float32, whose matmuls of different shapes sum in different orders (tens of
    units in the last place, more on some CPUs than others: 3.7e-6 measured on an AMD EPYC),
    and to 1e-12 in float64, which shows the maths is exact."""
    tol = 1e-12 if expected.dtype == torch.float64 else 1e-5
    scale = expected.abs().max().clamp(min=1e-30)
    err = ((actual - expected).abs().max() / scale).item()
    assert err <= tol, err


def _full(hidden, weight, bias, targets, temperature):
    logits = hidden @ weight.T + (bias if bias is not None else 0)
    log_p = torch.log_softmax(logits / temperature, dim=-1)
    lp = log_p.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return lp, -(log_p.exp() * log_p).sum(-1)


@pytest.mark.parametrize("chunk", [1, 4, 7, 12, 100])  # 12 tokens: 4 divides, 7 does not
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_values_and_gradients_equal_full_logits(chunk, with_bias, dtype):
    g = torch.Generator().manual_seed(chunk)
    hidden = torch.randn(3, 4, 16, generator=g, dtype=dtype).requires_grad_()
    weight = torch.randn(50, 16, generator=g, dtype=dtype).requires_grad_()
    bias = torch.randn(50, generator=g, dtype=dtype).requires_grad_() if with_bias else None
    targets = torch.randint(50, (3, 4), generator=g)
    w_lp, w_ent = torch.randn(2, 3, 4, generator=g, dtype=dtype)
    leaves = [hidden, weight] + ([bias] if with_bias else [])

    grads = []
    for fn in (_full, lambda *a: chunked_token_logprobs(*a, chunk=chunk)):
        lp, ent = fn(hidden, weight, bias, targets, 0.7)
        # A loss that weighs every token's log-prob and entropy differently, as RL losses do.
        grads.append((lp, ent, torch.autograd.grad((lp * w_lp + ent * w_ent).sum(), leaves)))
    (lp_a, ent_a, g_a), (lp_b, ent_b, g_b) = grads
    close(lp_b, lp_a)
    close(ent_b, ent_a)
    for a, b in zip(g_a, g_b, strict=True):
        close(b, a)


def test_half_precision_inputs_get_half_precision_gradients():
    hidden = torch.randn(5, 8, dtype=torch.bfloat16, requires_grad=True)
    weight = torch.randn(20, 8, dtype=torch.bfloat16, requires_grad=True)
    lp, ent = chunked_token_logprobs(hidden, weight, None, torch.randint(20, (5,)), chunk=2)
    assert lp.dtype == torch.float32  # computed in fp32 whatever the weights
    (lp.sum() + ent.sum()).backward()
    assert hidden.grad.dtype == weight.grad.dtype == torch.bfloat16


def _batch(model):
    g = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    prompt_ids = torch.randint(vocab, (2, 6), generator=g)
    prompt_mask = torch.ones_like(prompt_ids)
    prompt_mask[1, :2] = 0  # left padding
    completion_ids = torch.randint(vocab, (6, 5), generator=g)  # 2 groups of 3
    completion_mask = torch.ones_like(completion_ids)
    completion_mask[4, 3:] = 0  # right padding
    return prompt_ids, prompt_mask, completion_ids, completion_mask


@pytest.mark.parametrize("chunk", [4, 30])  # 30 tokens in all: 4 does not divide it
def test_grouped_forward_chunked_equals_full(tiny_lm, chunk):
    base = tiny_lm[0]
    runs = []
    for c in (0, chunk):
        model = copy.deepcopy(base).train()
        out = grouped_forward(
            model, *_batch(model), temperature=0.8, with_entropy=True, entropy_grad=True,
            with_hidden=True, chunk=c,
        )  # fmt: skip
        (out.logprobs.sum() - 0.1 * out.entropy.sum() + out.hidden.mean()).backward()
        grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
        runs.append((out, grads))
    (full, g_full), (chunked, g_chunked) = runs
    close(chunked.logprobs, full.logprobs)
    close(chunked.entropy, full.entropy)
    torch.testing.assert_close(chunked.hidden, full.hidden)
    assert g_full.keys() == g_chunked.keys() and "model.embed_tokens.weight" in g_full
    for name in g_full:
        close(g_chunked[name], g_full[name])


def test_completion_logprobs_chunked_equals_full(tiny_lm):
    model = tiny_lm[0]
    prompt_ids, prompt_mask, completion_ids, completion_mask = _batch(model)
    ids = torch.cat([prompt_ids.repeat_interleave(3, 0), completion_ids], dim=1)
    mask = torch.cat([prompt_mask.repeat_interleave(3, 0), completion_mask], dim=1)
    with torch.no_grad():
        full = completion_logprobs(model, ids, mask, 5, 0.9, with_entropy=True)
        chunked = completion_logprobs(model, ids, mask, 5, 0.9, with_entropy=True, chunk=7)
    for a, b in zip(full, chunked, strict=True):
        close(b, a)


def test_head_is_restored_after_a_chunked_pass(tiny_lm):
    model = tiny_lm[0]
    ids = torch.tensor([[3, 4, 5, 6]])
    with torch.no_grad():
        completion_logprobs(model, ids, torch.ones_like(ids), 2, chunk=1)
        logits = model(ids).logits
    assert logits.shape == (1, 4, model.config.vocab_size)
