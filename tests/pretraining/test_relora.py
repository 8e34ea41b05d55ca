"""ReLoRA on a tiny LLaMA: init, frozen W, merge-and-reinit, optimizer-state pruning, export."""

import pytest
import torch
from tiny_llama import tiny_llama

from assay.errors import ConfigError
from pretraining.relora import (
    ReLoRALinear,
    dense_state_dict,
    lora_parameters,
    merge_all,
    prune_optimizer_state,
    wrap_relora,
)

RANK, ALPHA = 4, 8.0  # scale 2: a merge that forgot the scale would change the logits


def token_batch(seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 64, (2, 12), generator=torch.Generator().manual_seed(seed))  # (B, T)


def wrapped(seed: int = 0):
    model = tiny_llama(seed)
    modules = wrap_relora(model, RANK, ALPHA, generator=torch.Generator().manual_seed(seed))
    return model, modules


def adamw(model) -> torch.optim.AdamW:
    # All parameters on purpose: AdamW must leave the frozen ones alone because they get no grad.
    return torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)


def train_steps(model, optimizer, n: int) -> None:
    ids = token_batch()
    for _ in range(n):
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=token_batch(seed=2)).logits  # (B, T, V)


def test_wrap_replaces_attention_and_mlp_only():
    model, modules = wrapped()
    # 2 layers x (q, k, v, o, gate, up, down)
    assert len(modules) == 14
    assert "model.layers.1.mlp.down_proj" in modules
    assert all(isinstance(m, ReLoRALinear) for m in modules.values())
    assert model.model.layers[0].self_attn.q_proj is modules["model.layers.0.self_attn.q_proj"]
    for layer in modules.values():
        assert not layer.weight.requires_grad
        assert layer.lora_A.requires_grad and layer.lora_B.requires_grad
    # Embeddings, norms and the output head stay full-rank and trainable.
    full_rank = [model.model.embed_tokens.weight, model.model.norm.weight, model.lm_head.weight]
    full_rank += [model.model.layers[0].input_layernorm.weight]
    assert all(p.requires_grad for p in full_rank)
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert {id(p) for p in lora_parameters(modules)} <= trainable
    assert not any(id(layer.weight) in trainable for layer in modules.values())


def test_wrapped_model_starts_equal_to_the_dense_one():
    reference = logits(tiny_llama())
    model, _ = wrapped()
    torch.testing.assert_close(logits(model), reference)


def test_a_is_kaiming_and_b_zero_and_both_learn_in_the_first_cycle():
    model, modules = wrapped()
    q_proj = modules["model.layers.0.self_attn.q_proj"]
    bound = 1 / 32**0.5  # nn.Linear's default bound for fan-in 32
    assert q_proj.lora_A.abs().min() > 0 and q_proj.lora_A.abs().max() <= bound
    assert torch.count_nonzero(q_proj.lora_B) == 0

    optimizer = adamw(model)
    ids = token_batch()
    model(input_ids=ids, labels=ids).loss.backward()
    # Step 0: B learns at once (its gradient goes through the non-zero A) ...
    assert all(layer.lora_B.grad.abs().sum() > 0 for layer in modules.values())
    optimizer.step()
    optimizer.zero_grad()
    model(input_ids=ids, labels=ids).loss.backward()
    # ... and after one step B is non-zero, so A gets a gradient too, still in the first cycle.
    for layer in modules.values():
        assert layer.lora_A.grad.abs().sum() > 0
        assert layer.lora_B.grad.abs().sum() > 0


def test_zero_a_would_never_learn():
    """Why A is Kaiming: with A = B = 0 (the reference code's bug) both gradients stay zero."""
    model, modules = wrapped()
    with torch.no_grad():
        for layer in modules.values():
            layer.lora_A.zero_()
    train_steps(model, adamw(model), 3)
    assert all(torch.count_nonzero(p) == 0 for p in lora_parameters(modules))


def test_frozen_weight_gets_no_grad_and_changes_only_at_merge():
    model, modules = wrapped()
    optimizer = adamw(model)
    before = {name: layer.weight.detach().clone() for name, layer in modules.items()}
    ids = token_batch()
    for _ in range(3):
        model(input_ids=ids, labels=ids).loss.backward()
        assert all(layer.weight.grad is None for layer in modules.values())
        optimizer.step()
        optimizer.zero_grad()
    assert all(torch.equal(layer.weight, before[name]) for name, layer in modules.items())

    updates = {
        name: layer.scale * layer.lora_B.detach() @ layer.lora_A.detach()
        for name, layer in modules.items()
    }
    merge_all(modules)
    for name, layer in modules.items():
        assert not torch.equal(layer.weight, before[name])
        torch.testing.assert_close(layer.weight, before[name] + updates[name])


