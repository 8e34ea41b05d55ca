"""Every loss and advantage estimator against values worked out by hand from its formula."""

import math

import pytest
import torch

from trainers.algos import (
    aggregate,
    clipped_policy_loss,
    dr_grpo_advantages,
    gae,
    group_advantages,
    kl_estimate,
    overlong_penalty,
    reinforce_pp_advantages,
    rloo_advantages,
    sequence_ratios,
    value_loss,
    varied_groups,
)
from trainers.algos.ppo import whiten


def _close(actual, expected, atol=1e-6):
    torch.testing.assert_close(actual, torch.tensor(expected), atol=atol, rtol=1e-5)


def _loss(ratios, advantages, mask=None, **kwargs):
    logprobs = torch.log(torch.tensor(ratios)).requires_grad_(True)
    mask = torch.ones_like(logprobs) if mask is None else torch.tensor(mask)
    loss, stats = clipped_policy_loss(
        logprobs, torch.zeros_like(logprobs), torch.tensor(advantages), mask, **kwargs
    )
    loss.backward()
    return loss.item(), logprobs.grad, stats


def test_dapo_clip_higher_clips_only_above_one_plus_clip_high():
    # A = +1: 1.25 is inside 1 + 0.28, 1.30 is above it; A = -1: 0.85 inside, 0.75 below 0.8.
    loss, grad, stats = _loss(
        [[1.25, 1.30], [0.85, 0.75]], [1.0, -1.0], clip_low=0.2, clip_high=0.28
    )
    # -min(rA, clip(r)A): row 0: -(1.25) and -(1.28); row 1: -(-0.85) and -(-0.80)... but
    # min(-0.75, -0.80) = -0.80, so the low clip is active for 0.75.
    assert loss == pytest.approx((-1.25 - 1.28 + 0.85 + 0.80) / 4)
    # Clipped tokens get no gradient; d/dlogp(-r A)/4 = -r A / 4 elsewhere.
    _close(grad, [[-1.25 / 4, 0.0], [0.85 / 4, 0.0]])
    assert stats["clip_frac_high"] == pytest.approx(1 / 4)
    assert stats["clip_frac_low"] == pytest.approx(1 / 4)
    # The symmetric GRPO clip (0.2) would also have clipped 1.25:
    _, grad_sym, _ = _loss([[1.25, 1.30], [0.85, 0.75]], [1.0, -1.0], clip_low=0.2)
    assert grad_sym[0, 0] == 0.0


def test_aggregations_by_hand():
    x = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    assert aggregate(x, mask, "token-mean").item() == pytest.approx(10 / 4)
    assert aggregate(x, mask, "seq-mean-token-mean").item() == pytest.approx((2 + 4) / 2)
    assert aggregate(x, mask, "seq-sum", constant=8).item() == pytest.approx(10 / (2 * 8))
    # A given denominator replaces the batch's own (micro-batches adding up to a whole).
    assert aggregate(x, mask, "token-mean", denom=20).item() == pytest.approx(0.5)


def test_grpo_dr_grpo_rloo_reinforce_pp_advantages_by_hand():
    r = torch.tensor([[1.0, 0.0, 0.0, 1.0], [3.0, 1.0, 1.0, 1.0]])
    std0 = math.sqrt(4 * 0.25 / 3)  # unbiased std of (1, 0, 0, 1)
    std1 = math.sqrt((1.5**2 + 3 * 0.5**2) / 3)  # of (3, 1, 1, 1), mean 1.5
    grpo = group_advantages(r, eps=0.0)
    assert grpo[0].tolist() == pytest.approx([0.5 / std0, -0.5 / std0, -0.5 / std0, 0.5 / std0])
    assert grpo[1].tolist() == pytest.approx([1.5 / std1, -0.5 / std1, -0.5 / std1, -0.5 / std1])
    assert dr_grpo_advantages(r).tolist() == [[0.5, -0.5, -0.5, 0.5], [1.5, -0.5, -0.5, -0.5]]
    # RLOO: r_i minus the mean of the other three.
    _close(
        rloo_advantages(r),
        [[1 - 1 / 3, 0 - 2 / 3, 0 - 2 / 3, 1 - 1 / 3], [3 - 1, 1 - 5 / 3, 1 - 5 / 3, 1 - 5 / 3]],
    )
    # REINFORCE++ baseline: centre per group, then normalise over the whole batch.
    centred = [0.5, -0.5, -0.5, 0.5, 1.5, -0.5, -0.5, -0.5]
    mean = sum(centred) / 8
    std = math.sqrt(sum((c - mean) ** 2 for c in centred) / 7)
    expected = [(c - mean) / std for c in centred]
    assert reinforce_pp_advantages(r).flatten().tolist() == pytest.approx(expected, rel=1e-6)


