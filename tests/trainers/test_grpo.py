import math

import pytest
import torch

from trainers.algos import clipped_policy_loss, group_advantages
from trainers.logprobs import completion_logprobs, grouped_completion_logprobs


def test_group_advantages_by_hand():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [2.0, 2.0, 2.0, 2.0]])
    adv = group_advantages(rewards, eps=0.0)
    std = math.sqrt(4 * 0.25 / 3)  # unbiased std of (1, 0, 0, 1)
    assert adv[0].tolist() == pytest.approx([0.5 / std, -0.5 / std, -0.5 / std, 0.5 / std])
    assert adv[1].tolist() == [0.0, 0.0, 0.0, 0.0]  # equal rewards: no signal, no NaN
    assert group_advantages(rewards, scale=False)[0].tolist() == [0.5, -0.5, -0.5, 0.5]


def test_clipped_loss_by_hand():
    ratio = torch.tensor([[1.5, 0.5], [1.1, 1.0]])
    old = torch.zeros(2, 2)
    logprobs = torch.log(ratio)
    adv = torch.tensor([1.0, -1.0])
    mask = torch.tensor([[1, 1], [1, 0]])
    loss, diag = clipped_policy_loss(logprobs, old, adv, mask, clip_low=0.2)
    # row 0 (A=+1): min(1.5, 1.2) = 1.2 and min(0.5, 0.8) = 0.5; row 1 (A=-1): min(-1.1, -1.1)
    assert loss.item() == pytest.approx((-1.2 - 0.5 + 1.1) / 3)
    # Only 1.5 with A > 0 is clipped (zero gradient); 0.5 with A > 0 keeps its gradient.
    assert diag["clip_frac"] == pytest.approx(1 / 3) and diag["clip_frac_low"] == 0
    assert diag["ratio_mean"] == pytest.approx((1.5 + 0.5 + 1.1) / 3)


def test_clipped_loss_gradient_is_policy_gradient_at_ratio_one():
    logprobs = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    loss, _ = clipped_policy_loss(
        logprobs, logprobs.detach(), torch.tensor([2.0]), torch.ones(1, 2), 0.2
    )
    loss.backward()
    # d/dlogp of -(exp(logp - old) * A) / n_tokens at ratio 1 is -A / n_tokens
    assert logprobs.grad.tolist() == [[-1.0, -1.0]]


def test_completion_logprobs_match_unpadded_forward(tiny_lm):
    model, _ = tiny_lm
    prompts = [[5, 6, 7, 8, 9], [11, 12]]
    answers = [[20, 21, 22], [30]]
    width_p, width_c = 5, 3
    input_ids = torch.zeros(2, width_p + width_c, dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    for i, (p, a) in enumerate(zip(prompts, answers, strict=True)):
        input_ids[i, width_p - len(p) : width_p] = torch.tensor(p)
        input_ids[i, width_p : width_p + len(a)] = torch.tensor(a)
        attention[i, width_p - len(p) : width_p + len(a)] = 1
    with torch.no_grad():
        batched, entropy = completion_logprobs(
            model, input_ids, attention, width_c, temperature=0.7, with_entropy=True
        )
        for i, (p, a) in enumerate(zip(prompts, answers, strict=True)):
            seq = torch.tensor([p + a])
            logits = model(seq).logits[0, len(p) - 1 : -1] / 0.7
            expected = (
                torch.log_softmax(logits, -1).gather(-1, torch.tensor(a).unsqueeze(-1)).squeeze(-1)
            )
            torch.testing.assert_close(batched[i, : len(a)], expected, atol=1e-5, rtol=1e-5)
    assert entropy.shape == (2, 3) and (entropy[attention[:, width_p:] == 1] > 0).all()


def test_grouped_logprobs_and_gradients_equal_the_full_sequence_pass(tiny_lm):
    model, _ = tiny_lm
    group = 2
    prompt_ids = torch.tensor([[0, 0, 5, 6, 7], [11, 12, 13, 14, 15]])  # (P, T_p), left-padded
    prompt_mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    completion_ids = torch.tensor([[20, 21, 22], [23, 0, 0], [30, 31, 0], [32, 33, 34]])
    completion_mask = torch.tensor([[1, 1, 1], [1, 0, 0], [1, 1, 0], [1, 1, 1]])
    grouped, _ = grouped_completion_logprobs(
        model, prompt_ids, prompt_mask, completion_ids, completion_mask, temperature=0.7
    )
    full_ids = torch.cat([prompt_ids.repeat_interleave(group, 0), completion_ids], 1)
    full_mask = torch.cat([prompt_mask.repeat_interleave(group, 0), completion_mask], 1)
    plain, _ = completion_logprobs(model, full_ids, full_mask, 3, temperature=0.7)
    real = completion_mask == 1
    torch.testing.assert_close(grouped[real], plain[real], atol=1e-5, rtol=1e-5)
    weight = model.model.layers[0].self_attn.k_proj.weight  # reached only through the prompt cache
    (g_grouped,) = torch.autograd.grad(grouped[real].sum(), weight)
    (g_plain,) = torch.autograd.grad(plain[real].sum(), weight)
    assert g_plain.abs().max() > 0
    torch.testing.assert_close(g_grouped, g_plain, atol=1e-4, rtol=1e-3)
