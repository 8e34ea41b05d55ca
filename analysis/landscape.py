"""1-D loss landscapes ``L(θ + α·d)`` around a model, along chosen directions ``d``.

Li et al. 2018, "Visualizing the Loss Landscape of Neural Nets" (NeurIPS). A direction is a dict
``name -> tensor`` over some of the model's parameters (names absent from it are not moved). Three
families:

- :func:`random_direction`: Gaussian, filter-normalised so that every row of ``d`` has the norm of
  the same row of ``θ`` (Li et al., Sec. 4). Without it a scale-invariant net (every LayerNorm /
  RMSNorm net) looks flat or sharp by the scale of its weights alone.
- :func:`singular_directions`: ``u_j v_j^T`` of every weight matrix at once; with
  ``scale_by_sigma`` the point ``α = -1`` removes the j-th singular component of every matrix.
- :func:`trajectory_directions`: principal components of a run's checkpoints around the final one
  (Li et al., Sec. 7), unit norm, so ``α`` is a Euclidean distance in parameter space.

:func:`landscape` evaluates every ``(direction, α)`` pair and restores ``θ`` bit for bit. Directions
are float32 tensors on the parameters' devices: each costs one float32 copy of the parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from analysis.evalset import mean_loss
from assay.errors import ConfigError, did_you_mean

Direction = dict[str, torch.Tensor]
LossFn = Callable[[nn.Module], float]

# Guards a division by the norm of a Gaussian row, which is never 0 in practice.
_TINY = 1e-12


def as_loss_fn(loss: LossFn | torch.Tensor, batch_size: int = 8) -> LossFn:
    """``loss`` if it is a callable ``model -> float``; for ``(n, L)`` eval windows, their mean loss."""
    if isinstance(loss, torch.Tensor):
        windows = loss
        return lambda model: mean_loss(model, windows, batch_size)
    if callable(loss):
        return loss
    raise ConfigError(
        f"loss_fn must be a callable model -> float or a (n, L) tensor of token windows, "
        f"got {type(loss).__name__}."
    )


def alpha_grid(radius: float, points: int) -> np.ndarray:
    """``points`` step sizes evenly spaced over ``[-radius, radius]``, exactly symmetric, with 0.

    ``points`` must be odd so that 0 (the model itself) is a grid point; an even count raises
    :class:`ConfigError` rather than being silently changed.
    """
    if not isinstance(points, int) or points < 1 or points % 2 == 0:
        raise ConfigError(
            f"alpha_grid needs an odd number of points so that 0 is on the grid, got {points!r}; "
            f"use {points + 1 if isinstance(points, int) and points > 0 else 21}."
        )
    if not radius > 0:
        raise ConfigError(f"alpha_grid radius must be positive, got {radius!r}.")
    # Mirror one half so that -α and +α are exact negatives and the middle point is exactly 0.
    half = np.linspace(0.0, float(radius), points // 2 + 1)  # (points // 2 + 1,)
    return np.concatenate([-half[:0:-1], half])  # (points,)


def direction_parameters(
    model: nn.Module, *, matrices_only: bool = False
) -> dict[str, nn.Parameter]:
    """The parameters directions span: every floating one, or only the 2-D weight matrices.

    Tied parameters (e.g. input and output embeddings) appear once, under their first name.
    """
    return {
        name: p
        for name, p in model.named_parameters()
        if p.is_floating_point() and (p.ndim == 2 or not matrices_only)
    }


def _filter_normalize(d: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Rescale each row (output filter) of ``d`` to the norm of ``θ``'s row; a vector as a whole."""
    if theta.ndim <= 1:
        return d * (theta.norm() / d.norm().clamp_min(_TINY))
    d_rows = d.reshape(d.shape[0], -1)  # (out, in)
    theta_rows = theta.reshape(theta.shape[0], -1)  # (out, in)
    scale = theta_rows.norm(dim=1, keepdim=True) / d_rows.norm(dim=1, keepdim=True).clamp_min(_TINY)
    return (d_rows * scale).reshape(d.shape)


