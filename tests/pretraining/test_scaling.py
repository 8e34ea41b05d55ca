"""Power-law fits recover known exponents; the L(N), L(D), L(C) point selection; errors; plot."""

import math

import numpy as np
import pytest

from assay.errors import ConfigError
from pretraining.scaling import (
    PowerLawFit,
    compute_frontier,
    fit_power_law,
    params_points,
    plot_scaling,
    scaling_fits,
    tokens_points,
)

E_TRUE, A_TRUE, ALPHA_TRUE = 1.69, 406.4, 0.34
N_GRID = np.geomspace(1e6, 1e10, 12)


def law(x):
    return E_TRUE + A_TRUE * np.asarray(x) ** -ALPHA_TRUE


# ---- fitting -------------------------------------------------------------------------------


def test_noise_free_fit_recovers_all_parameters():
    fit = fit_power_law(N_GRID, law(N_GRID))
    assert fit.alpha == pytest.approx(ALPHA_TRUE, rel=1e-4)
    assert pytest.approx(E_TRUE, rel=1e-4) == fit.E
    assert pytest.approx(A_TRUE, rel=1e-3) == fit.A
    assert fit.r2 == pytest.approx(1.0)
    assert fit.n_points == 12 and fit.fit_irreducible
    np.testing.assert_allclose(fit.predict(N_GRID), law(N_GRID), rtol=1e-6)
    assert str(fit) == "L(N) = 1.69 + 406.4·N^-0.34 (alpha ± " + f"{fit.alpha_err:.1g})"


def test_pure_power_law_is_exact_in_log_space():
    y = 52.0 * N_GRID**-0.076
    fit = fit_power_law(N_GRID, y, irreducible=False, name="D")
    assert fit.alpha == pytest.approx(0.076, rel=1e-9)
    assert pytest.approx(52.0, rel=1e-9) == fit.A
    assert fit.E == 0.0 and math.isnan(fit.E_err)
    assert str(fit).startswith("L(D) = 52·D^-0.076")


def test_noisy_fit_is_within_its_error_bars():
    # 1% multiplicative noise: the standard errors say how far the estimates may stray.
    rng = np.random.default_rng(0)
    y = law(N_GRID) * np.exp(rng.normal(0.0, 0.01, N_GRID.size))
    fit = fit_power_law(N_GRID, y, bootstrap=200, seed=0)
    assert abs(fit.alpha - ALPHA_TRUE) < 4 * fit.alpha_err
    assert abs(fit.E - E_TRUE) < 4 * fit.E_err
    assert abs(math.log(fit.A / A_TRUE)) < 4 * fit.A_err / fit.A
    assert fit.alpha == pytest.approx(ALPHA_TRUE, abs=0.05)
    assert pytest.approx(E_TRUE, abs=0.2) == fit.E
    assert fit.alpha_err < 0.05
    assert fit.bootstrap_n > 150
    low, high = fit.alpha_ci
    assert low < ALPHA_TRUE < high
    assert "bootstrap [" in str(fit)


def test_noisy_pure_power_law():
    rng = np.random.default_rng(1)
    y = 406.4 * N_GRID**-0.34 * np.exp(rng.normal(0.0, 0.02, N_GRID.size))
    fit = fit_power_law(N_GRID, y, irreducible=False)
    assert abs(fit.alpha - 0.34) < 4 * fit.alpha_err
    assert fit.alpha == pytest.approx(0.34, abs=0.02)


@pytest.mark.parametrize(
    ("x", "y", "irreducible", "match"),
    [
        ([1e6, 1e7, 1e8], [3.0, 2.5, 2.2], True, "at least 4 points"),
        ([1e6, 1e7], [3.0, 2.5], False, "at least 3 points"),
        ([1e6, 0.0, 1e8, 1e9], [3.0, 2.5, 2.2, 2.1], True, "x > 0"),
        ([1e6, 1e7, 1e8, 1e9], [3.0, -2.5, 2.2, 2.1], True, "y > 0"),
        ([1e6, 1e7, 1e8], [3.0, 2.5], False, "differ in length"),
        ([1e6, 1e6, 1e6, 1e7], [3.0, 2.9, 3.1, 2.5], True, "distinct x"),
    ],
)
def test_bad_input_raises_config_error(x, y, irreducible, match):
    with pytest.raises(ConfigError, match=match):
        fit_power_law(x, y, irreducible=irreducible)


