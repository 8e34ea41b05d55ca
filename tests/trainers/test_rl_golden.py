"""The learner's numbers are pinned: every algorithm and mode, two fixed-seed steps of the tiny
model on the length env, match the metrics recorded before the learner was split into
components (``data/rl_golden.json``, written by ``rl_golden.py --out``), to 1e-6.

A change that is meant to alter the numbers re-records the file and says why in its commit."""

import json
from pathlib import Path

import pytest
from rl_golden import FAST, differences, record

GOLDEN = Path(__file__).parent / "data" / "rl_golden.json"


@pytest.mark.parametrize("name", sorted(json.loads(GOLDEN.read_text())))
def test_fixed_seed_steps_match_the_recorded_metrics(name):
    want = {name: json.loads(GOLDEN.read_text())[name]}
    got = record(FAST, steps=len(want[name]), names=[name])
    assert differences(got, want) == []
