"""Power-law scaling fits of final loss against model size, data and compute.

The form is ``L(x) = E + A * x^(-alpha)`` (Kaplan et al. 2020, "Scaling Laws for Neural Language
Models", eqs. 1.1-1.3 fit the pure power law; Hoffmann et al. 2022, "Training Compute-Optimal
Large Language Models", eq. 2 adds the irreducible loss ``E``). Following Kaplan et al., ``N``
counts non-embedding parameters and training compute is ``C ≈ 6·N·D`` FLOPs (2ND forward,
4ND backward; their sec. 2.1). Fits are least squares on ``log L``, so every point weighs by its
relative error, as in Hoffmann et al.'s approach 3 (their eq. 3 is the Huber variant).

``scaling_fits`` turns a grid of runs into the three curves: L(N) in the data-rich regime, L(D)
at the largest model, and L(C) along the compute frontier (Kaplan et al. fig. 1).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from assay.errors import AssayError, ConfigError
from assay.runs import save_figure

VARIABLES = ("N", "D", "C")
RECORD_KEYS = ("n_params", "tokens", "loss")
_LABELS = {
    "N": "N (non-embedding parameters)",
    "D": "D (training tokens)",
    "C": "C = 6ND (training FLOPs)",
}


@dataclass(frozen=True)
class PowerLawFit:
    """A fitted ``L(x) = E + A * x^(-alpha)``; ``E`` is 0 when ``fit_irreducible`` is False.

    The ``*_err`` fields are one standard error from the fit's covariance matrix (inf where the
    data do not constrain the parameter). ``r2`` is the coefficient of determination of ``L``
    itself. ``alpha_ci`` is the bootstrap percentile interval when one was asked for.
    """

    name: str
    E: float
    A: float
    alpha: float
    E_err: float
    A_err: float
    alpha_err: float
    r2: float
    n_points: int
    fit_irreducible: bool
    alpha_ci: tuple[float, float] | None = None
    bootstrap_n: int = 0  # resamples that gave a fit

    def predict(self, x: ArrayLike) -> np.ndarray:
        """The fitted loss at ``x`` (any positive array-like; returns an array of its shape)."""
        x_arr = np.asarray(x, dtype=float)
        if np.any(x_arr <= 0):
            raise ConfigError(f"predict needs x > 0, got min {x_arr.min()!r} for L({self.name}).")
        return self.E + self.A * x_arr ** (-self.alpha)

    def __str__(self) -> str:
        law = f"{self.A:.4g}·{self.name}^-{self.alpha:.2g}"
        if self.fit_irreducible:
            law = f"{self.E:.3g} + {law}"
        notes = []
        if math.isfinite(self.alpha_err):
            notes.append(f"alpha ± {self.alpha_err:.1g}")
        if self.alpha_ci is not None:
            notes.append(f"bootstrap [{self.alpha_ci[0]:.3g}, {self.alpha_ci[1]:.3g}]")
        suffix = f" ({', '.join(notes)})" if notes else ""
        return f"L({self.name}) = {law}{suffix}"


class ScalingFits(dict):
    """``{"N"|"D"|"C": PowerLawFit}`` for the curves that were fitted; ``skipped`` maps each
    curve that was not to the reason."""

    def __init__(self) -> None:
        super().__init__()
        self.skipped: dict[str, str] = {}


# ---- fitting -------------------------------------------------------------------------------


def _check_xy(x: ArrayLike, y: ArrayLike, n_params: int, name: str) -> tuple[np.ndarray, ...]:
    x_arr = np.asarray(x, dtype=float).ravel()
    y_arr = np.asarray(y, dtype=float).ravel()
    if x_arr.shape != y_arr.shape:
        raise ConfigError(
            f"L({name}): x and y differ in length ({x_arr.size} vs {y_arr.size}); pass one loss "
            "per point."
        )
    for label, arr in (("x", x_arr), ("y", y_arr)):
        bad = ~np.isfinite(arr) | (arr <= 0)
        if bad.any():
            raise ConfigError(
                f"L({name}): a power law needs finite {label} > 0, got {arr[bad][:3].tolist()} "
                f"at positions {np.flatnonzero(bad)[:3].tolist()}; drop those points."
            )
    if x_arr.size < n_params + 1:
        raise ConfigError(
            f"L({name}): {n_params} parameters need at least {n_params + 1} points, got "
            f"{x_arr.size}; add runs or fit with irreducible=False (2 parameters)."
        )
    if np.unique(x_arr).size < n_params:
        raise ConfigError(
            f"L({name}): {n_params} parameters need at least {n_params} distinct x values, got "
            f"{np.unique(x_arr).size}; vary {name} across runs."
        )
    return x_arr, y_arr


def _loglinear(log_x: np.ndarray, log_y: np.ndarray) -> tuple[float, float, np.ndarray, float]:
    """OLS of ``log y = a + b log x``: (a, b, 2x2 covariance of (a, b), sum of squared residuals)."""
    n = log_x.size
    mean_x = log_x.mean()
    sxx = float(((log_x - mean_x) ** 2).sum())
    b = float(((log_x - mean_x) * (log_y - log_y.mean())).sum() / sxx)
    a = float(log_y.mean() - b * mean_x)
    sse = float(((log_y - a - b * log_x) ** 2).sum())
    s2 = sse / (n - 2) if n > 2 else math.inf
    var_b = s2 / sxx
    var_a = s2 * (1.0 / n + mean_x**2 / sxx)
    cov_ab = -s2 * mean_x / sxx
    return a, b, np.array([[var_a, cov_ab], [cov_ab, var_b]]), sse


def _log_model(log_x: np.ndarray, E: float, log_A: float, alpha: float) -> np.ndarray:
    # log A instead of A: A spans ~1e1..1e14 across N, D and C, which ruins the conditioning.
    return np.log(E + np.exp(log_A - alpha * log_x))


def _initial_guess(log_x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Best (E, log A, alpha) over a grid of E in [0, min y): for a fixed E the rest is a
    straight line in log-log space, so each candidate costs one regression."""
    best: tuple[float, tuple[float, float, float]] | None = None
    for frac in np.linspace(0.0, 0.99, 34):
        E = frac * float(y.min())
        a, b, _, _ = _loglinear(log_x, np.log(y - E))
        if b >= 0:
            continue
        sse = float(((_log_model(log_x, E, a, -b) - np.log(y)) ** 2).sum())
        if best is None or sse < best[0]:
            best = (sse, (E, a, -b))
    if best is None:
        raise AssayError(
            "L does not decrease with x for any irreducible loss E in [0, min L): a power law with "
            "alpha > 0 cannot fit these points; check that x and y belong together."
        )
    return best[1]


