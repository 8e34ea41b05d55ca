"""Linear interpolation between two models: endpoints, barrier arithmetic, restore, helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_llama import tiny_llama
from torch import nn
from transformers import LlamaForCausalLM

from analysis.evalset import mean_loss
from analysis.interpolation import (
    consecutive_pairs,
    interpolate,
    load_state,
    plot_interpolations,
)
from assay.errors import CheckpointError, ConfigError


@pytest.fixture(scope="module")
def pair() -> tuple[LlamaForCausalLM, LlamaForCausalLM]:
    return tiny_llama(0), tiny_llama(1)


@pytest.fixture(scope="module")
def windows() -> torch.Tensor:
    return torch.randint(0, 64, (4, 16), generator=torch.Generator().manual_seed(1))  # (n, L)


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_endpoints_are_the_two_models_and_model_is_restored(pair, windows):
    model_a, model_b = pair
    state_a, state_b = snapshot(model_a), snapshot(model_b)
    result = interpolate(model_a, state_a, state_b, [-0.5, 0.25, 0.5, 1.5], windows, progress=False)
    np.testing.assert_array_equal(result.alphas, [-0.5, 0.0, 0.25, 0.5, 1.0, 1.5])  # 0, 1 added
    assert result.loss_a == mean_loss(model_a, windows)
    assert result.loss_b == mean_loss(model_b, windows)
    assert result.barrier >= 0.0
    for name, tensor in model_a.state_dict().items():
        assert torch.equal(tensor, state_a[name]), name


def test_barrier_of_a_hand_made_loss(pair):
    # The norm gain goes 0 -> 1 along the segment, so its mean *is* α; every other tensor is equal.
    model = pair[0]
    state_a, state_b = snapshot(model), snapshot(model)
    state_a["model.norm.weight"] = torch.zeros(32)
    state_b["model.norm.weight"] = torch.ones(32)

    def loss_fn(m):
        alpha = float(m.model.norm.weight.detach().mean())
        # 1 + 3α - 2α² on [0, 1]: L(0)=1, L(1)=2, peak 2.125 at α=0.75; a spike beyond α=1.
        return 1 + alpha + 2 * alpha * (1 - alpha) + (10 * (alpha - 1) if alpha > 1 else 0.0)

    result = interpolate(
        model, state_a, state_b, [-0.5, 0.25, 0.5, 0.75, 2.0], loss_fn, progress=False
    )
    assert result.loss_a == 1.0 and result.loss_b == 2.0
    assert result.losses[result.alphas == 2.0][0] == pytest.approx(9.0)  # plotted, not counted
    assert result.barrier == pytest.approx(2.125 - 1.5)
    assert result.relative_barrier == pytest.approx(0.625 / 1.5)
    # Above the chord 1 + α the excess is 2α(1 - α), largest at α=0.5: 0.5.
    assert result.chord_barrier == pytest.approx(0.5)


def test_identical_states_have_zero_barrier(pair, windows):
    model = pair[0]
    state = snapshot(model)
    result = interpolate(model, state, state, np.linspace(-1, 2, 7), windows, progress=False)
    assert np.all(result.losses == result.loss_a)
    assert result.barrier == 0.0 and result.relative_barrier == 0.0


class Counter(nn.Module):
    def __init__(self, weight: float, count: int):
        super().__init__()
        self.weight = nn.Parameter(torch.tensor([weight]))
        self.register_buffer("count", torch.tensor(count))


def test_integer_buffers_come_from_a():
    model = Counter(0.0, 3)
    seen = []

    def loss_fn(m):
        seen.append((float(m.weight.detach()), int(m.count)))
        return float(m.weight.detach())

    result = interpolate(
        model,
        Counter(2.0, 5).state_dict(),
        Counter(4.0, 9).state_dict(),
        [0.5],
        loss_fn,
        progress=False,
    )
    assert seen == [(2.0, 5), (3.0, 5), (4.0, 5)]
    # A linear loss has no bump, yet the max-minus-mean barrier is half the endpoint gap.
    assert result.barrier == 1.0 and result.chord_barrier == 0.0
    assert int(model.count) == 3 and float(model.weight.detach()) == 0.0


def test_mismatched_states_are_rejected(pair, windows):
    model_a, _ = pair
    state = snapshot(model_a)
    broken = {k: v for k, v in state.items() if k != "lm_head.weight"}
    with pytest.raises(ConfigError, match="lacks 1"):
        interpolate(model_a, state, broken, [0.5], windows, progress=False)


def test_consecutive_pairs_and_load_state(pair, tmp_path):
    assert consecutive_pairs(["s1", "s2", "s3"]) == [
        (Path("s1"), Path("s2")),
        (Path("s2"), Path("s3")),
    ]
    with pytest.raises(ConfigError):
        consecutive_pairs(["only"])
    model = pair[1]
    model.save_pretrained(tmp_path / "ckpt")
    loaded = load_state(tmp_path / "ckpt")
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded[name], tensor), name
    with pytest.raises(CheckpointError):
        load_state(tmp_path / "missing")


def test_plot_interpolations_writes_a_file(pair, windows, tmp_path):
    model_a, model_b = pair
    result = interpolate(
        model_a, snapshot(model_a), snapshot(model_b), [0.5], windows, progress=False
    )
    path = plot_interpolations({"a->b": result}, tmp_path / "interp.png")
    assert path.exists() and path.stat().st_size > 0
