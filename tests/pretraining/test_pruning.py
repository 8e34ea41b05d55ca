"""Iterative magnitude pruning on a tiny LLaMA: sparsity schedule, which weights go, rewinding,
mask enforcement through AdamW, and the IMP loop."""

import pytest
import torch
from tiny_llama import tiny_llama
from transformers import LlamaForCausalLM

from assay.errors import AssayError, ConfigError
from pretraining.pruning import (
    MaskEnforcer,
    apply_masks,
    full_masks,
    magnitude_masks,
    mask_gradients,
    plot_imp,
    prunable_parameters,
    rewind,
    run_imp,
    snapshot_state,
    sparsity,
)

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@pytest.fixture
def model():
    return tiny_llama()


def lm_loss(model: LlamaForCausalLM, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 64, (4, 12), generator=gen)
    return model(input_ids=ids, labels=ids).loss


def train_steps(model, masks, steps: int = 3, weight_decay: float = 0.1) -> None:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=weight_decay)
    with MaskEnforcer(model, masks, optimizer=opt):
        for step in range(steps):
            opt.zero_grad()
            lm_loss(model, seed=step).backward()
            opt.step()


# ---- which weights ---------------------------------------------------------------------------


def test_prunable_parameters_are_the_llama_projections(model):
    params = prunable_parameters(model)
    assert len(params) == 2 * len(PROJECTIONS)
    assert all(name.split(".")[-2] in PROJECTIONS for name in params)
    assert all(p.dim() == 2 for p in params.values())
    assert not any("lm_head" in n or "embed" in n or "norm" in n for n in params)


def test_prunable_parameters_include_and_exclude_by_glob(model):
    params = prunable_parameters(model, include=["lm_head.weight"], exclude=["*.self_attn.*"])
    assert "lm_head.weight" in params
    assert not any("self_attn" in n for n in params)
    with pytest.raises(ConfigError, match="matches no parameter"):
        prunable_parameters(model, include=["lm_haed.weight"])


# ---- pruning ---------------------------------------------------------------------------------


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_sparsity_follows_the_geometric_schedule(model, scope):
    params = prunable_parameters(model)
    masks = None
    for round_, expected in enumerate([0.2, 0.36, 0.488], start=1):
        masks = magnitude_masks(params, masks, 0.2, scope=scope)
        assert expected == pytest.approx(1 - 0.8**round_)
        stats = sparsity(masks)
        assert stats["overall"] == pytest.approx(expected, abs=1e-3)
        if scope == "layer":
            for name, share in stats["per_layer"].items():
                # Each tensor rounds to whole weights on its own: at most half a weight per round.
                assert share == pytest.approx(expected, abs=round_ / params[name].numel()), name


def test_global_pruning_removes_the_smallest_magnitudes(model):
    params = prunable_parameters(model)
    masks = magnitude_masks(params, None, 0.3, scope="global")
    magnitudes = torch.cat([p.detach().abs().flatten() for p in params.values()])
    kept = torch.cat([m.flatten() for m in masks.values()])
    assert magnitudes[~kept].max() <= magnitudes[kept].min()
    assert int((~kept).sum()) == round(0.3 * magnitudes.numel())
    # Global ranking lets layers differ: their weight scales differ at init.
    per_layer = sparsity(masks)["per_layer"].values()
    assert max(per_layer) - min(per_layer) > 0.01


def test_layer_pruning_removes_the_smallest_magnitudes_of_each_tensor(model):
    params = prunable_parameters(model)
    masks = magnitude_masks(params, None, 0.25, scope="layer")
    for name, param in params.items():
        w = param.detach().abs()
        assert w[~masks[name]].max() <= w[masks[name]].min(), name


def test_ties_are_broken_by_position():
    params = {"a": torch.ones(2, 4), "b": torch.ones(2, 4)}
    masks = magnitude_masks(params, None, 0.25, scope="global")
    assert masks["a"].flatten().tolist() == [False] * 4 + [True] * 4
    assert masks["b"].all()
    again = magnitude_masks(params, None, 0.25, scope="global")
    assert all(torch.equal(masks[n], again[n]) for n in params)


