"""The LR multipliers against values worked out by hand (max_steps=100, warmup=10, resets every 30,
5 re-warmup steps, floor 0.1: the cosine runs over steps 10..100, i.e. 90 steps)."""

import doctest
import math

import pytest

from assay.errors import AssayError, ConfigError
from pretraining import schedules
from pretraining.schedules import jagged_cosine, warmup_cosine

COSINE = dict(max_steps=100, warmup_steps=10, min_lr_ratio=0.1)
JAGGED = dict(COSINE, reset_every=30, restart_warmup_steps=5)


def test_docstring_examples():
    assert doctest.testmod(schedules).failed == 0


@pytest.mark.parametrize(
    "step, expected",
    [
        (0, 0.0),
        (5, 0.5),
        (10, 1.0),  # warmup done: top of the cosine
        (20, 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 10 / 90))),
        (55, 0.55),  # half-way through the decay: 0.1 + 0.9 * 0.5
        (100, 0.1),
        (150, 0.1),  # past the end: stays at the floor
    ],
)
def test_warmup_cosine_hand_values(step, expected):
    assert warmup_cosine(step, **COSINE) == pytest.approx(expected, abs=1e-12)


def cosine_at(step):
    """The global cosine after warmup, written out for this test's numbers."""
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - 10) / 90))


@pytest.mark.parametrize(
    "step, expected",
    [
        (5, 0.5),  # global warmup untouched
        (10, 1.0),
        (29, 0.1 + 0.45 * (1 + math.cos(math.pi * 19 / 90))),  # last step before the first reset
        (30, 0.0),  # reset: the LR starts again from 0
        (32, 2 / 5 * (0.1 + 0.45 * (1 + math.cos(math.pi * 25 / 90)))),  # towards g(35)
        (34, 4 / 5 * (0.1 + 0.45 * (1 + math.cos(math.pi * 25 / 90)))),
        (35, 0.1 + 0.45 * (1 + math.cos(math.pi * 25 / 90))),  # back on the cosine
        (55, 0.55),  # mid-cycle: the plain cosine
        (60, 0.0),
        (63, 3 / 5 * (0.1 + 0.45 * (1 + math.cos(math.pi * 55 / 90)))),
        (90, 0.0),
        (92, 2 / 5 * (0.1 + 0.45 * (1 + math.cos(math.pi * 85 / 90)))),
        (99, 0.1 + 0.45 * (1 + math.cos(math.pi * 89 / 90))),
    ],
)
def test_jagged_cosine_hand_values(step, expected):
    assert jagged_cosine(step, **JAGGED) == pytest.approx(expected, abs=1e-12)


def test_jagged_cosine_is_the_cosine_outside_rewarmups_and_continuous_where_they_end():
    for step in range(101):
        since_reset = step % 30
        if step < 30 or since_reset >= 5:
            assert jagged_cosine(step, **JAGGED) == warmup_cosine(step, **COSINE)
        if step >= 30 and since_reset < 5:
            # The ramp is linear in the steps since the reset and lands on the cosine at +5.
            assert jagged_cosine(step, **JAGGED) == pytest.approx(
                since_reset / 5 * cosine_at(step - since_reset + 5)
            )


def test_no_restart_warmup_is_plain_cosine():
    jagged = dict(JAGGED, restart_warmup_steps=0)
    assert [jagged_cosine(s, **jagged) for s in range(101)] == [
        warmup_cosine(s, **COSINE) for s in range(101)
    ]


def test_zero_warmup_starts_at_the_peak():
    assert warmup_cosine(0, max_steps=10, warmup_steps=0, min_lr_ratio=0.0) == 1.0


@pytest.mark.parametrize(
    "overrides, words",
    [
        (dict(warmup_steps=100), "warmup_steps"),
        (dict(warmup_steps=-1), "warmup_steps"),
        (dict(max_steps=0), "max_steps"),
        (dict(min_lr_ratio=1.5), "min_lr_ratio"),
        (dict(restart_warmup_steps=31), "restart_warmup_steps"),
        (dict(reset_every=0), "reset_every"),
        (dict(reset_every=8), "shorter than warmup_steps"),
    ],
)
def test_bad_arguments_raise_config_error(overrides, words):
    with pytest.raises(ConfigError, match=words):
        jagged_cosine(40, **dict(JAGGED, **overrides))


def test_negative_step_is_an_error():
    with pytest.raises(AssayError, match="step"):
        warmup_cosine(-1, **COSINE)