@torch.no_grad()
def random_direction(
    model: nn.Module,
    *,
    generator: torch.Generator,
    filter_normalize: bool = True,
    zero_bias_and_norm: bool = True,
    matrices_only: bool = False,
) -> Direction:
    """A Gaussian direction over :func:`direction_parameters`, filter-normalised (Li et al. 2018).

    ``filter_normalize``: each row ``d_i`` of a matrix becomes ``d_i / ||d_i|| * ||θ_i||``; a 1-D
    parameter is rescaled as one vector. ``False`` keeps the raw N(0, 1) draw.
    ``zero_bias_and_norm``: 1-D parameters (biases, norm gains) get a zero direction, as Li et al.
    do for biases and BatchNorm; this applies with or without ``filter_normalize``.
    The same ``generator`` state gives the same matrix directions whatever the flags.
    """
    direction: Direction = {}
    for name, theta in direction_parameters(model, matrices_only=matrices_only).items():
        # Drawn on the generator's device so the numbers do not depend on where the model lives.
        noise = torch.randn(
            theta.shape, generator=generator, dtype=torch.float32, device=generator.device
        ).to(theta.device)
        if theta.ndim <= 1 and zero_bias_and_norm:
            direction[name] = torch.zeros_like(noise)
        elif filter_normalize:
            direction[name] = _filter_normalize(noise, theta.detach().float())
        else:
            direction[name] = noise
    return direction


@torch.no_grad()
def singular_directions(
    model: nn.Module, k: int, *, scale_by_sigma: bool = False
) -> list[Direction]:
    """``k`` directions; direction ``j`` (0-based) is ``u_j v_j^T`` on every weight matrix at once.

    For each 2-D parameter ``W = U S V^T`` (float32 SVD, singular values descending), entry ``j``
    holds the rank-1, unit-Frobenius matrix ``u_j v_j^T`` (times ``σ_j`` with ``scale_by_sigma``);
    1-D parameters are left out, i.e. not moved. ``u_j v_j^T`` does not depend on the sign SVD picks,
    and the ``j``-th directions of different ``j`` are orthogonal. Raises if some matrix has fewer
    than ``k`` singular values.
    """
    matrices = direction_parameters(model, matrices_only=True)
    if not matrices:
        raise ConfigError("singular_directions found no 2-D floating parameters in the model.")
    smallest = min(matrices, key=lambda name: min(matrices[name].shape))
    max_k = min(matrices[smallest].shape)
    if not isinstance(k, int) or not 1 <= k <= max_k:
        raise ConfigError(
            f"singular_directions needs 1 <= k <= {max_k} (the rank bound of {smallest!r}, "
            f"shape {tuple(matrices[smallest].shape)}), got k={k!r}."
        )
    directions: list[Direction] = [{} for _ in range(k)]
    for name, weight in matrices.items():
        u, s, vh = torch.linalg.svd(
            weight.detach().float(), full_matrices=False
        )  # (m,r) (r,) (r,n)
        for j in range(k):
            component = torch.outer(u[:, j], vh[j])  # (m, n)
            directions[j][name] = component * s[j] if scale_by_sigma else component
    return directions


def _trajectory_names(
    states: Sequence[Mapping[str, torch.Tensor]], names: Iterable[str] | None
) -> list[str]:
    """Names to run PCA over, checked to be floating and equally shaped in every state."""
    final = states[-1]
    if names is None:
        names = [
            n for n, t in final.items() if t.is_floating_point() and all(n in s for s in states)
        ]
    names = list(names)
    if not names:
        raise ConfigError("trajectory_directions found no floating tensors shared by all states.")
    for i, state in enumerate(states):
        for name in names:
            if name not in state:
                raise ConfigError(
                    f"State {i} has no tensor {name!r}.{did_you_mean(name, state)} Pass names= "
                    f"the parameters every checkpoint shares."
                )
            if state[name].shape != final[name].shape or not state[name].is_floating_point():
                raise ConfigError(
                    f"{name!r} in state {i} has shape {tuple(state[name].shape)} and dtype "
                    f"{state[name].dtype}; the final state has {tuple(final[name].shape)}, "
                    f"{final[name].dtype}. All states must come from one architecture."
                )
    return names