def test_dr_grpo_loss_sums_tokens_over_a_constant():
    # Dr. GRPO: -sum_{i,t} r A / (B * L_max), no 1/|y_i|; at ratio 1 the loss is -sum(A*|y|)/(B L).
    adv = dr_grpo_advantages(torch.tensor([[1.0, 0.0]])).flatten()  # (0.5, -0.5)
    mask = [[1, 1, 1], [1, 0, 0]]
    loss, grad, _ = _loss(
        [[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]], adv.tolist(), mask, aggregation="seq-sum", constant=4
    )
    assert loss == pytest.approx(-(0.5 * 3 - 0.5 * 1) / (2 * 4))
    _close(grad, [[-0.5 / 8] * 3, [0.5 / 8, 0.0, 0.0]])


def test_gspo_sequence_ratio_and_loss_by_hand():
    logprobs = torch.tensor([[0.2, 0.4, 9.0]], requires_grad=True)
    mask = torch.tensor([[1, 1, 0]])
    s = sequence_ratios(logprobs, torch.zeros(1, 3), mask)
    assert s.item() == pytest.approx(math.exp(0.3))  # exp(mean of 0.2 and 0.4); padding ignored
    # A = +1 and s = 1.35 > 1 + 4e-4: clipped, loss -(1 + 4e-4), no gradient.
    loss, grad, stats = _loss(
        [[math.exp(0.2), math.exp(0.4)]],
        [1.0],
        clip_low=3e-4,
        clip_high=4e-4,
        ratio_level="sequence",
        aggregation="seq-mean-token-mean",
    )
    assert loss == pytest.approx(-(1 + 4e-4)) and grad.abs().sum() == 0
    assert stats["clip_frac_high"] == 1.0
    # A = -1: min(-s, -(1 + 4e-4)) = -s is unclipped; d(s)/dlogp_t = s / |y|.
    loss, grad, _ = _loss(
        [[math.exp(0.2), math.exp(0.4)]],
        [-1.0],
        clip_low=3e-4,
        clip_high=4e-4,
        ratio_level="sequence",
        aggregation="seq-mean-token-mean",
    )
    assert loss == pytest.approx(math.exp(0.3))
    _close(grad, [[math.exp(0.3) / 2, math.exp(0.3) / 2]])


def test_gae_and_value_loss_by_hand():
    rewards = torch.tensor([[0.0, 0.0, 1.0, 0.0]])
    values = torch.tensor([[0.5, 0.6, 0.7, 9.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=0.9)
    # deltas: t2 = 1 - 0.7 = 0.3; t1 = 0.7 - 0.6 = 0.1; t0 = 0.6 - 0.5 = 0.1
    expected = [0.1 + 0.9 * (0.1 + 0.9 * 0.3), 0.1 + 0.9 * 0.3, 0.3, 0.0]
    assert adv[0].tolist() == pytest.approx(expected)
    assert ret[0].tolist() == pytest.approx([expected[0] + 0.5, expected[1] + 0.6, 1.0, 0.0])
    # gamma < 1 discounts: one step, reward 1 two tokens later, zero values.
    adv, _ = gae(torch.tensor([[0.0, 1.0]]), torch.zeros(1, 2), torch.ones(1, 2), 0.5, 1.0)
    assert adv[0].tolist() == pytest.approx([0.5, 1.0])
    # clipped value loss: V=1.0, V_old=0.5, R=2.0, clip 0.2 -> the clipped 0.7 is further from R
    v = value_loss(torch.tensor([1.0]), torch.tensor([0.5]), torch.tensor([2.0]), clip=0.2)
    assert v.item() == pytest.approx(0.5 * (0.7 - 2.0) ** 2)
    w = whiten(torch.tensor([[1.0, 3.0, 100.0]]), torch.tensor([[1, 1, 0]]))
    _close(w, [[-1.0, 1.0, 0.0]], atol=1e-4)


def test_kl_is_zero_at_the_reference_and_positive_elsewhere():
    logp = torch.tensor([-1.0, -0.5, -3.0])
    assert kl_estimate(logp, logp, "k3").abs().max() == 0
    assert kl_estimate(logp, logp, "k1").abs().max() == 0
    ref = torch.tensor([-2.0, -0.4, -1.0])
    d = ref - logp
    assert kl_estimate(logp, ref, "k3").tolist() == pytest.approx((torch.exp(d) - d - 1).tolist())
    assert (kl_estimate(logp, ref, "k3") > 0).all()
    assert kl_estimate(logp, ref, "k1").tolist() == pytest.approx((-d).tolist())


def test_overlong_penalty_and_dynamic_sampling_filter():
    lengths = torch.tensor([8, 12, 13, 16, 17])
    assert overlong_penalty(lengths, 16, 4).tolist() == pytest.approx([0, 0, -0.25, -1, -1])
    assert overlong_penalty(lengths, 16, 0).tolist() == [0.0] * 5
    rewards = torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 0.0], [-1.0, -1.0, -1.0], [0.2, 0.2, 0.3]])
    assert varied_groups(rewards).tolist() == [False, True, False, True]
