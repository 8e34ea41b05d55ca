"""Representation similarity of a model's hidden states to a baseline's, layer by layer.

"Beyond Perplexity" asks whether low-rank pretraining learns the same representations as
full-rank training; it compares each layer's activations on the same tokens with:

- linear CKA (Kornblith et al. 2019, "Similarity of Neural Network Representations Revisited",
  with a linear kernel): for column-centred ``X (n, d1)``, ``Y (n, d2)``,
  ``‖Yᵀ X‖_F² / (‖Xᵀ X‖_F ‖Yᵀ Y‖_F)``. Invariant to orthogonal transforms and isotropic scaling,
  so it compares models of different widths; computed in feature space, ``O(n d²)``;
- debiased CKA: the same ratio with the unbiased HSIC estimator of Song et al. 2012 ("Feature
  Selection via Dependence Maximization"), as used by Nguyen et al. 2021 ("Do Wide and
  Deep Networks Learn the Same Things?"). Plain CKA is biased upwards when n is not much
  larger than d; the debiased one is ~0 for independent features;
- mean cosine similarity of matching rows and relative L2 distance, which need equal widths
  and, unlike CKA, are not invariant to rotations of the feature space.

Degenerate inputs (a constant or all-zero side) give nan rather than an error, so a sweep over
layers finishes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from assay.errors import AssayError
from assay.runs import save_figure

Array = torch.Tensor | np.ndarray

# Two float64 n x n Gram matrices plus a temporary: 3 · 8 · n² bytes, 600 MB at n = 5000.
DEBIASED_MAX_N = 5000
# Tokens subsampled per layer for the debiased CKA in activation_similarity.
DEBIASED_TOKENS = 2000
SIMILARITY_METRICS = ("linear_cka", "debiased_cka", "mean_cosine", "relative_l2")


# ---------------------------------------------------------------- similarity of two matrices


def _as_float64(x: Array, name: str) -> torch.Tensor:
    if not isinstance(x, (torch.Tensor, np.ndarray)):
        raise AssayError(f"{name} must be a torch tensor or numpy array, got {type(x).__name__}.")
    t = torch.as_tensor(x).detach().to(torch.float64)
    if t.ndim != 2:
        raise AssayError(f"{name} must be 2-D (n, d), got shape {tuple(t.shape)}.")
    return t


def _pair(X: Array, Y: Array, min_rows: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Both as float64 on X's device, with the same number of rows (examples)."""
    x, y = _as_float64(X, "X"), _as_float64(Y, "Y")
    if x.shape[0] != y.shape[0]:
        raise AssayError(
            f"X and Y must hold the same examples (rows), got {x.shape[0]} and {y.shape[0]} rows."
        )
    if x.shape[0] < min_rows:
        raise AssayError(f"Need at least {min_rows} rows (examples), got {x.shape[0]}.")
    return x, y.to(x.device)


def _center(x: torch.Tensor) -> torch.Tensor:
    return x - x.mean(dim=0, keepdim=True)


def linear_cka(X: Array, Y: Array) -> float:
    """Linear CKA of ``X (n, d1)`` and ``Y (n, d2)`` (Kornblith et al. 2019), in [0, 1].

    Uses the feature-space identity ``tr(K H L H) = ‖Yᵀ X‖_F²`` for centred features, so the cost
    is ``O(n · d1 · d2)`` and no ``n x n`` matrix is built. nan if either side is constant.
    """
    x, y = _pair(X, Y)
    x, y = _center(x), _center(y)
    cross = torch.linalg.matrix_norm(y.T @ x) ** 2  # (d2, d1) -> ‖YᵀX‖_F²
    norm_x = torch.linalg.matrix_norm(x.T @ x)  # (d1, d1)
    norm_y = torch.linalg.matrix_norm(y.T @ y)  # (d2, d2)
    denominator = float(norm_x * norm_y)
    return float(cross) / denominator if denominator > 0 else math.nan


def _unbiased_hsic(K: torch.Tensor, L: torch.Tensor) -> torch.Tensor:
    """Song et al.'s (2012) unbiased HSIC of Gram matrices ``K, L (n, n)`` with zeroed diagonals:
    ``[tr(KL) + 1ᵀK1 · 1ᵀL1 / ((n-1)(n-2)) - 2/(n-2) · 1ᵀKL1] / (n(n-3))``."""
    n = K.shape[0]
    trace_kl = (K * L).sum()  # tr(KL) for symmetric K, L, without an n x n matmul
    k_rows, l_rows = K.sum(dim=1), L.sum(dim=1)  # K1, L1: (n,)
    return (
        trace_kl
        + k_rows.sum() * l_rows.sum() / ((n - 1) * (n - 2))
        - 2 * (k_rows @ l_rows) / (n - 2)
    ) / (n * (n - 3))


def _gram(x: torch.Tensor) -> torch.Tensor:
    K = x @ x.T  # (n, n)
    K.fill_diagonal_(0.0)
    return K