@torch.no_grad()
def trajectory_directions(
    states: Sequence[Mapping[str, torch.Tensor]],
    n_components: int,
    *,
    names: Iterable[str] | None = None,
    center: str = "final",
) -> list[Direction]:
    """Top principal components of a training trajectory, as unit-norm directions.

    ``states`` are checkpoints' state dicts in training order; the last is the model the landscape
    is drawn around. With ``center="final"`` (Li et al. 2018, Sec. 7) the rows are
    ``θ_i - θ_final`` for the other checkpoints and PCA is their SVD with no further centring:
    the directions of largest spread *about the final model*. ``center="mean"`` subtracts the
    mean checkpoint instead (classic PCA). Each component is oriented so that the first checkpoint
    has a positive coordinate: ``+α`` points back toward the start of training.
    ``names`` defaults to the floating tensors all states share; pass
    ``direction_parameters(model)`` so tied weights are counted once and only parameters move.
    Memory: one float32 ``(len(states), n_params)`` matrix.
    """
    if len(states) < 2:
        raise ConfigError(f"trajectory_directions needs at least 2 states, got {len(states)}.")
    if center not in ("final", "mean"):
        raise ConfigError(f"center must be 'final' or 'mean', got {center!r}.")
    # Both centrings leave S - 1 independent rows at most.
    if not isinstance(n_components, int) or not 1 <= n_components <= len(states) - 1:
        raise ConfigError(
            f"n_components must be between 1 and len(states) - 1 = {len(states) - 1}, "
            f"got {n_components!r}."
        )
    names = _trajectory_names(states, names)
    final = states[-1]
    device = final[names[0]].device
    flat = torch.stack(
        [
            torch.cat([s[n].detach().reshape(-1).to(device, torch.float32) for n in names])
            for s in states
        ]
    )  # (S, P)
    offsets = flat[:-1] - flat[-1] if center == "final" else flat - flat.mean(dim=0)  # (S', P)
    _, _, vh = torch.linalg.svd(offsets, full_matrices=False)  # vh: (r, P), unit rows
    components = vh[:n_components]  # (C, P)
    signs = torch.sign(components @ (flat[0] - flat[-1]))  # (C,)
    components = components * torch.where(signs == 0, 1.0, signs)[:, None]
    sizes = [final[n].numel() for n in names]
    return [
        {n: piece.reshape(final[n].shape) for n, piece in zip(names, c.split(sizes), strict=True)}
        for c in components
    ]


@dataclass(frozen=True)
class LandscapeResult:
    """Losses along each direction: ``losses[i, j] = L(θ + alphas[j] · d_i)``."""

    alphas: np.ndarray  # (A,)
    losses: np.ndarray  # (D, A)
    loss_zero: float  # L(θ), evaluated once on the untouched model

    @property
    def mean(self) -> np.ndarray:
        """Mean loss over directions at each α, ``(A,)``."""
        return self.losses.mean(axis=0)

    @property
    def std(self) -> np.ndarray:
        """Standard deviation (ddof=0) over directions at each α, ``(A,)``; 0 for one direction."""
        return self.losses.std(axis=0)

    @property
    def sharpness_per_direction(self) -> np.ndarray:
        """:func:`symmetric_sharpness` of each direction, ``(D,)``."""
        return symmetric_sharpness(self.alphas, self.losses, self.loss_zero)

    @property
    def expected_sharpness(self) -> float:
        """Mean of :attr:`sharpness_per_direction`."""
        return float(self.sharpness_per_direction.mean())


def symmetric_sharpness(alphas: np.ndarray, losses: np.ndarray, loss_zero: float) -> np.ndarray:
    """Per direction, the mean over ``α > 0`` with ``-α`` on the grid of ``(L(α) + L(-α))/2 - L(0)``.

    An estimate of the expected sharpness ``E[L(θ + ε)] - L(θ)`` of Neyshabur et al. 2017
    ("Exploring Generalization in Deep Learning"); for a quadratic ``L`` each pair gives
    ``α²/2 · dᵀHd``, and the odd (slope) part cancels. ``losses`` is ``(D, A)``; returns ``(D,)``,
    NaN when no ``±α`` pair is on the grid.
    """
    alphas = np.asarray(alphas, dtype=np.float64)
    losses = np.atleast_2d(np.asarray(losses, dtype=np.float64))  # (D, A)
    tol = 1e-9 * float(np.abs(alphas).max(initial=0.0))
    pos, neg = [], []
    for j, alpha in enumerate(alphas):
        if alpha > tol:
            partner = np.flatnonzero(np.abs(alphas + alpha) <= tol)
            if partner.size:
                pos.append(j)
                neg.append(int(partner[0]))
    if not pos:
        return np.full(losses.shape[0], np.nan)
    pairs = (losses[:, pos] + losses[:, neg]) / 2 - loss_zero  # (D, pairs)
    return pairs.mean(axis=1)


