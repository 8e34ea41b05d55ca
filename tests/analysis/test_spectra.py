"""Spectral metrics against closed forms on matrices built from known singular values."""

import math

import pytest
import torch
from tiny_llama import tiny_llama

from analysis.spectra import (
    count_above,
    effective_rank,
    fraction_above,
    matrix_rank,
    matrix_spectra,
    plot_spectra,
    rank_ratio,
    singular_values,
    spectral_gap,
    spectral_ratio,
    stable_rank,
    summarize_by_projection,
)
from assay.errors import AssayError

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def orthonormal(rows: int, cols: int, seed: int) -> torch.Tensor:
    """``(rows, cols)`` with orthonormal columns, from the QR of a Gaussian matrix."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(rows, cols, generator=g, dtype=torch.float64))
    return q


def with_singular_values(rows: int, cols: int, sigma: list[float], seed: int = 0) -> torch.Tensor:
    """``U diag(sigma) Vᵀ`` with random orthonormal U, V: its singular values are ``sigma``."""
    r = len(sigma)
    U, V = orthonormal(rows, r, seed), orthonormal(cols, r, seed + 1)
    return U @ torch.diag(torch.tensor(sigma, dtype=torch.float64)) @ V.T


# ---------------------------------------------------------------- one matrix


def test_singular_values_are_descending_float64():
    sigma = singular_values(torch.diag(torch.tensor([1.0, 3.0, 2.0])))
    assert sigma.dtype == torch.float64
    assert sigma.tolist() == pytest.approx([3.0, 2.0, 1.0])


@pytest.mark.parametrize("r", [1, 3, 7])
def test_effective_rank_of_equal_singular_values_is_the_rank(r):
    W = with_singular_values(20, 12, [2.5] * r, seed=r)
    assert effective_rank(W) == pytest.approx(r, rel=1e-9)


def test_effective_rank_of_unequal_singular_values():
    # p = (3/4, 1/4): H = -(3/4) ln(3/4) - (1/4) ln(1/4) = 0.5623351446; exp(H) = 1.7547654
    assert effective_rank(torch.diag(torch.tensor([3.0, 1.0]))) == pytest.approx(1.7547654, 1e-6)


def test_stable_rank():
    u, v = torch.randn(9), torch.randn(5)
    assert stable_rank(torch.outer(u, v)) == pytest.approx(1.0)
    # (3² + 4²) / 4² = 25 / 16
    assert stable_rank(torch.diag(torch.tensor([3.0, 4.0]))) == pytest.approx(25 / 16)


@pytest.mark.parametrize("r", [1, 4, 12])
def test_matrix_rank_and_rank_ratio_of_constructed_matrices(r):
    W = with_singular_values(20, 12, [float(i + 1) for i in range(r)], seed=10 + r)
    assert matrix_rank(W) == r
    assert rank_ratio(W) == pytest.approx(r / 12)
    # The same matrix stored in float32 keeps its rank under the float32 tolerance.
    assert matrix_rank(W.float()) == r


def test_matrix_rank_with_explicit_tolerance():
    W = torch.diag(torch.tensor([1.0, 1e-3, 0.0], dtype=torch.float64))
    assert matrix_rank(W) == 2
    assert matrix_rank(W, tol=1e-2) == 1
    assert rank_ratio(W, tol=1e-2) == pytest.approx(1 / 3)


def test_spectral_gap_and_ratio_on_a_diagonal_matrix():
    W = torch.diag(torch.tensor([2.0, -5.0, 1.0]))  # singular values 5, 2, 1
    assert spectral_gap(W) == pytest.approx(3.0)
    assert spectral_ratio(W) == pytest.approx(2.5)
    assert spectral_ratio(torch.diag(torch.tensor([3.0, 0.0]))) == math.inf
    column = torch.tensor([[3.0], [4.0]])  # one singular value, 5; σ_2 counts as 0
    assert (spectral_gap(column), spectral_ratio(column)) == (pytest.approx(5.0), math.inf)


def test_count_and_fraction_above():
    W = torch.diag(torch.tensor([10.0, 5.0, 2.0, 1.0]))
    assert count_above(W, 0.3) == 2  # above 3.0
    assert count_above(W, 0.2) == 2  # strictly above 2.0
    assert count_above(W, 1.5, relative=False) == 3
    assert fraction_above(W, 0.3) == pytest.approx(0.5)
    assert count_above(W, 1.0) == 0


def test_zero_matrix_has_zero_ranks():
    W = torch.zeros(4, 3)
    assert (matrix_rank(W), effective_rank(W), stable_rank(W)) == (0, 0.0, 0.0)
    assert math.isnan(spectral_ratio(W))


def test_non_matrix_is_refused():
    with pytest.raises(AssayError, match="2-D"):
        effective_rank(torch.ones(3))


# ---------------------------------------------------------------- a whole model


def test_matrix_spectra_rows_of_a_llama():
    model = tiny_llama()
    rows = matrix_spectra(model)
    assert len(rows) == 2 * len(PROJECTIONS)  # embeddings and lm_head skipped
    assert [r["projection"] for r in rows[:7]] == list(PROJECTIONS)
    assert [r["layer"] for r in rows] == [0] * 7 + [1] * 7
    down = rows[6]
    assert down["name"] == "model.layers.0.mlp.down_proj.weight"
    assert down["shape"] == (32, 64) and down["target"] == "weight"
    assert down["rank_ratio"] == pytest.approx(down["rank"] / 32)
    assert down["frobenius_norm"] == pytest.approx(
        torch.linalg.norm(model.model.layers[0].mlp.down_proj.weight).item(), rel=1e-6
    )
    assert "update_norm" not in down

    with_embeddings = matrix_spectra(model.state_dict(), include_embeddings=True)
    names = {r["name"] for r in with_embeddings}
    assert {"model.embed_tokens.weight", "lm_head.weight"} <= names
    assert len(with_embeddings) == len(rows) + 2


def test_update_spectra_of_a_planted_rank_2_update():
    reference = {k: v.clone() for k, v in tiny_llama().state_dict().items()}
    planted = "model.layers.1.mlp.up_proj.weight"  # (64, 32)
    delta = with_singular_values(64, 32, [0.8, 0.6], seed=3)  # ‖Δ‖_F = sqrt(0.64 + 0.36) = 1
    state = dict(reference)
    state[planted] = (reference[planted].double() + delta).float()

    rows = {r["name"]: r for r in matrix_spectra(state, reference=reference)}
    row = rows[planted]
    assert row["target"] == "update"
    assert row["rank"] == 2
    assert row["effective_rank"] == pytest.approx(
        math.exp(-(0.8 / 1.4) * math.log(0.8 / 1.4) - (0.6 / 1.4) * math.log(0.6 / 1.4)), rel=1e-4
    )
    assert row["update_norm"] == pytest.approx(1.0, rel=1e-5)
    ref_norm = torch.linalg.norm(reference[planted].double()).item()
    assert row["relative_update_norm"] == pytest.approx(1.0 / ref_norm, rel=1e-5)

    untouched = rows["model.layers.0.self_attn.q_proj.weight"]
    assert untouched["rank"] == 0 and untouched["update_norm"] == 0.0


def test_reference_of_another_architecture_is_refused():
    state = tiny_llama().state_dict()
    reference = dict(state)
    reference["model.layers.0.mlp.up_proj.weight"] = torch.zeros(3, 3)
    with pytest.raises(AssayError, match="same architecture"):
        matrix_spectra(state, reference=reference)
    del reference["model.layers.0.mlp.up_proj.weight"]
    with pytest.raises(AssayError, match="has no tensor"):
        matrix_spectra(state, reference=reference)


def test_summarize_by_projection_averages_per_projection():
    rows = [
        {"projection": "q_proj", "effective_rank": 2.0, "rank": 4},
        {"projection": "k_proj", "effective_rank": 5.0, "rank": 8},
        {"projection": "q_proj", "effective_rank": 4.0, "rank": 6},
    ]
    summary = summarize_by_projection(rows)
    assert [s["projection"] for s in summary] == ["q_proj", "k_proj"]
    assert summary[0] == {
        "projection": "q_proj",
        "n_matrices": 2,
        "effective_rank": 3.0,
        "rank": 5.0,
    }


def test_plot_spectra_writes_a_figure(tmp_path):
    rows = matrix_spectra(tiny_llama())
    path = plot_spectra({"full": rows, "other": rows[:7]}, tmp_path / "spectra.png")
    assert path.exists() and path.stat().st_size > 0
    with pytest.raises(AssayError, match="Unknown spectral metric"):
        plot_spectra({"full": rows}, tmp_path / "x.png", metric="entropy")