def debiased_cka(X: Array, Y: Array, *, max_n: int = DEBIASED_MAX_N) -> float:
    """CKA with the unbiased HSIC estimator (Song et al. 2012; Nguyen et al. 2021), linear kernel.

    Builds two ``n x n`` Gram matrices: ``O(n²)`` memory (about ``24 n²`` bytes) and
    ``O(n² (d1 + d2))`` time, so ``n > max_n`` is refused; subsample rows (the same rows of X and
    Y) first. Needs ``n >= 4``. Can be slightly negative; nan when an HSIC(X, X) estimate is
    not positive (e.g. a constant side).
    """
    x, y = _pair(X, Y, min_rows=4)
    n = x.shape[0]
    if n > max_n:
        raise AssayError(
            f"debiased_cka builds two {n} x {n} Gram matrices (O(n²) memory, ~{24 * n * n / 1e9:.1f}"
            f" GB) and n = {n} exceeds max_n = {max_n}. Subsample the same rows of X and Y first "
            f"(e.g. idx = torch.randperm(n)[:{max_n}]; debiased_cka(X[idx], Y[idx])), use "
            "linear_cka, or raise max_n."
        )
    K, L = _gram(_center(x)), _gram(_center(y))
    cross = float(_unbiased_hsic(K, L))
    self_x = float(_unbiased_hsic(K, K))
    self_y = float(_unbiased_hsic(L, L))
    return cross / math.sqrt(self_x * self_y) if self_x > 0 and self_y > 0 else math.nan


def _same_shape(X: Array, Y: Array) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = _pair(X, Y, min_rows=1)
    if x.shape != y.shape:
        raise AssayError(
            f"X and Y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}; "
            "for different widths use linear_cka."
        )
    return x, y


def mean_cosine(X: Array, Y: Array) -> float:
    """Mean over rows of the cosine similarity of ``X[i]`` and ``Y[i]`` (same shape ``(n, d)``).

    A zero row has cosine 0 with anything.
    """
    x, y = _same_shape(X, Y)
    return float(F.cosine_similarity(x, y, dim=1, eps=1e-12).mean())


def relative_l2(X: Array, Y: Array) -> float:
    """``‖X - Y‖_F / ‖Y‖_F`` with ``Y`` the baseline (same shape); nan if ``Y`` is all zeros."""
    x, y = _same_shape(X, Y)
    baseline = float(torch.linalg.matrix_norm(y))
    return float(torch.linalg.matrix_norm(x - y)) / baseline if baseline > 0 else math.nan


# ---------------------------------------------------------------- hidden states of a model


@torch.no_grad()
def layer_activations(
    model: nn.Module, windows: torch.Tensor, batch_size: int = 8
) -> list[torch.Tensor]:
    """Hidden states of every layer on ``windows (n, L)``, each ``(n · L, d)`` float32 on CPU.

    Entry 0 is the embedding output, entry i the output of block i (for HF LLaMA the last one
    is after the final norm). Every token of every window counts: windows must be unpadded.
    """
    if windows.ndim != 2:
        raise AssayError(f"windows must be (n, L) token ids, got shape {tuple(windows.shape)}.")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    per_layer: list[list[torch.Tensor]] = []
    for chunk in windows.split(batch_size):
        hidden = model(input_ids=chunk.to(device), output_hidden_states=True).hidden_states
        if not per_layer:
            per_layer = [[] for _ in hidden]
        for store, h in zip(per_layer, hidden, strict=True):  # h: (B, L, d)
            store.append(h.reshape(-1, h.shape[-1]).float().cpu())  # (B · L, d)
    model.train(was_training)
    return [torch.cat(store) for store in per_layer]


def activation_similarity(
    model: nn.Module,
    baseline: nn.Module,
    windows: torch.Tensor,
    *,
    batch_size: int = 8,
    debiased_tokens: int = DEBIASED_TOKENS,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Per layer, how similar ``model``'s hidden states are to ``baseline``'s on ``windows``.

    Rows: ``layer`` (0 = embeddings), ``linear_cka`` (all tokens), ``debiased_cka`` (the same
    ``debiased_tokens`` randomly chosen tokens, drawn with ``seed``, for every layer), and
    ``mean_cosine`` and ``relative_l2`` (baseline as reference), None when the widths differ.
    """
    ours = layer_activations(model, windows, batch_size)
    theirs = layer_activations(baseline, windows, batch_size)
    if len(ours) != len(theirs):
        raise AssayError(
            f"The model has {len(ours) - 1} layers and the baseline {len(theirs) - 1}; layer-wise "
            "similarity needs the same depth."
        )
    n_tokens = ours[0].shape[0]
    generator = torch.Generator().manual_seed(seed)
    subsample = torch.randperm(n_tokens, generator=generator)[: min(debiased_tokens, n_tokens)]
    rows = []
    for layer, (x, y) in enumerate(zip(ours, theirs, strict=True)):  # x: (N, d1), y: (N, d2)
        same_width = x.shape == y.shape
        rows.append(
            {
                "layer": layer,
                "linear_cka": linear_cka(x, y),
                "debiased_cka": debiased_cka(x[subsample], y[subsample]),
                "mean_cosine": mean_cosine(x, y) if same_width else None,
                "relative_l2": relative_l2(x, y) if same_width else None,
            }
        )
    return rows


def plot_similarity(
    rows_by_label: Mapping[str, Sequence[Mapping[str, Any]]],
    path: str | Path,
    metric: str = "linear_cka",
) -> Path:
    """One line per labelled model: ``metric`` (default linear CKA) against layer."""
    from assay.runs import pyplot

    plt = pyplot()

    if metric not in SIMILARITY_METRICS:
        raise AssayError(f"Unknown metric {metric!r}; known: {', '.join(SIMILARITY_METRICS)}.")
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, rows in rows_by_label.items():
        points = [(r["layer"], r[metric]) for r in rows if r.get(metric) is not None]
        if points:
            ax.plot(*zip(*points, strict=True), marker="o", label=label)
    ax.set_xlabel("layer (0 = embeddings)")
    ax.set_ylabel(metric.replace("_", " "))
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)