def _fit_once(x: np.ndarray, y: np.ndarray, irreducible: bool) -> tuple[np.ndarray, np.ndarray]:
    """(E, A, alpha) and their standard errors, without input checks."""
    log_x, log_y = np.log(x), np.log(y)
    if not irreducible:
        a, b, cov, _ = _loglinear(log_x, log_y)
        A = math.exp(a)
        # Delta method for A = exp(a): sd(A) = A * sd(a).
        errs = np.array([0.0, A * math.sqrt(cov[0, 0]), math.sqrt(cov[1, 1])])
        return np.array([0.0, A, -b]), errs

    from scipy.optimize import OptimizeWarning, curve_fit

    p0 = _initial_guess(log_x, y)
    # E < min(y): otherwise log(y - E) is undefined for the best point; the bound is closed in
    # curve_fit, hence the hair below it.
    lower = [0.0, -np.inf, 1e-8]
    upper = [float(y.min()) * (1 - 1e-9), np.inf, np.inf]
    try:
        with warnings.catch_warnings():
            # An exactly determined or noise-free fit has no usable covariance: reported as inf.
            warnings.simplefilter("ignore", OptimizeWarning)
            popt, pcov = curve_fit(
                _log_model, log_x, log_y, p0=p0, bounds=(lower, upper), max_nfev=20_000
            )
    except RuntimeError as err:
        raise AssayError(f"power-law fit did not converge ({err}); check the points.") from err
    E, log_A, alpha = (float(v) for v in popt)
    sd = np.sqrt(np.clip(np.diag(pcov), 0.0, None))
    A = math.exp(log_A)
    return np.array([E, A, alpha]), np.array([sd[0], A * sd[1], sd[2]])


