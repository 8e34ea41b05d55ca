"""The geometry suite of ``assay analyze``: spectra of weights and updates, 1-D loss landscapes,
interpolation along each run and between runs, and activation similarity to the first run.

"Beyond Perplexity" found that low-rank and full-rank pretraining reach near-equal perplexity at
geometrically and spectrally different solutions; these are the measurements it compares. Every
function returns plain rows (lists of dicts) for the report and saves its plots under ``plots``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from analysis.interpolation import interpolate, plot_interpolations
from analysis.landscape import (
    alpha_grid,
    direction_parameters,
    landscape,
    plot_landscapes,
    random_direction,
    singular_directions,
    trajectory_directions,
)
from analysis.similarity import activation_similarity, plot_similarity
from analysis.spectra import matrix_spectra, plot_spectra, summarize_by_projection
from analysis.subjects import Subject, load_model


@dataclass
class GeometrySettings:
    random_directions: int = 3  # filter-normalised Gaussian directions (Li et al. 2018)
    singular_directions: int = 3  # u_k v_k^T for k = 1..K on every matrix
    trajectory_components: int = 2  # PCA of the run's checkpoints (needs >= 3 of them)
    radius: float = 1.0  # alpha in [-radius, radius]
    points: int = 11  # odd: alpha = 0 is on the grid
    interpolation_points: int = 11  # alpha in [0, 1]
    seed: int = 0


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def spectra_rows(subject: Subject) -> tuple[list[dict], list[dict]]:
    """Per-projection means of the final weights' spectra, and of the update from init to final
    (empty when the run did not keep its initial weights)."""
    final = _state(load_model(subject.final))
    weights = summarize_by_projection(matrix_spectra(final))
    updates: list[dict] = []
    if subject.init is not None:
        init = _state(load_model(subject.init))
        updates = summarize_by_projection(matrix_spectra(final, reference=init))
    return weights, updates


def landscape_rows(
    subject: Subject, windows, settings: GeometrySettings, plots: Path
) -> list[dict]:
    """Expected sharpness along random, singular and trajectory directions at the final model."""
    model = load_model(subject.final)
    alphas = alpha_grid(settings.radius, settings.points)
    generator = torch.Generator().manual_seed(settings.seed)
    families = {
        "random (filter-normalised)": [
            random_direction(model, generator=generator) for _ in range(settings.random_directions)
        ],
        "singular u_k v_k^T": singular_directions(model, settings.singular_directions),
    }
    if len(subject.checkpoints) >= 3 and settings.trajectory_components:
        states = [_state(load_model(ref)) for _, ref in subject.checkpoints]
        k = min(settings.trajectory_components, len(states) - 1)
        names = direction_parameters(model)
        families["trajectory PCA"] = trajectory_directions(states, k, names=names)
    results = {name: landscape(model, dirs, alphas, windows) for name, dirs in families.items()}
    plot_landscapes(results, plots / f"landscape_{subject.label}.png")
    return [
        {
            "run": subject.label,
            "directions": name,
            "n": len(families[name]),
            "loss": r.loss_zero,
            "expected_sharpness": r.expected_sharpness,
            "loss_at_radius": float(r.mean[-1]),
        }
        for name, r in results.items()
    ]


def trajectory_rows(
    subject: Subject, windows, settings: GeometrySettings, plots: Path
) -> tuple[list[dict], list[dict]]:
    """Between consecutive checkpoints of one run: the interpolation barrier, and the spectra of
    the update W_t2 - W_t1 (means over the matrices)."""
    if len(subject.checkpoints) < 2:
        return [], []
    model = load_model(subject.final)
    alphas = alpha_grid(0.5, settings.interpolation_points) + 0.5  # [0, 1]
    barriers, updates, results = [], [], {}
    step_a, state_a = subject.checkpoints[0][0], _state(load_model(subject.checkpoints[0][1]))
    for step_b, ref in subject.checkpoints[1:]:
        state_b = _state(load_model(ref))
        pair = f"step {step_a} -> {step_b}"
        result = interpolate(model, state_a, state_b, alphas, windows, progress=False)
        results[f"{step_a}->{step_b}"] = result
        barriers.append(_barrier_row(subject.label, pair, result))
        rows = matrix_spectra(state_b, reference=state_a)
        updates.append({"run": subject.label, "pair": pair,
                        **{k: sum(r[k] for r in rows) / len(rows) for k in UPDATE_SUMMARY}})  # fmt: skip
        step_a, state_a = step_b, state_b
    plot_interpolations(results, plots / f"interpolation_{subject.label}.png")
    return barriers, updates


UPDATE_SUMMARY = ("effective_rank", "stable_rank", "rank_ratio", "relative_update_norm")


def _barrier_row(run: str, pair: str, result) -> dict:
    return {
        "run": run,
        "pair": pair,
        "loss_a": result.loss_a,
        "loss_b": result.loss_b,
        "barrier": result.barrier,
        "relative_barrier": result.relative_barrier,
        "chord_barrier": result.chord_barrier,
    }


def _compatible(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(a[k].shape == b[k].shape for k in a)


def cross_run_rows(
    subjects: list[Subject], windows, settings: GeometrySettings, plots: Path
) -> tuple[list[dict], list[dict], list[str]]:
    """Interpolation from the first run to each other run at every step both saved (after step
    0, where runs with one seed coincide) and between their final models, and activation
    similarity of each run's final model to the first's; notes say what was skipped and why."""
    first = subjects[0]
    base_model = load_model(first.final)
    base = _state(base_model)
    alphas = alpha_grid(0.5, settings.interpolation_points) + 0.5
    barriers, similarity, notes, results, per_layer = [], [], [], {}, {}
    for subject in subjects[1:]:
        model = load_model(subject.final)
        state = _state(model)
        if _compatible(base, state):
            theirs = dict(subject.checkpoints)
            common = [(s, r) for s, r in first.checkpoints if s > 0 and s in theirs]
            for step, ref in common or [(None, first.final)]:
                a = base if ref == first.final else _state(load_model(ref))
                b = state if step is None or theirs[step] == subject.final else _state(
                    load_model(theirs[step])
                )  # fmt: skip
                result = interpolate(base_model, a, b, alphas, windows, progress=False)
                where = "final" if step is None else f"step {step}"
                results[f"{first.label}->{subject.label} ({where})"] = result
                barriers.append(_barrier_row(first.label, f"{where} -> {subject.label}", result))
        else:
            notes.append(f"No interpolation {subjects[0].label} -> {subject.label}: the "
                         "parameters differ in names or shapes (e.g. CoLA's factors).")  # fmt: skip
        if model.config.vocab_size != base_model.config.vocab_size:
            notes.append(f"No activation similarity for {subject.label}: another vocabulary.")
            continue
        rows = activation_similarity(model, base_model, windows)
        per_layer[subject.label] = rows
        similarity += [{"run": subject.label, **row} for row in rows]
    if results:
        plot_interpolations(results, plots / "interpolation_between_runs.png")
    if per_layer:
        plot_similarity(per_layer, plots / "cka_to_first_run.png")
    return barriers, similarity, notes


def plot_spectra_by_run(rows_by_run: dict[str, list[dict]], path: Path, metric: str) -> None:
    if any(rows_by_run.values()):
        plot_spectra(rows_by_run, path, metric=metric)
