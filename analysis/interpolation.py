"""Linear interpolation between two models: ``L((1 - α)·θ_a + α·θ_b)`` and its loss barrier.

Goodfellow et al. 2015, "Qualitatively Characterizing Neural Network Optimization Problems"
(the interpolation plot); Frankle et al. 2020, "Linear Mode Connectivity and the Lottery Ticket
Hypothesis" (the barrier: the highest loss on the segment above the mean of its endpoints). Only
floating tensors are interpolated; integer buffers are taken from ``θ_a``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from analysis.landscape import LossFn, as_loss_fn
from assay.errors import CheckpointError, ConfigError

State = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class InterpolationResult:
    """``losses[j] = L((1 - alphas[j])·θ_a + alphas[j]·θ_b)``; ``alphas`` sorted, with 0 and 1."""

    alphas: np.ndarray  # (A,)
    losses: np.ndarray  # (A,)

    @property
    def loss_a(self) -> float:
        """``L(θ_a)``, the point ``α = 0``."""
        return float(self.losses[self.alphas == 0.0][0])

    @property
    def loss_b(self) -> float:
        """``L(θ_b)``, the point ``α = 1``."""
        return float(self.losses[self.alphas == 1.0][0])

    @property
    def barrier(self) -> float:
        """``max_{α in [0, 1]} L(α) - (L(0) + L(1))/2`` (Frankle et al. 2020); never negative.

        Points outside ``[0, 1]`` are extrapolations past the two models, not between them, so
        they are plotted but do not count. Even a straight, bump-free path scores
        ``|L(1) - L(0)|/2`` here; for endpoints of unequal loss (consecutive checkpoints) read
        :attr:`chord_barrier` as well.
        """
        inside = (self.alphas >= 0.0) & (self.alphas <= 1.0)
        return float(self.losses[inside].max()) - (self.loss_a + self.loss_b) / 2

    @property
    def chord_barrier(self) -> float:
        """``max_{α in [0, 1]} L(α) - ((1 - α)·L(0) + α·L(1))``: the bump above the straight chord.

        Entezari et al. 2022, "The Role of Permutation Invariance in Linear Mode Connectivity of
        Neural Networks", Eq. 1; 0 for a path whose loss is linear (or convex) in α.
        """
        inside = (self.alphas >= 0.0) & (self.alphas <= 1.0)
        alphas = self.alphas[inside]
        chord = (1 - alphas) * self.loss_a + alphas * self.loss_b  # (A_inside,)
        return float((self.losses[inside] - chord).max())

    @property
    def relative_barrier(self) -> float:
        """:attr:`barrier` over the mean endpoint loss ``(L(0) + L(1))/2``."""
        return self.barrier / ((self.loss_a + self.loss_b) / 2)


def _with_endpoints(alphas: Sequence[float] | np.ndarray) -> np.ndarray:
    """Sorted unique ``alphas`` with 0 and 1 added: the barrier needs both endpoints."""
    alphas = np.asarray(alphas, dtype=np.float64)
    if alphas.ndim != 1:
        raise ConfigError(f"alphas must be a 1-D sequence, got shape {alphas.shape}.")
    return np.union1d(alphas, [0.0, 1.0])


def _check_states(targets: State, state_a: State, state_b: State) -> None:
    """Both states must hold every model tensor, with the model's shapes."""
    for label, state in (("state_a", state_a), ("state_b", state_b)):
        missing = [name for name in targets if name not in state]
        if missing:
            raise ConfigError(
                f"{label} lacks {len(missing)} of the model's tensors, e.g. {missing[:3]}; pass "
                f"a full state dict of the same architecture (see load_state)."
            )
        for name, tensor in targets.items():
            if state[name].shape != tensor.shape:
                raise ConfigError(
                    f"{label}[{name!r}] has shape {tuple(state[name].shape)}; the model's is "
                    f"{tuple(tensor.shape)}."
                )


