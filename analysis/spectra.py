"""Spectra of weight matrices and of weight updates.

"Beyond Perplexity" compares low-rank pretraining methods with full-rank training by the singular
values of each projection, and of the update ``W - W_ref`` a run applied to it. Every metric here
is a function of the singular values ``σ_1 >= ... >= σ_k`` (``k = min(m, n)``), which are
computed once per matrix, in float64, by ``torch.linalg.svdvals``:

- numerical rank: ``#{σ_i > tol}``, by default ``tol = σ_1 · max(m, n) · eps`` with ``eps`` the
  machine epsilon of the matrix's stored dtype (the convention of ``numpy.linalg.matrix_rank``);
- rank ratio: rank / k;
- effective rank (Roy & Vetterli 2007, "The effective rank: a measure of effective
  dimensionality"): ``exp(H(p))`` with ``p_i = σ_i / Σ_j σ_j`` and Shannon entropy ``H``;
- stable rank: ``‖W‖_F² / ‖W‖_2² = Σ σ_i² / σ_1²``;
- spectral gap ``σ_1 - σ_2`` and spectral ratio ``σ_1 / σ_2``;
- the count (and fraction of k) of singular values strictly above ``threshold · σ_1``.

An all-zero matrix (e.g. the update of a frozen layer) has rank, effective rank and stable rank 0
rather than an error, so a whole model can be tabulated in one pass.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from assay.errors import AssayError
from assay.runs import save_figure

# The columns of a matrix_spectra row that summarize_by_projection averages.
SPECTRAL_METRICS = (
    "rank",
    "rank_ratio",
    "effective_rank",
    "stable_rank",
    "spectral_norm",
    "frobenius_norm",
    "spectral_gap",
    "spectral_ratio",
    "count_above",
    "fraction_above",
)
UPDATE_METRICS = ("update_norm", "relative_update_norm")

# A dotted name part containing "embed", or one of these, marks an embedding / output head.
_EMBEDDING_PARTS = frozenset({"lm_head", "wte", "wpe", "embed_out"})
_INDEX = re.compile(r"^\d+$")


# ---------------------------------------------------------------- metrics on one matrix


def _check_matrix(W: torch.Tensor) -> torch.Tensor:
    if not isinstance(W, torch.Tensor):
        raise AssayError(f"Expected a torch.Tensor weight matrix, got {type(W).__name__}.")
    if W.ndim != 2:
        raise AssayError(
            f"Spectral metrics need a 2-D matrix, got shape {tuple(W.shape)}; reshape it first."
        )
    if W.numel() == 0:
        raise AssayError(f"Spectral metrics need a non-empty matrix, got shape {tuple(W.shape)}.")
    return W


def _eps(dtype: torch.dtype) -> float:
    # The rounding floor is that of the dtype the weights were stored in, not float64's:
    # a float32 matrix cast up still carries float32 noise in its small singular values.
    return torch.finfo(dtype).eps if dtype.is_floating_point else torch.finfo(torch.float64).eps


def singular_values(W: torch.Tensor) -> torch.Tensor:
    """Singular values of the 2-D ``W`` in descending order, float64, ``(min(m, n),)``."""
    return torch.linalg.svdvals(_check_matrix(W).detach().to(torch.float64))


def _default_tol(sigma: torch.Tensor, shape: Sequence[int], eps: float) -> float:
    return float(sigma[0]) * max(shape) * eps


def _rank(sigma: torch.Tensor, tol: float) -> int:
    return int((sigma > tol).sum())


def _effective_rank(sigma: torch.Tensor) -> float:
    total = sigma.sum()
    if total <= 0:
        return 0.0
    p = sigma / total
    p = p[p > 0]  # 0 · log 0 = 0
    return math.exp(float(-(p * p.log()).sum()))


def _stable_rank(sigma: torch.Tensor) -> float:
    top = float(sigma[0])
    return 0.0 if top == 0 else float((sigma**2).sum()) / top**2


def _second(sigma: torch.Tensor) -> float:
    return float(sigma[1]) if len(sigma) > 1 else 0.0  # a vector has one singular value


def _spectral_ratio(sigma: torch.Tensor) -> float:
    top, second = float(sigma[0]), _second(sigma)
    if second > 0:
        return top / second
    return math.inf if top > 0 else math.nan


def _count_above(sigma: torch.Tensor, threshold: float, relative: bool) -> int:
    cut = threshold * float(sigma[0]) if relative else threshold
    return int((sigma > cut).sum())


def matrix_rank(W: torch.Tensor, tol: float | None = None) -> int:
    """Numerical rank: singular values above ``tol`` (default ``σ_1 · max(m, n) · eps(dtype)``).

    With 16-bit weights the default exceeds ``σ_1`` once ``max(m, n) >= 1/eps`` (128 for
    bfloat16) and every matrix reads as rank 0: pass an explicit ``tol`` for those.
    """
    sigma = singular_values(W)
    return _rank(sigma, _default_tol(sigma, W.shape, _eps(W.dtype)) if tol is None else tol)


def rank_ratio(W: torch.Tensor, tol: float | None = None) -> float:
    """Numerical rank divided by the largest possible rank ``min(m, n)``."""
    return matrix_rank(W, tol) / min(W.shape)


def effective_rank(W: torch.Tensor) -> float:
    """Roy & Vetterli (2007) effective rank ``exp(-Σ p_i log p_i)``, ``p_i = σ_i / Σ σ_j``.

    Equals r for r equal non-zero singular values; 0 for the zero matrix.
    """
    return _effective_rank(singular_values(W))


def stable_rank(W: torch.Tensor) -> float:
    """``‖W‖_F² / ‖W‖_2²``, between 1 and the rank (0 for the zero matrix)."""
    return _stable_rank(singular_values(W))


def spectral_gap(W: torch.Tensor) -> float:
    """Absolute gap ``σ_1 - σ_2`` (``σ_2 = 0`` for a single row or column)."""
    sigma = singular_values(W)
    return float(sigma[0]) - _second(sigma)


def spectral_ratio(W: torch.Tensor) -> float:
    """Relative gap ``σ_1 / σ_2``: inf when ``σ_2 = 0 < σ_1``, nan for the zero matrix."""
    return _spectral_ratio(singular_values(W))


def count_above(W: torch.Tensor, threshold: float, relative: bool = True) -> int:
    """How many singular values are strictly above ``threshold · σ_1`` (or ``threshold`` when
    ``relative`` is False)."""
    return _count_above(singular_values(W), threshold, relative)


def fraction_above(W: torch.Tensor, threshold: float, relative: bool = True) -> float:
    """:func:`count_above` divided by ``min(m, n)``."""
    return count_above(W, threshold, relative) / min(W.shape)


def _metrics(
    sigma: torch.Tensor, shape: Sequence[int], eps: float, rank_rtol: float | None, above: float
) -> dict[str, float]:
    """Every SPECTRAL_METRICS column from one matrix's singular values."""
    k = min(shape)
    tol = _default_tol(sigma, shape, eps) if rank_rtol is None else rank_rtol * float(sigma[0])
    rank = _rank(sigma, tol)
    n_above = _count_above(sigma, above, relative=True)
    return {
        "rank": rank,
        "rank_ratio": rank / k,
        "effective_rank": _effective_rank(sigma),
        "stable_rank": _stable_rank(sigma),
        "spectral_norm": float(sigma[0]),
        "frobenius_norm": float(sigma.square().sum().sqrt()),
        "spectral_gap": float(sigma[0]) - _second(sigma),
        "spectral_ratio": _spectral_ratio(sigma),
        "count_above": n_above,
        "fraction_above": n_above / k,
    }


