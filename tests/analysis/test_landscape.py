"""Loss landscapes: grids, direction families, exact restore, and the sharpness arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_llama import tiny_llama
from transformers import LlamaForCausalLM

from analysis.evalset import mean_loss
from analysis.landscape import (
    alpha_grid,
    direction_parameters,
    landscape,
    plot_landscapes,
    random_direction,
    singular_directions,
    symmetric_sharpness,
    trajectory_directions,
)
from assay.errors import ConfigError


@pytest.fixture(scope="module")
def model() -> LlamaForCausalLM:
    return tiny_llama()


@pytest.fixture(scope="module")
def windows() -> torch.Tensor:
    return torch.randint(0, 64, (4, 16), generator=torch.Generator().manual_seed(1))  # (n, L)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(("radius", "points"), [(1.0, 1), (1.0, 3), (0.7, 21), (0.1, 101)])
def test_alpha_grid_is_symmetric_and_contains_zero(radius, points):
    grid = alpha_grid(radius, points)
    assert grid.shape == (points,)
    assert 0.0 in grid
    assert np.array_equal(grid, -grid[::-1])
    assert np.all(np.diff(grid) > 0)
    if points > 1:
        assert grid[0] == -radius and grid[-1] == radius


@pytest.mark.parametrize(("radius", "points"), [(1.0, 20), (1.0, 0), (0.0, 5), (-1.0, 5)])
def test_alpha_grid_rejects_even_counts_and_bad_radii(radius, points):
    with pytest.raises(ConfigError):
        alpha_grid(radius, points)


def test_filter_normalization_matches_row_norms_and_zeroes_vectors(model):
    direction = random_direction(model, generator=gen())
    params = direction_parameters(model)
    assert direction.keys() == params.keys()
    for name, theta in params.items():
        d = direction[name]
        if theta.ndim == 2:
            torch.testing.assert_close(d.norm(dim=1), theta.detach().norm(dim=1))
        else:
            assert torch.count_nonzero(d) == 0, name


def test_filter_normalization_rescales_vectors_when_kept(model):
    direction = random_direction(model, generator=gen(), zero_bias_and_norm=False)
    zeroed = random_direction(model, generator=gen())
    for name, theta in direction_parameters(model).items():
        if theta.ndim == 1:
            torch.testing.assert_close(direction[name].norm(), theta.detach().norm())
        else:  # the flag does not shift the random stream of the matrices
            assert torch.equal(direction[name], zeroed[name])


def test_raw_direction_keeps_the_gaussian_and_matrices_only_restricts(model):
    raw = random_direction(
        model, generator=gen(3), filter_normalize=False, zero_bias_and_norm=False
    )
    replay = gen(3)
    for name, theta in direction_parameters(model).items():
        assert torch.equal(raw[name], torch.randn(theta.shape, generator=replay))
    matrices = random_direction(model, generator=gen(), matrices_only=True)
    assert matrices and all(d.ndim == 2 for d in matrices.values())
    assert matrices.keys() == {n for n, p in model.named_parameters() if p.ndim == 2}


def test_zero_step_is_the_model_and_model_is_bitwise_restored(model, windows):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    base = mean_loss(model, windows)
    directions = [random_direction(model, generator=gen(s)) for s in range(2)]
    alphas = alpha_grid(1.0, 5)
    result = landscape(model, directions, alphas, windows, progress=False)
    zero = int(np.flatnonzero(alphas == 0.0)[0])
    assert result.losses.shape == (2, 5)
    assert result.loss_zero == base
    assert np.all(result.losses[:, zero] == base)
    assert np.all(result.losses[:, [0, -1]] != base)  # the other points really moved θ
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[name]), name
    assert mean_loss(model, windows) == base


def test_directions_over_different_parameters_do_not_leak(model, windows):
    full = random_direction(model, generator=gen(5))
    first = next(iter(full))
    partial = {first: torch.zeros_like(full[first])}  # moves nothing
    alphas = alpha_grid(1.0, 3)
    both = landscape(model, [full, partial], alphas, windows, progress=False)
    assert np.all(both.losses[1] == both.loss_zero)


def test_landscape_rejects_unknown_parameter(model, windows):
    with pytest.raises(ConfigError, match="not a parameter"):
        landscape(model, [{"lm_head.weigth": torch.zeros(64, 32)}], [0.0], windows)


def test_expected_sharpness_of_a_quadratic(model):
    # L(θ) = c·||θ - θ0||², so along d: L(α) = c·α²·||d||² and each ±α pair gives c·α²·||d||².
    c = 0.5
    theta0 = {n: p.detach().clone().double() for n, p in model.named_parameters()}

    def quadratic(m):
        return c * sum(
            float(((p.detach().double() - theta0[n]) ** 2).sum()) for n, p in m.named_parameters()
        )

    directions = [random_direction(model, generator=gen(s)) for s in range(3)]
    alphas = alpha_grid(0.5, 5)  # positive steps 0.25 and 0.5
    result = landscape(model, directions, alphas, quadratic, progress=False)
    sq_norms = np.array(
        [sum(float((t.double() ** 2).sum()) for t in d.values()) for d in directions]
    )
    expected = c * sq_norms * (0.25**2 + 0.5**2) / 2
    assert result.loss_zero == 0.0
    np.testing.assert_allclose(result.sharpness_per_direction, expected, rtol=1e-5)
    assert result.expected_sharpness == pytest.approx(expected.mean(), rel=1e-5)
    np.testing.assert_allclose(result.mean, result.losses.mean(axis=0))


def test_symmetric_sharpness_by_hand():
    alphas = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    losses = np.array([[3.0, 1.0, 0.0, 2.0, 5.0], [1.0, 1.0, 1.0, 1.0, 1.0]])
    # Row 0: α=0.5 -> (2+1)/2 = 1.5, α=1 -> (5+3)/2 = 4, mean 2.75; row 1: flat -> 1 - L0.
    np.testing.assert_allclose(symmetric_sharpness(alphas, losses, 0.0), [2.75, 1.0])
    # Unsorted grid; α=2 has no partner and is ignored.
    np.testing.assert_allclose(
        symmetric_sharpness(np.array([0.0, 1.0, -1.0, 2.0]), np.array([[1.0, 2.0, 4.0, 9.0]]), 1.0),
        [2.0],
    )
    assert np.isnan(symmetric_sharpness(np.array([0.0, 1.0]), np.array([[0.0, 1.0]]), 0.0)).all()


def test_singular_directions_are_unit_rank_one_and_rebuild_w(model):
    matrices = direction_parameters(model, matrices_only=True)
    k = 32  # the smallest matrix dimension of the tiny LLaMA
    unit = singular_directions(model, k)
    scaled = singular_directions(model, k, scale_by_sigma=True)
    assert len(unit) == k
    for name, weight in matrices.items():
        sigma = torch.linalg.svdvals(weight.detach())
        for j in (0, 1, k - 1):
            d = unit[j][name]
            assert d.shape == weight.shape
            assert float(torch.linalg.matrix_norm(d)) == pytest.approx(1.0, abs=1e-5)
            s = torch.linalg.svdvals(d)
            assert float(s[0]) == pytest.approx(1.0, abs=1e-5) and float(s[1]) < 1e-5  # rank 1
            torch.testing.assert_close(scaled[j][name], d * sigma[j])
        assert abs(float((unit[0][name] * unit[1][name]).sum())) < 1e-5  # orthogonal
        # Σ_j σ_j u_j v_j^T over the full rank is W itself.
        rebuilt = sum(scaled[j][name] for j in range(k))
        torch.testing.assert_close(rebuilt, weight.detach(), atol=1e-5, rtol=1e-4)
    assert all(d.keys() == matrices.keys() for d in unit)  # 1-D params are not moved
    with pytest.raises(ConfigError, match="k <= 32"):
        singular_directions(model, 33)


def test_trajectory_pca_recovers_a_planted_direction(model):
    params = direction_parameters(model)
    g = gen(7)
    planted = {n: torch.randn(p.shape, generator=g) for n, p in params.items()}
    norm = torch.sqrt(sum((t**2).sum() for t in planted.values()))
    planted = {n: t / norm for n, t in planted.items()}
    steps = [4.0, 2.5, 1.8, 0.6, 0.0]  # training walks along the planted line to the final model
    states = [
        {
            n: p.detach() + t * planted[n] + 1e-4 * torch.randn(p.shape, generator=g)
            for n, p in params.items()
        }
        for t in steps
    ]
    for center in ("final", "mean"):
        components = trajectory_directions(states, 2, center=center)
        assert len(components) == 2
        first = components[0]
        assert first.keys() == params.keys()
        # Unit norm, aligned with the plant, oriented toward the first checkpoint (+α = earlier).
        assert float(sum((t**2).sum() for t in first.values())) == pytest.approx(1.0, abs=1e-4)
        cosine = float(sum((first[n] * planted[n]).sum() for n in params))
        assert cosine > 0.999
    with pytest.raises(ConfigError, match="n_components"):
        trajectory_directions(states, 5)


def test_plot_landscapes_writes_a_file(model, windows, tmp_path):
    result = landscape(
        model,
        [random_direction(model, generator=gen())],
        alpha_grid(0.5, 3),
        windows,
        progress=False,
    )
    path = plot_landscapes({"random": result}, tmp_path / "plots" / "landscape.png")
    assert path.exists() and path.stat().st_size > 0