def test_pruned_weights_stay_pruned_even_if_they_grow(model):
    params = prunable_parameters(model)
    first = magnitude_masks(params, None, 0.2)
    with torch.no_grad():  # make the pruned weights the largest: they must still not come back
        for name, p in params.items():
            p[~first[name]] = 100.0
    second = magnitude_masks(params, first, 0.2)
    for name in params:
        assert not (second[name] & ~first[name]).any()
    assert sparsity(second)["overall"] == pytest.approx(0.36, abs=1e-3)


def test_bad_arguments_raise_config_errors(model):
    params = prunable_parameters(model)
    with pytest.raises(ConfigError, match="Did you mean 'layer'"):
        magnitude_masks(params, None, 0.2, scope="layers")
    with pytest.raises(ConfigError, match="fraction"):
        magnitude_masks(params, None, 1.2)
    with pytest.raises(ConfigError, match="lack"):
        magnitude_masks(params, {}, 0.2)


# ---- masks, rewinding ------------------------------------------------------------------------


def test_rewind_restores_survivors_and_zeroes_pruned(model):
    init = snapshot_state(model)
    train_steps(model, full_masks(prunable_parameters(model)))
    params = prunable_parameters(model)
    masks = magnitude_masks(params, None, 0.5)
    rewind(model, init, masks)
    for name, param in model.named_parameters():
        if name in masks:
            assert torch.equal(param[masks[name]], init[name][masks[name]])
            assert (param[~masks[name]] == 0).all()
        else:
            assert torch.equal(param, init[name]), name
    with pytest.raises(ConfigError, match="rewind state lacks"):
        rewind(model, {}, masks)


def test_enforcer_keeps_pruned_weights_zero_through_adamw(model):
    params = prunable_parameters(model)
    masks = magnitude_masks(params, None, 0.5)
    apply_masks(model, masks)
    before = {n: p.detach().clone() for n, p in params.items()}
    train_steps(model, masks, steps=4, weight_decay=0.1)
    for name, param in params.items():
        assert (param[~masks[name]] == 0).all(), name
        assert not torch.equal(param[masks[name]], before[name][masks[name]]), name


def test_without_the_enforcer_adamw_revives_pruned_weights(model):
    params = prunable_parameters(model)
    masks = magnitude_masks(params, None, 0.5)
    apply_masks(model, masks)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    lm_loss(model).backward()
    opt.step()
    assert any((p[~masks[n]] != 0).any() for n, p in params.items())


def test_mask_gradients_zeroes_pruned_entries(model):
    params = prunable_parameters(model)
    masks = magnitude_masks(params, None, 0.5)
    lm_loss(model).backward()
    mask_gradients(model, masks)
    for name, param in params.items():
        assert (param.grad[~masks[name]] == 0).all()
        assert (param.grad[masks[name]] != 0).any()


# ---- the loop --------------------------------------------------------------------------------


def test_run_imp_records_each_round_with_rising_sparsity(model, tmp_path):
    init = snapshot_state(model)
    seen = []

    def train_fn(m, masks, round_):
        seen.append(round_)
        train_steps(m, masks, steps=2)

    def eval_fn(m):
        with torch.no_grad():
            return lm_loss(m, seed=99).item()

    records = run_imp(
        model,
        rounds=3,
        fraction=0.2,
        scope="global",
        rewind_state=init,
        train_fn=train_fn,
        eval_fn=eval_fn,
    )
    assert seen == [0, 1, 2, 3]
    assert [r["round"] for r in records] == [0, 1, 2, 3]
    sparsities = [r["sparsity"] for r in records]
    assert sparsities[0] == 0.0
    assert sparsities == pytest.approx([0.0, 0.2, 0.36, 0.488], abs=1e-3)
    assert all(set(r) == {"round", "sparsity", "loss", "per_layer"} for r in records)
    assert all(isinstance(r["loss"], float) for r in records)
    path = plot_imp(records, tmp_path / "imp.png")
    assert path.exists() and path.stat().st_size > 0


def test_run_imp_rejects_a_train_fn_that_revives_weights(model):
    def careless_train(m, masks, round_):
        opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
        lm_loss(m).backward()
        opt.step()

    with pytest.raises(AssayError, match="MaskEnforcer"):
        run_imp(
            model,
            rounds=1,
            fraction=0.2,
            rewind_state=snapshot_state(model),
            train_fn=careless_train,
            eval_fn=lambda m: 0.0,
        )
