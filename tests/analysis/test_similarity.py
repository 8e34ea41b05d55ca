"""CKA and activation similarity against direct Gram-matrix computations and known invariances."""

import itertools
import math

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from analysis.similarity import (
    activation_similarity,
    debiased_cka,
    layer_activations,
    linear_cka,
    mean_cosine,
    plot_similarity,
    relative_l2,
)
from assay.errors import AssayError


def gaussian(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def tiny_llama(seed: int = 0, hidden_size: int = 32) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=hidden_size,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=64,
    )
    return LlamaForCausalLM(config)


def gram_hsic(K: torch.Tensor, L: torch.Tensor) -> float:
    """Biased HSIC ``tr(K H L H)`` with the centring matrix ``H = I - 11ᵀ/n``."""
    n = K.shape[0]
    H = torch.eye(n, dtype=K.dtype) - torch.full((n, n), 1.0 / n, dtype=K.dtype)
    return float(torch.trace(K @ H @ L @ H))


# ---------------------------------------------------------------- linear CKA


def test_linear_cka_of_a_matrix_with_itself_is_one():
    X = gaussian(50, 8, seed=0)
    assert linear_cka(X, X) == pytest.approx(1.0, abs=1e-12)


def test_linear_cka_is_invariant_to_orthogonal_transforms_and_isotropic_scaling():
    X, Y = gaussian(60, 6, seed=1), gaussian(60, 4, seed=2)
    Y = Y + X[:, :4]  # some shared signal, so the value is not near 0
    Q, _ = torch.linalg.qr(gaussian(6, 6, seed=3))
    base = linear_cka(X, Y)
    assert 0.1 < base < 0.99
    assert linear_cka(X @ Q, Y) == pytest.approx(base, rel=1e-10)
    assert linear_cka(7.5 * X, 0.01 * Y) == pytest.approx(base, rel=1e-10)
    assert linear_cka(X @ Q, X) == pytest.approx(1.0, rel=1e-10)


def test_linear_cka_equals_the_gram_matrix_form():
    X, Y = gaussian(40, 5, seed=4), gaussian(40, 3, seed=5)
    Y = Y + X[:, :3] ** 2
    K, L = X @ X.T, Y @ Y.T  # (n, n), uncentred: the H's in tr(KHLH) centre them
    expected = gram_hsic(K, L) / math.sqrt(gram_hsic(K, K) * gram_hsic(L, L))
    assert linear_cka(X, Y) == pytest.approx(expected, rel=1e-10)


def test_linear_cka_accepts_numpy_and_float32():
    X, Y = gaussian(30, 4, seed=6), gaussian(30, 5, seed=7)
    expected = linear_cka(X, Y)
    assert linear_cka(X.numpy(), Y.numpy()) == pytest.approx(expected, rel=1e-12)
    assert linear_cka(X.float(), Y.numpy().astype(np.float32)) == pytest.approx(expected, rel=1e-5)


def test_cka_needs_the_same_examples():
    with pytest.raises(AssayError, match="same examples"):
        linear_cka(gaussian(10, 3, 0), gaussian(11, 3, 1))
    with pytest.raises(AssayError, match="2-D"):
        linear_cka(torch.ones(10), torch.ones(10))


# ---------------------------------------------------------------- debiased CKA


def u_statistic_hsic(K: torch.Tensor, L: torch.Tensor) -> float:
    """HSIC as the mean over ordered distinct (t, u, v, w) of ``K_tu L_tu + K_tu L_vw - 2 K_tu L_tv``:
    the U-statistic whose expectation is the population HSIC (Song et al. 2012)."""
    terms = [
        K[t, u] * L[t, u] + K[t, u] * L[v, w] - 2 * K[t, u] * L[t, v]
        for t, u, v, w in itertools.permutations(range(K.shape[0]), 4)
    ]
    return float(sum(terms) / len(terms))


def test_debiased_cka_equals_the_u_statistic():
    X, Y = gaussian(7, 3, seed=8), gaussian(7, 2, seed=9)
    Y = Y + X[:, :2]
    K, L = X @ X.T, Y @ Y.T
    expected = u_statistic_hsic(K, L) / math.sqrt(u_statistic_hsic(K, K) * u_statistic_hsic(L, L))
    assert debiased_cka(X, Y) == pytest.approx(expected, rel=1e-9)


def test_debiased_cka_of_a_matrix_with_itself_is_one():
    X = gaussian(80, 10, seed=10)
    assert debiased_cka(X, X) == pytest.approx(1.0, abs=1e-12)


def test_debiased_cka_removes_the_bias_for_independent_features():
    X, Y = gaussian(500, 50, seed=11), gaussian(500, 50, seed=12)
    # Plain linear CKA of independent features is about sqrt(d1 d2) / n = 0.1; debiased ~ 0.
    assert linear_cka(X, Y) > 0.05
    assert abs(debiased_cka(X, Y)) < 0.02


def test_debiased_cka_refuses_large_n_and_suggests_subsampling():
    X = gaussian(30, 2, seed=13)
    with pytest.raises(AssayError, match="Subsample"):
        debiased_cka(X, X, max_n=20)


# ---------------------------------------------------------------- cosine and relative L2


def test_mean_cosine_on_a_hand_example():
    X = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    Y = torch.tensor([[2.0, 0.0], [1.0, -1.0], [0.0, -1.0]])
    assert mean_cosine(X, Y) == pytest.approx((1.0 + 0.0 - 1.0) / 3)


def test_relative_l2_on_a_hand_example():
    X = torch.tensor([[3.0, 0.0], [0.0, 4.0]])
    Y = torch.tensor([[0.0, 0.0], [0.0, 4.0]])
    assert relative_l2(X, Y) == pytest.approx(3.0 / 4.0)  # ‖X - Y‖ = 3, ‖Y‖ = 4
    assert relative_l2(Y, Y) == 0.0
    with pytest.raises(AssayError, match="same shape"):
        relative_l2(X, torch.ones(2, 3))


# ---------------------------------------------------------------- a model's hidden states


def windows() -> torch.Tensor:
    return torch.randint(0, 64, (3, 16), generator=torch.Generator().manual_seed(0))  # (n, L)


def test_layer_activations_shapes():
    model = tiny_llama()
    model.train()
    acts = layer_activations(model, windows(), batch_size=2)
    assert len(acts) == model.config.num_hidden_layers + 1
    for h in acts:
        assert h.shape == (3 * 16, 32) and h.dtype == torch.float32 and h.device.type == "cpu"
        assert not h.requires_grad
    assert model.training  # restored


def test_activation_similarity_of_a_model_with_itself():
    model = tiny_llama()
    rows = activation_similarity(model, model, windows())
    assert [r["layer"] for r in rows] == [0, 1, 2]
    for row in rows:
        assert row["linear_cka"] == pytest.approx(1.0, abs=1e-9)
        assert row["debiased_cka"] == pytest.approx(1.0, abs=1e-9)
        assert row["mean_cosine"] == pytest.approx(1.0, abs=1e-6)
        assert row["relative_l2"] == 0.0


def test_activation_similarity_across_widths(tmp_path):
    rows = activation_similarity(tiny_llama(1, hidden_size=16), tiny_llama(), windows())
    assert all(r["mean_cosine"] is None and r["relative_l2"] is None for r in rows)
    assert all(0.0 <= r["linear_cka"] <= 1.0 for r in rows)
    path = plot_similarity({"narrow": rows}, tmp_path / "cka.png")
    assert path.exists() and path.stat().st_size > 0