def fit_power_law(
    x: ArrayLike,
    y: ArrayLike,
    *,
    irreducible: bool = True,
    name: str = "N",
    bootstrap: int = 0,
    seed: int = 0,
    level: float = 0.95,
) -> PowerLawFit:
    """Fit ``y = E + A * x^(-alpha)`` (``E = 0`` when ``irreducible`` is False) in log space.

    ``bootstrap`` > 0 refits that many resamples of the points (with replacement, ``seed``) and
    adds the ``level`` percentile interval of alpha. Raises ConfigError for non-positive values or
    fewer points than parameters + 1, AssayError when no power law with alpha > 0 fits.

    >>> fit = fit_power_law([1e6, 1e7, 1e8], [40.0, 20.0, 10.0], irreducible=False)
    >>> round(fit.alpha, 3)
    0.301
    """
    n_params = 3 if irreducible else 2
    x_arr, y_arr = _check_xy(x, y, n_params, name)
    if not 0 < level < 1:
        raise ConfigError(f"level must be in (0, 1), got {level!r}.")
    params, errs = _fit_once(x_arr, y_arr, irreducible)
    E, A, alpha = params
    resid = y_arr - (E + A * x_arr ** (-alpha))
    ss_tot = float(((y_arr - y_arr.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / ss_tot if ss_tot > 0 else math.nan

    alpha_ci, n_ok = None, 0
    if bootstrap > 0:
        alphas = _bootstrap_alphas(x_arr, y_arr, irreducible, bootstrap, seed, n_params)
        n_ok = len(alphas)
        if alphas:
            tail = 100 * (1 - level) / 2
            low, high = np.percentile(alphas, [tail, 100 - tail])
            alpha_ci = (float(low), float(high))
    return PowerLawFit(
        name=name,
        E=float(E),
        A=float(A),
        alpha=float(alpha),
        E_err=float(errs[0]) if irreducible else math.nan,
        A_err=float(errs[1]),
        alpha_err=float(errs[2]),
        r2=r2,
        n_points=int(x_arr.size),
        fit_irreducible=irreducible,
        alpha_ci=alpha_ci,
        bootstrap_n=n_ok,
    )


def _bootstrap_alphas(
    x: np.ndarray, y: np.ndarray, irreducible: bool, rounds: int, seed: int, n_params: int
) -> list[float]:
    rng = np.random.default_rng(seed)
    alphas = []
    for _ in range(rounds):
        idx = rng.integers(0, x.size, x.size)
        if np.unique(x[idx]).size < n_params:
            continue  # a resample with too few distinct x cannot pin the curve down
        try:
            params, _ = _fit_once(x[idx], y[idx], irreducible)
        except AssayError:
            continue
        alphas.append(float(params[2]))
    return alphas


# ---- selecting points from a grid of runs ---------------------------------------------------


def _check_records(records: Iterable[Mapping[str, Any]]) -> np.ndarray:
    """``(n_runs, 3)`` array of (N, D, loss); all problems are reported together."""
    rows, problems = [], []
    for i, rec in enumerate(records):
        missing = [k for k in RECORD_KEYS if k not in rec]
        if missing:
            problems.append(f"record {i} lacks {missing}")
            continue
        values = [rec[k] for k in RECORD_KEYS]
        try:
            values = [float(v) for v in values]
        except (TypeError, ValueError):
            problems.append(f"record {i} has non-numeric values {values}")
            continue
        if not all(math.isfinite(v) and v > 0 for v in values):
            problems.append(f"record {i} has a value that is not finite and > 0: {values}")
            continue
        rows.append(values)
    if problems:
        raise ConfigError(
            "scaling records must be dicts with positive n_params, tokens and loss: "
            + "; ".join(problems)
        )
    return np.array(rows, dtype=float).reshape(-1, 3)


def _best_of_groups(key: np.ndarray, size: np.ndarray, loss: np.ndarray) -> tuple[np.ndarray, ...]:
    """For each distinct ``key``, the loss at its largest ``size`` (mean over repeats there)."""
    xs, ys = [], []
    for k in np.unique(key):
        group = key == k
        top = group & (size == size[group].max())
        xs.append(k)
        ys.append(loss[top].mean())  # repeats (seeds) at the same point: average their noise
    return np.array(xs), np.array(ys)


def params_points(records: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """(N, L) with, for each N, the loss of its largest-D run: the data-rich regime of L(N)."""
    runs = _check_records(records)
    return _best_of_groups(runs[:, 0], runs[:, 1], runs[:, 2])


def tokens_points(records: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """(D, L) with, for each D, the loss of its largest-N run: L(D) where the model is not the
    bottleneck."""
    runs = _check_records(records)
    return _best_of_groups(runs[:, 1], runs[:, 0], runs[:, 2])


def compute_frontier(records: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """(C, L) of the runs on the compute frontier, C = 6·N·D: sorted by C, a run is kept when its
    loss is below that of every run with smaller or equal C (the lower envelope)."""
    runs = _check_records(records)
    compute = 6.0 * runs[:, 0] * runs[:, 1]
    # Sort by C, then by loss, so among runs of equal C only the best one can be kept. C is
    # compared at 1e-9 relative precision: 6*(2N)*D and 6*N*(2D) may differ in the last bit.
    same_c = np.round(np.log(compute), 9)
    order = np.lexsort((runs[:, 2], same_c))
    xs, ys, best = [], [], math.inf
    for i in order:
        if runs[i, 2] < best:
            best = runs[i, 2]
            xs.append(compute[i])
            ys.append(runs[i, 2])
    return np.array(xs), np.array(ys)


_SELECTORS = {"N": params_points, "D": tokens_points, "C": compute_frontier}


def scaling_fits(
    records: Sequence[Mapping[str, Any]],
    *,
    irreducible: bool = True,
    bootstrap: int = 0,
    seed: int = 0,
) -> ScalingFits:
    """Fit L(N), L(D) and L(C) to a grid of runs (dicts with ``n_params``, ``tokens``, ``loss``).

    Curves with too few points, or that no power law fits, are left out and their reason is put
    in ``result.skipped``.
    """
    fits = ScalingFits()
    for var in VARIABLES:
        x, y = _SELECTORS[var](records)
        try:
            fits[var] = fit_power_law(
                x, y, irreducible=irreducible, name=var, bootstrap=bootstrap, seed=seed
            )
        except AssayError as err:
            fits.skipped[var] = str(err)
    return fits


# ---- plot -----------------------------------------------------------------------------------


def plot_scaling(
    records: Sequence[Mapping[str, Any]], fits: Mapping[str, PowerLawFit], path: str | Path
) -> Path:
    """Three log-log panels (N, D, C): every run in grey, the points each curve is fitted to, and
    the fitted law with its formula as the title. Returns ``path``."""
    from assay.runs import pyplot

    plt = pyplot()

    runs = _check_records(records)
    all_x = {"N": runs[:, 0], "D": runs[:, 1], "C": 6.0 * runs[:, 0] * runs[:, 1]}
    skipped = getattr(fits, "skipped", {})
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), squeeze=False)
    for ax, var in zip(axes.flat, VARIABLES, strict=True):
        ax.plot(all_x[var], runs[:, 2], ".", color="0.6", alpha=0.5, label="all runs")
        x, y = _SELECTORS[var](records)
        ax.plot(x, y, "o", color="tab:blue", label="fitted points")
        fit = fits.get(var)
        if fit is not None and x.size:
            grid = np.geomspace(x.min() / 1.5, x.max() * 1.5, 200)
            ax.plot(grid, fit.predict(grid), "-", color="tab:orange", linewidth=1.8, label="fit")
            if fit.fit_irreducible and fit.E > 0:
                ax.axhline(fit.E, linestyle=":", color="tab:orange", alpha=0.7, label="E")
            ax.set_title(f"{fit}\nR² = {fit.r2:.3f}", fontsize=9)
        else:
            reason = skipped.get(var, "no fit given")
            ax.set_title(f"L({var}): not fitted\n{reason[:70]}", fontsize=9)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(_LABELS[var])
        ax.set_ylabel("validation loss")
        ax.grid(alpha=0.3, which="both")
        ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)