def test_predict_rejects_non_positive_x():
    fit = PowerLawFit("C", 1.0, 2.0, 0.5, 0, 0, 0, 1.0, 4, True)
    assert float(fit.predict(4.0)) == pytest.approx(2.0)
    with pytest.raises(ConfigError):
        fit.predict([0.0])


# ---- selecting points ----------------------------------------------------------------------


def grid_records():
    """N in {1, 2, 4}e6, D in {1, 2, 4}e8 tokens, loss from a Chinchilla-like law."""
    records = []
    for n in (1e6, 2e6, 4e6):
        for d in (1e8, 2e8, 4e8):
            loss = 1.5 + 300 * n**-0.34 + 400 * d**-0.28
            records.append({"n_params": n, "tokens": d, "loss": loss})
    return records


def test_l_of_n_takes_the_largest_d_and_l_of_d_the_largest_n():
    records = grid_records()
    x, y = params_points(records)
    np.testing.assert_array_equal(x, [1e6, 2e6, 4e6])
    np.testing.assert_allclose(y, [1.5 + 300 * n**-0.34 + 400 * 4e8**-0.28 for n in x])
    x, y = tokens_points(records)
    np.testing.assert_array_equal(x, [1e8, 2e8, 4e8])
    np.testing.assert_allclose(y, [1.5 + 300 * 4e6**-0.34 + 400 * d**-0.28 for d in x])


def test_frontier_is_the_lower_envelope():
    # C = 6ND; losses picked by hand so that some runs sit above the envelope.
    runs = [
        (1e6, 1e8, 4.0),  # C = 6e14, first: on the frontier
        (2e6, 1e8, 3.6),  # C = 1.2e15: better, kept
        (1e6, 2e8, 3.8),  # C = 1.2e15 too, worse than 3.6 at equal C: dropped
        (4e6, 1e8, 3.7),  # C = 2.4e15: worse than 3.6 at smaller C: dropped
        (2e6, 2e8, 3.3),  # C = 2.4e15: kept
        (1e6, 4e8, 3.5),  # C = 2.4e15: dropped
        (4e6, 2e8, 3.3),  # C = 4.8e15: ties 3.3, not strictly below: dropped
        (2e6, 4e8, 3.1),  # C = 4.8e15: kept
        (4e6, 4e8, 2.9),  # C = 9.6e15: kept
    ]
    records = [{"n_params": n, "tokens": d, "loss": loss} for n, d, loss in runs]
    x, y = compute_frontier(records)
    np.testing.assert_allclose(x, [6e14, 1.2e15, 2.4e15, 4.8e15, 9.6e15])
    np.testing.assert_allclose(y, [4.0, 3.6, 3.3, 3.1, 2.9])


def test_scaling_fits_fits_what_it_can_and_says_why_not():
    records = grid_records()
    fits = scaling_fits(records, irreducible=False)
    assert set(fits) == {"N", "D", "C"}
    assert fits["N"].name == "N" and fits["C"].name == "C"
    # With only three N values and a loss floor, the 3-parameter form has too few points.
    fits = scaling_fits(records, irreducible=True)
    assert "N" not in fits and "D" not in fits
    assert "at least 4 points" in fits.skipped["N"]
    # The frontier has 5 distinct C values (6e14 ... 9.6e15), enough for the 3-parameter form.
    assert fits["C"].n_points == 5


def test_records_are_checked_all_at_once():
    with pytest.raises(ConfigError, match=r"record 0 lacks \['tokens'\].*record 1"):
        scaling_fits([{"n_params": 1e6, "loss": 3.0}, {"n_params": 1e6, "tokens": 0, "loss": 3.0}])


def test_plot_is_written(tmp_path):
    records = []
    for n in np.geomspace(1e6, 1e9, 5):
        for d in np.geomspace(1e8, 1e11, 5):
            records.append(
                {"n_params": n, "tokens": d, "loss": 1.69 + 406.4 * n**-0.34 + 410.7 * d**-0.28}
            )
    fits = scaling_fits(records)
    assert set(fits) == {"N", "D", "C"} and not fits.skipped
    # Runs of equal C = 6ND (up to float rounding) count once on the frontier.
    assert fits["C"].n_points == len(
        np.unique(np.round(np.log([6 * r["n_params"] * r["tokens"] for r in records]), 9))
    )
    path = plot_scaling(records, fits, tmp_path / "plots" / "scaling.png")
    assert path.exists() and path.stat().st_size > 10_000