def _distinct_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model.state_dict()`` views, each storage once: tied weights appear under two names."""
    seen: set[int] = set()
    targets = {}
    for name, tensor in model.state_dict().items():
        if tensor.data_ptr() not in seen:
            seen.add(tensor.data_ptr())
            targets[name] = tensor
    return targets


def interpolate(
    model: nn.Module,
    state_a: State,
    state_b: State,
    alphas: Sequence[float] | np.ndarray,
    loss_fn: LossFn | torch.Tensor,
    *,
    batch_size: int = 8,
    progress: bool = True,
) -> InterpolationResult:
    """Evaluate ``L((1 - α)·θ_a + α·θ_b)`` at each α (0 and 1 added if missing; any real α).

    ``model`` only provides the architecture and is restored bit for bit afterwards. ``loss_fn``
    is a callable ``model -> float`` or ``(n, L)`` eval windows (see
    :func:`analysis.landscape.as_loss_fn`). The mix is computed in float32 with ``torch.lerp``,
    which is exact at both ends, so ``α = 0, 1`` reproduce ``θ_a``, ``θ_b`` exactly.
    """
    alphas = _with_endpoints(alphas)
    loss_fn = as_loss_fn(loss_fn, batch_size)
    targets = _distinct_tensors(model)  # share storage with the model's parameters and buffers
    _check_states(targets, state_a, state_b)
    originals = {name: t.clone() for name, t in targets.items()}
    mixed = [name for name, t in targets.items() if t.is_floating_point()]
    ends_a = {n: state_a[n].detach().to(targets[n].device, torch.float32) for n in mixed}
    ends_b = {n: state_b[n].detach().to(targets[n].device, torch.float32) for n in mixed}
    losses = np.empty(alphas.size)  # (A,)
    try:
        with torch.no_grad():
            for name, tensor in targets.items():
                if not tensor.is_floating_point():
                    tensor.copy_(state_a[name])
        for j, alpha in enumerate(tqdm(alphas, desc="interpolate", disable=not progress)):
            with torch.no_grad():
                for name in mixed:
                    targets[name].copy_(torch.lerp(ends_a[name], ends_b[name], float(alpha)))
            losses[j] = float(loss_fn(model))
    finally:
        with torch.no_grad():
            for name, tensor in targets.items():
                tensor.copy_(originals[name])
    return InterpolationResult(alphas=alphas, losses=losses)


def consecutive_pairs(checkpoint_paths: Sequence[str | Path]) -> list[tuple[Path, Path]]:
    """``[(p0, p1), (p1, p2), ...]`` in the order given (sort by step first; names sort badly)."""
    paths = [Path(p) for p in checkpoint_paths]
    if len(paths) < 2:
        raise ConfigError(f"consecutive_pairs needs at least 2 checkpoints, got {len(paths)}.")
    return list(zip(paths[:-1], paths[1:], strict=True))


def load_state(path: str | Path, *, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """The state dict (on CPU) of a checkpoint folder saved with ``save_pretrained``."""
    from transformers import AutoModelForCausalLM

    if not Path(path).is_dir():
        raise CheckpointError(f"No checkpoint folder at {str(path)!r}; pass a save_pretrained dir.")
    return dict(AutoModelForCausalLM.from_pretrained(path, dtype=dtype).state_dict())


def plot_interpolations(results: Mapping[str, InterpolationResult], path: str | Path) -> Path:
    """One loss-vs-α curve per label, endpoints marked, saved to ``path``."""
    from assay.runs import pyplot, save_figure

    plt = pyplot()

    if not results:
        raise ConfigError("plot_interpolations needs at least one result.")
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for label, result in results.items():
        ax.plot(
            result.alphas,
            result.losses,
            marker=".",
            label=f"{label} (barrier {result.barrier:.3g})",
        )
    for end in (0.0, 1.0):
        ax.axvline(end, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlabel("α  (0 = θ_a, 1 = θ_b)")
    ax.set_ylabel("loss")
    ax.set_title("Linear interpolation L((1 - α)·θ_a + α·θ_b)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
