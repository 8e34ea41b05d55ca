"""CoLA and SLTrain layers: parameter counts, the maths of the forward pass, SLTrain's fixed
sparse support, and both converted into a tiny LLaMA."""

import pytest
import torch
import torch.nn.functional as F
from tiny_llama import tiny_llama

from assay.errors import ConfigError
from pretraining.cola import CoLALinear, convert_cola
from pretraining.relora import dense_state_dict
from pretraining.sltrain import SLTrainLinear, convert_sltrain


def token_batch(seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(seed))  # (B, T)


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def target_shapes(model) -> list[tuple[int, int]]:
    """(in, out) of every attention and MLP projection of the tiny LLaMA."""
    return [
        (m.in_features, m.out_features)
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and name.rsplit(".", 1)[-1].endswith("_proj")
    ]


# ---- CoLA -----------------------------------------------------------------------------------


def test_cola_shapes_and_parameter_count():
    layer = CoLALinear(32, 64, rank=8)
    assert layer.A.weight.shape == (8, 32) and layer.B.weight.shape == (64, 8)
    assert n_params(layer) == 8 * (32 + 64)
    assert n_params(CoLALinear(32, 64, rank=8, bias=True)) == 8 * (32 + 64) + 64
    assert layer(torch.randn(2, 5, 32)).shape == (2, 5, 64)


def test_cola_forward_is_b_silu_a_and_not_linear():
    layer = CoLALinear(32, 64, rank=8, generator=torch.Generator().manual_seed(0))
    x = torch.randn(3, 32)
    a, b = layer.A.weight, layer.B.weight
    torch.testing.assert_close(layer(x), F.silu(x @ a.T) @ b.T)
    # The nonlinearity is why CoLA has no dense equivalent: f(2x) != 2 f(x).
    assert not torch.allclose(layer(2 * x), 2 * layer(x), atol=1e-3)


def test_cola_init_is_nn_linear_default_and_seeded():
    layer = CoLALinear(32, 64, rank=8, generator=torch.Generator().manual_seed(0))
    assert layer.A.weight.abs().max() <= 1 / 32**0.5
    assert layer.B.weight.abs().max() <= 1 / 8**0.5
    assert layer.B.weight.abs().max() > 1 / 32**0.5  # B's bound follows its own fan-in (rank)
    again = CoLALinear(32, 64, rank=8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(layer.A.weight, again.A.weight)
    assert torch.equal(layer.B.weight, again.B.weight)


def test_convert_cola_runs_forward_and_backward():
    model = tiny_llama()
    dense_total, shapes = n_params(model), target_shapes(model)
    modules = convert_cola(model, rank=4)
    assert len(modules) == 14 and all(isinstance(m, CoLALinear) for m in modules.values())
    expected = dense_total - sum(i * o for i, o in shapes) + sum(4 * (i + o) for i, o in shapes)
    assert n_params(model) == expected

    ids = token_batch()
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


# ---- SLTrain --------------------------------------------------------------------------------


def sltrain_layer(seed: int = 0, bias: bool = False) -> SLTrainLinear:
    generator = torch.Generator().manual_seed(seed)
    return SLTrainLinear(32, 64, rank=4, alpha=8.0, density=0.1, generator=generator, bias=bias)


def test_sltrain_shapes_parameter_count_and_support():
    layer = sltrain_layer()
    nnz = round(0.1 * 32 * 64)  # 205
    assert layer.lora_A.shape == (4, 32) and layer.lora_B.shape == (64, 4)
    assert layer.sparse_values.shape == (nnz,) and layer.nnz == nnz
    assert n_params(layer) == 4 * (32 + 64) + nnz
    assert n_params(sltrain_layer(bias=True)) == 4 * (32 + 64) + nnz + 64

    index = layer.sparse_index
    assert index.dtype == torch.int64
    assert "sparse_index" in dict(layer.named_buffers())  # saved with the model, not trained
    assert torch.equal(index, index.sort().values) and index.unique().numel() == nnz
    assert index.min() >= 0 and index.max() < 32 * 64
    assert layer(torch.randn(2, 5, 32)).shape == (2, 5, 64)


def test_sltrain_weight_is_scaled_low_rank_plus_sparse():
    layer = sltrain_layer()
    sparse = torch.zeros(64, 32)
    rows, cols = layer.sparse_index // 32, layer.sparse_index % 32  # row-major (out, in)
    sparse[rows, cols] = layer.sparse_values.detach()
    expected = (8.0 / 4) * layer.lora_B.detach() @ layer.lora_A.detach() + sparse
    torch.testing.assert_close(layer.dense_weight().detach(), expected)

    x = torch.randn(3, 32)
    torch.testing.assert_close(layer(x), x @ expected.T)


def test_sltrain_gradients_reach_factors_and_values():
    layer = sltrain_layer()
    layer(torch.randn(3, 32)).square().sum().backward()
    for p in (layer.lora_A, layer.lora_B, layer.sparse_values):
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_sltrain_support_is_fixed_while_values_train():
    layer = sltrain_layer()
    support = layer.sparse_index.clone()
    values = layer.sparse_values.detach().clone()
    optimizer = torch.optim.AdamW(layer.parameters(), lr=1e-2)
    x, target = torch.randn(16, 32), torch.randn(16, 64)
    for _ in range(5):
        F.mse_loss(layer(x), target).backward()
        optimizer.step()
        optimizer.zero_grad()

    assert torch.equal(layer.sparse_index, support)
    assert not torch.equal(layer.sparse_values.detach(), values)
    with torch.no_grad():
        layer.lora_B.zero_()  # leave only S
    nonzero = layer.dense_weight().detach().flatten().nonzero().squeeze(1)
    assert nonzero.numel() > 0
    assert torch.isin(nonzero, support).all()  # S never leaves its support


def test_sltrain_rejects_bad_density():
    with pytest.raises(ConfigError, match="density"):
        SLTrainLinear(32, 64, rank=4, alpha=8.0, density=0.0)
    with pytest.raises(ConfigError, match="no sparse entry"):
        SLTrainLinear(4, 4, rank=2, alpha=2.0, density=0.01)


def test_convert_sltrain_trains_and_exports_a_plain_llama():
    model = tiny_llama()
    dense_total, shapes = n_params(model), target_shapes(model)
    modules = convert_sltrain(
        model, rank=4, alpha=8.0, density=0.05, generator=torch.Generator().manual_seed(0)
    )
    assert len(modules) == 14
    low_rank_sparse = sum(4 * (i + o) + round(0.05 * i * o) for i, o in shapes)
    assert n_params(model) == dense_total - sum(i * o for i, o in shapes) + low_rank_sparse

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    ids = token_batch()
    for _ in range(2):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        assert torch.isfinite(loss)
        optimizer.step()
        optimizer.zero_grad()

    state = dense_state_dict(model)
    assert not any("lora_" in key or "sparse_" in key for key in state)
    plain = tiny_llama(seed=123)
    plain.load_state_dict(state)  # strict
    with torch.no_grad():
        eval_ids = token_batch(seed=2)
        torch.testing.assert_close(
            plain(input_ids=eval_ids).logits, model(input_ids=eval_ids).logits
        )