# ---------------------------------------------------------------- a whole model


def _state_dict(model_or_state: nn.Module | Mapping[str, torch.Tensor]) -> Mapping:
    if isinstance(model_or_state, nn.Module):
        # ReLoRA / SLTrain layers become the dense (out, in) weight they stand for.
        from pretraining.relora import dense_state_dict

        return dense_state_dict(model_or_state)
    if isinstance(model_or_state, Mapping):
        return model_or_state
    raise AssayError(f"Expected an nn.Module or a state dict, got {type(model_or_state).__name__}.")


def is_embedding(name: str) -> bool:
    """True for token / position embeddings and the output head, judged by the parameter name."""
    return any("embed" in part or part in _EMBEDDING_PARTS for part in name.split("."))


def _describe(name: str) -> tuple[int | None, str]:
    """``(layer index, projection)`` of a parameter name: the first numeric part and the last
    module name, e.g. ``model.layers.3.self_attn.q_proj.weight`` -> ``(3, "q_proj")``."""
    parts = name.split(".")
    if parts[-1] == "weight" and len(parts) > 1:
        parts = parts[:-1]
    layer = next((int(p) for p in parts if _INDEX.match(p)), None)
    return layer, parts[-1]


def _matrices(state: Mapping, include_embeddings: bool) -> list[tuple[str, torch.Tensor]]:
    return [
        (name, t)
        for name, t in state.items()
        if isinstance(t, torch.Tensor)
        and t.ndim == 2
        and t.is_floating_point()
        and (include_embeddings or not is_embedding(name))
    ]