def _targets(model: nn.Module, directions: Sequence[Direction]) -> dict[str, nn.Parameter]:
    """The parameters the directions move, checked against the model's names and shapes."""
    params = dict(model.named_parameters())
    targets: dict[str, nn.Parameter] = {}
    for i, direction in enumerate(directions):
        for name, d in direction.items():
            if name not in params:
                raise ConfigError(
                    f"Direction {i} moves {name!r}, which is not a parameter of the model."
                    f"{did_you_mean(name, params)}"
                )
            if d.shape != params[name].shape:
                raise ConfigError(
                    f"Direction {i} has shape {tuple(d.shape)} for {name!r}; the parameter has "
                    f"{tuple(params[name].shape)}."
                )
            targets[name] = params[name]
    return targets


@torch.no_grad()
def _displace(
    targets: dict[str, nn.Parameter],
    originals: dict[str, torch.Tensor],
    direction: Direction,
    alpha: float,
) -> None:
    """Set ``θ = θ_0 + α·d`` from the saved ``θ_0`` (never cumulatively), in float32."""
    for name, d in direction.items():
        p = targets[name]
        p.copy_(originals[name].float().add(d.to(p.device, torch.float32), alpha=alpha))


@torch.no_grad()
def _restore(targets: dict[str, nn.Parameter], originals: dict[str, torch.Tensor]) -> None:
    # Copying the saved tensors back, not subtracting α·d, restores θ bit for bit.
    for name, p in targets.items():
        p.copy_(originals[name])


def landscape(
    model: nn.Module,
    directions: Sequence[Direction],
    alphas: Sequence[float] | np.ndarray,
    loss_fn: LossFn | torch.Tensor,
    *,
    batch_size: int = 8,
    progress: bool = True,
) -> LandscapeResult:
    """Evaluate ``L(θ + α·d)`` for every direction and every α; the model is restored exactly.

    ``loss_fn`` is a callable ``model -> float`` or a ``(n, L)`` tensor of eval windows, scored
    with :func:`analysis.evalset.mean_loss` in batches of ``batch_size``. ``L(θ)`` is evaluated
    once more on the untouched model (``loss_zero``); expected sharpness is measured against it.
    """
    alphas = np.asarray(alphas, dtype=np.float64)
    if alphas.ndim != 1 or alphas.size == 0:
        raise ConfigError(f"alphas must be a non-empty 1-D sequence, got shape {alphas.shape}.")
    if not directions:
        raise ConfigError("landscape needs at least one direction.")
    loss_fn = as_loss_fn(loss_fn, batch_size)
    targets = _targets(model, directions)
    originals = {name: p.detach().clone() for name, p in targets.items()}
    losses = np.empty((len(directions), alphas.size))  # (D, A)
    bar = tqdm(total=1 + losses.size, desc="landscape", disable=not progress)
    try:
        loss_zero = float(loss_fn(model))
        bar.update()
        for i, direction in enumerate(directions):
            # A direction need not cover the previous one's parameters: start it from θ_0.
            _restore(targets, originals)
            for j, alpha in enumerate(alphas):
                _displace(targets, originals, direction, float(alpha))
                losses[i, j] = float(loss_fn(model))
                bar.update()
    finally:
        _restore(targets, originals)
        bar.close()
    return LandscapeResult(alphas=alphas, losses=losses, loss_zero=loss_zero)


def plot_landscapes(results: Mapping[str, LandscapeResult], path: str | Path) -> Path:
    """One mean curve with a ±1 std band (over directions) per label, saved to ``path``."""
    from assay.runs import pyplot, save_figure

    plt = pyplot()

    if not results:
        raise ConfigError("plot_landscapes needs at least one result.")
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for label, result in results.items():
        order = np.argsort(result.alphas)
        alphas, mean, std = result.alphas[order], result.mean[order], result.std[order]
        (line,) = ax.plot(
            alphas, mean, label=f"{label} (sharpness {result.expected_sharpness:.3g})"
        )
        ax.fill_between(alphas, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    ax.set_xlabel("α (step along direction)")
    ax.set_ylabel("loss")
    ax.set_title("1-D loss landscape L(θ + α·d): mean ± std over directions")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