def test_merge_and_reinit_keeps_the_logits():
    model, modules = wrapped()
    train_steps(model, adamw(model), 3)
    assert all(torch.count_nonzero(layer.lora_B) > 0 for layer in modules.values())
    old_a = {name: layer.lora_A.detach().clone() for name, layer in modules.items()}
    reference = logits(model)

    merge_all(modules, generator=torch.Generator().manual_seed(7))

    torch.testing.assert_close(logits(model), reference, rtol=1e-5, atol=1e-5)
    for name, layer in modules.items():
        assert torch.count_nonzero(layer.lora_B) == 0
        assert torch.count_nonzero(layer.lora_A) == layer.lora_A.numel()
        assert not torch.equal(layer.lora_A, old_a[name])  # fresh factors for the next cycle


def test_merge_keeps_the_parameters_the_optimizer_tracks():
    model, modules = wrapped()
    optimizer = adamw(model)
    train_steps(model, optimizer, 2)
    ids_before = [id(p) for p in lora_parameters(modules)]
    merge_all(modules)
    tracked = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert ids_before == [id(p) for p in lora_parameters(modules)]
    assert set(ids_before) <= tracked


def trained_with_state():
    model, modules = wrapped()
    optimizer = adamw(model)
    train_steps(model, optimizer, 3)
    return model, modules, optimizer


@pytest.mark.parametrize("fraction", [0.99, 0.5])
def test_random_prune_zeroes_exactly_the_fraction(fraction):
    model, modules, optimizer = trained_with_state()
    lora = lora_parameters(modules)
    embed = model.model.embed_tokens.weight
    embed_state = {k: v.clone() for k, v in optimizer.state[embed].items()}
    for p in lora:
        assert torch.count_nonzero(optimizer.state[p]["exp_avg"]) == p.numel()

    share = prune_optimizer_state(
        optimizer, lora, mode="random", fraction=fraction, generator=torch.Generator()
    )

    expected = [round(fraction * p.numel()) for p in lora]
    assert share == pytest.approx(sum(expected) / sum(p.numel() for p in lora))
    for p, n_zero in zip(lora, expected, strict=True):
        exp_avg, exp_avg_sq = optimizer.state[p]["exp_avg"], optimizer.state[p]["exp_avg_sq"]
        assert exp_avg.numel() - torch.count_nonzero(exp_avg) == n_zero
        assert torch.equal(exp_avg == 0, exp_avg_sq == 0)  # same entries in both moments
    assert all(torch.equal(v, embed_state[k]) for k, v in optimizer.state[embed].items())


def test_magnitude_prune_keeps_the_largest_moments():
    model, modules, optimizer = trained_with_state()
    lora = lora_parameters(modules)
    before = {id(p): optimizer.state[p]["exp_avg"].clone() for p in lora}
    before_sq = {id(p): optimizer.state[p]["exp_avg_sq"].clone() for p in lora}

    share = prune_optimizer_state(optimizer, lora, mode="magnitude", fraction=0.9)

    n_kept_total = 0
    for p in lora:
        exp_avg, exp_avg_sq = optimizer.state[p]["exp_avg"], optimizer.state[p]["exp_avg_sq"]
        n_keep = p.numel() - round(0.9 * p.numel())
        n_kept_total += n_keep
        kept = exp_avg.flatten() != 0
        assert kept.sum() == n_keep
        # Every kept |m| is at least every pruned one's, and the kept values are untouched.
        magnitude = before[id(p)].abs().flatten()
        assert magnitude[kept].min() >= magnitude[~kept].max()
        assert torch.equal(exp_avg.flatten()[kept], before[id(p)].flatten()[kept])
        assert torch.equal(exp_avg_sq.flatten()[kept], before_sq[id(p)].flatten()[kept])
        assert torch.count_nonzero(exp_avg_sq.flatten()[~kept]) == 0
    total = sum(p.numel() for p in lora)
    assert share == pytest.approx((total - n_kept_total) / total)


def test_prune_skips_params_without_state_and_rejects_unknown_modes():
    model, modules = wrapped()
    optimizer = adamw(model)
    assert prune_optimizer_state(optimizer, lora_parameters(modules)) == 0.0
    with pytest.raises(ConfigError, match="magnitude"):
        prune_optimizer_state(optimizer, lora_parameters(modules), mode="magnitud")
    with pytest.raises(ConfigError, match="fraction"):
        prune_optimizer_state(optimizer, lora_parameters(modules), fraction=1.5)


def test_dense_state_dict_loads_into_a_plain_llama():
    model, modules = wrapped()
    train_steps(model, adamw(model), 3)
    merge_all(modules)
    train_steps(model, adamw(model), 2)  # a second cycle: W and B A both carry training
    state = dense_state_dict(model)
    assert not any("lora_" in key for key in state)

    plain = tiny_llama(seed=123)
    plain.load_state_dict(state)  # strict: exactly the plain LLaMA's keys
    assert set(state) == set(plain.state_dict())
    torch.testing.assert_close(logits(plain), logits(model), rtol=1e-5, atol=1e-5)


def test_wrap_errors_name_the_linear_layers():
    with pytest.raises(ConfigError, match="q_proj") as info:
        wrap_relora(tiny_llama(), RANK, ALPHA, targets=("query",))
    assert "lm_head" in str(info.value)
    with pytest.raises(ConfigError, match="rank"):
        wrap_relora(tiny_llama(), 0, ALPHA)