def matrix_spectra(
    model_or_state: nn.Module | Mapping[str, torch.Tensor],
    *,
    reference: nn.Module | Mapping[str, torch.Tensor] | None = None,
    include_embeddings: bool = False,
    above: float = 0.1,
    rank_rtol: float | None = None,
) -> list[dict[str, Any]]:
    """One row per 2-D floating-point weight: its spectrum, or that of its update.

    Columns: ``name``, ``layer`` (first numeric name part, or None), ``projection`` (the last
    module name, e.g. ``q_proj``), ``shape``, ``target`` (``"weight"`` or ``"update"``) and
    every metric of :data:`SPECTRAL_METRICS`. ``count_above``/``fraction_above`` count singular
    values above ``above · σ_1``; the rank uses ``rank_rtol · σ_1`` as tolerance when given
    (else the :func:`matrix_rank` default).

    With ``reference`` (a state dict or model: initial weights, an earlier checkpoint) the metrics
    describe ``W - W_ref`` and two columns are added: ``update_norm`` ``‖W - W_ref‖_F`` and
    ``relative_update_norm`` ``‖W - W_ref‖_F / ‖W_ref‖_F``. Embeddings and the output head
    (:func:`is_embedding`) are skipped unless ``include_embeddings``. A module is first turned
    into its dense state dict (:func:`pretraining.relora.dense_state_dict`); CoLA keeps its
    factors, which appear as projections ``A`` and ``B``.
    """
    state = _state_dict(model_or_state)
    ref_state = None if reference is None else _state_dict(reference)
    rows = []
    for name, W in _matrices(state, include_embeddings):
        layer, projection = _describe(name)
        row: dict[str, Any] = {
            "name": name,
            "layer": layer,
            "projection": projection,
            "shape": tuple(W.shape),
            "target": "weight" if ref_state is None else "update",
        }
        matrix, dtype = W.detach().to(torch.float64), W.dtype
        if ref_state is not None:
            W_ref = _reference_for(name, W, ref_state)
            ref64 = W_ref.detach().to(device=W.device, dtype=torch.float64)
            matrix = matrix - ref64  # exact for float32 inputs: no float32 rounding of Δ
            dtype = torch.promote_types(W.dtype, W_ref.dtype)
            update_norm = float(torch.linalg.matrix_norm(matrix))
            ref_norm = float(torch.linalg.matrix_norm(ref64))
            row["update_norm"] = update_norm
            row["relative_update_norm"] = update_norm / ref_norm if ref_norm > 0 else math.inf
        sigma = torch.linalg.svdvals(matrix)
        row.update(_metrics(sigma, W.shape, _eps(dtype), rank_rtol, above))
        rows.append(row)
    return rows


def _reference_for(name: str, W: torch.Tensor, ref_state: Mapping) -> torch.Tensor:
    if name not in ref_state:
        raise AssayError(
            f"The reference has no tensor {name!r}; pass a reference of the same architecture "
            "(e.g. the initial or an earlier checkpoint of the same run)."
        )
    W_ref = ref_state[name]
    if tuple(W_ref.shape) != tuple(W.shape):
        raise AssayError(
            f"{name!r} has shape {tuple(W.shape)} but {tuple(W_ref.shape)} in the reference; "
            "updates are only defined between checkpoints of the same architecture."
        )
    return W_ref


def summarize_by_projection(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean of every metric per projection type, in order of first appearance.

    Each output row has ``projection``, ``n_matrices`` and the mean of each column of
    :data:`SPECTRAL_METRICS` and :data:`UPDATE_METRICS` present in the input rows.
    """
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(row["projection"], []).append(row)
    summary = []
    for projection, members in groups.items():
        out: dict[str, Any] = {"projection": projection, "n_matrices": len(members)}
        for key in SPECTRAL_METRICS + UPDATE_METRICS:
            values = [float(r[key]) for r in members if key in r]
            if values:
                out[key] = sum(values) / len(values)
        summary.append(out)
    return summary


def plot_spectra(
    rows_by_label: Mapping[str, Sequence[Mapping[str, Any]]],
    path: str | Path,
    metric: str = "effective_rank",
) -> Path:
    """Grouped bars: per projection type, the mean ``metric`` of each labelled model."""
    from assay.runs import pyplot

    plt = pyplot()

    known = SPECTRAL_METRICS + UPDATE_METRICS
    if metric not in known:
        raise AssayError(f"Unknown spectral metric {metric!r}; known: {', '.join(known)}.")
    summaries = {label: summarize_by_projection(rows) for label, rows in rows_by_label.items()}
    projections = list(dict.fromkeys(s["projection"] for ss in summaries.values() for s in ss))
    width = 0.8 / max(len(summaries), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(projections)), 4))
    for i, (label, summary) in enumerate(summaries.items()):
        by_projection = {s["projection"]: s.get(metric, math.nan) for s in summary}
        xs = [j + (i - (len(summaries) - 1) / 2) * width for j in range(len(projections))]
        ax.bar(xs, [by_projection.get(p, math.nan) for p in projections], width, label=label)
    ax.set_xticks(range(len(projections)), projections)
    ax.set_ylabel(f"mean {metric}")
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)
