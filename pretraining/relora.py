"""ReLoRA: high-rank training through a sequence of merged low-rank updates.

Lialin et al. 2023, "ReLoRA: High-Rank Training Through Low-Rank Updates". Each target linear
layer keeps a frozen dense weight ``W`` and trains a LoRA pair ``(A, B)``:

    y = W x + b + (alpha / r) * B A x                                    (LoRA, Hu et al. 2021)

Every ``reset_every`` steps the product is merged into ``W`` and the factors restart
(:meth:`ReLoRALinear.merge_and_reinit`), most of their Adam state is pruned
(:func:`prune_optimizer_state`) and the LR re-warms (:func:`pretraining.schedules.jagged_cosine`).
The sum of ``k`` rank-``r`` updates can reach rank ``k * r``, which is the point of the method.

This module also holds the pieces the other low-rank layers share: :func:`replace_linears`
(swap named ``nn.Linear`` layers of a model) and :func:`dense_state_dict` (export any layer that
has a ``dense_weight()`` method as a plain ``.weight``, so the result loads into
``LlamaForCausalLM``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from assay.errors import ConfigError, did_you_mean
from assay.sharding import assign_full, full_tensor

# The attention and MLP projections of a transformers LlamaForCausalLM.
LLAMA_LINEAR_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
PRUNE_MODES = ("random", "magnitude")


class ReLoRALinear(nn.Module):
    """A frozen dense linear layer plus a trainable LoRA pair that can be merged into it.

    ``lora_A`` ``(rank, in)`` is Kaiming-uniform initialised like ``nn.Linear``'s weight and
    ``lora_B`` ``(out, rank)`` is zero, so the layer starts equal to the dense one while both
    factors learn from the first step (B's gradient is non-zero because A is; A's follows once B
    moves). The paper states this init; the reference repository zeroes A in some code paths, and
    with B also zero neither factor then gets a gradient for the whole first cycle.

    Random draws happen on the CPU in float32 and are then copied to the weight's device and
    dtype, so ``generator`` is a CPU ``torch.Generator`` whatever device the model is on.
    """

    def __init__(
        self,
        weight: nn.Parameter,  # (out, in)
        bias: nn.Parameter | None,  # (out,)
        rank: int,
        alpha: float,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        _check_rank_alpha(rank, alpha)
        self.out_features, self.in_features = weight.shape
        self.rank = rank
        self.scale = alpha / rank
        self.weight = weight
        self.weight.requires_grad_(False)
        self.bias = bias
        if self.bias is not None:
            self.bias.requires_grad_(False)
        factory = dict(device=weight.device, dtype=weight.dtype)
        self.lora_A = nn.Parameter(torch.empty(rank, self.in_features, **factory))
        self.lora_B = nn.Parameter(torch.empty(self.out_features, rank, **factory))
        self.reset_lora(generator)

    @classmethod
    def from_linear(
        cls, linear: nn.Linear, rank: int, alpha: float, generator: torch.Generator | None = None
    ) -> ReLoRALinear:
        """Wrap ``linear``, reusing (and freezing) its weight and bias parameters."""
        return cls(linear.weight, linear.bias, rank, alpha, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., in) -> (..., out)
        dense = F.linear(x, self.weight, self.bias)
        low_rank = F.linear(F.linear(x, self.lora_A), self.lora_B)  # (..., rank) -> (..., out)
        return dense + self.scale * low_rank

    @torch.no_grad()
    def reset_lora(self, generator: torch.Generator | None = None) -> None:
        """A <- Kaiming-uniform (as ``nn.Linear``'s default), B <- 0. Sharded (FSDP2), every
        rank draws the whole A from the same generator and keeps its shard."""
        assign_full(self.lora_A, _kaiming_uniform(self.lora_A.shape, generator))
        self.lora_B.zero_()

    def dense_weight(self) -> torch.Tensor:
        """The effective weight ``W + (alpha / r) * B @ A``, ``(out, in)``, in W's dtype."""
        return self.weight + (self.scale * self.lora_B @ self.lora_A).to(self.weight.dtype)

    @torch.no_grad()
    def merge_and_reinit(self, generator: torch.Generator | None = None) -> None:
        """Fold the low-rank update into W and restart the factors; the output is unchanged.

        The product is formed in float32 and rounded once into W's dtype, so a bf16 W loses no
        more precision than one bf16 addition. A and B stay the same Parameter objects, so the
        optimizer keeps tracking them; prune its state with :func:`prune_optimizer_state`.
        """
        a, b, w = (full_tensor(t) for t in (self.lora_A, self.lora_B, self.weight))
        delta = self.scale * (b.float() @ a.float())  # (out, in)
        assign_full(self.weight, w + delta.to(w.dtype))  # sharded: each rank keeps its rows
        self.reset_lora(generator)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"rank={self.rank}, scale={self.scale:g}, bias={self.bias is not None}"
        )


def replace_linears(
    model: nn.Module, targets: Iterable[str], build: Callable[[nn.Linear], nn.Module]
) -> dict[str, nn.Module]:
    """Replace every ``nn.Linear`` whose attribute name is in ``targets`` by ``build(linear)``.

    Returns ``{qualified name: new module}`` in ``model.named_modules()`` order. Raises
    :class:`ConfigError` listing the linear layers' names when nothing matches.
    """
    targets = tuple(targets)
    found = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and name.rpartition(".")[2] in targets
    ]
    if not found:
        linear_names = sorted(
            {n.rpartition(".")[2] for n, m in model.named_modules() if isinstance(m, nn.Linear)}
        )
        hint = did_you_mean(targets[0], linear_names) if targets else ""
        raise ConfigError(
            f"No nn.Linear layer of the model is named one of {list(targets)}; the model's linear "
            f"layers are named {linear_names}.{hint}"
        )
    replaced = {}
    for name, linear in found:
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        replaced[name] = build(linear)
        setattr(parent, attr, replaced[name])
    return replaced


def wrap_relora(
    model: nn.Module,
    rank: int,
    alpha: float,
    targets: Iterable[str] = LLAMA_LINEAR_TARGETS,
    generator: torch.Generator | None = None,
) -> dict[str, ReLoRALinear]:
    """Swap the target linear layers of ``model`` for :class:`ReLoRALinear` wrappers, in place.

    Only the wrapped layers' dense weights are frozen; embeddings, norms and ``lm_head`` stay
    full-rank and trainable, as in the paper.
    """
    _check_rank_alpha(rank, alpha)
    return replace_linears(
        model, targets, lambda linear: ReLoRALinear.from_linear(linear, rank, alpha, generator)
    )


def lora_parameters(modules: Mapping[str, ReLoRALinear] | Iterable[ReLoRALinear]) -> list:
    """The ``lora_A`` and ``lora_B`` parameters of ``modules`` (what a reset prunes)."""
    layers = modules.values() if isinstance(modules, Mapping) else modules
    return [p for layer in layers for p in (layer.lora_A, layer.lora_B)]


def merge_all(
    modules: Mapping[str, ReLoRALinear] | Iterable[ReLoRALinear],
    generator: torch.Generator | None = None,
) -> None:
    """Run :meth:`ReLoRALinear.merge_and_reinit` on every wrapped layer (one ReLoRA reset)."""
    layers = modules.values() if isinstance(modules, Mapping) else modules
    for layer in layers:
        layer.merge_and_reinit(generator)


@torch.no_grad()
def prune_optimizer_state(
    optimizer: torch.optim.Optimizer,
    params: Iterable[torch.Tensor],
    *,
    mode: str = "random",
    fraction: float = 0.99,
    generator: torch.Generator | None = None,
) -> float:
    """Zero ``fraction`` of the Adam moments of ``params`` at a reset; return the share zeroed.

    The paper (Sec. 3) prunes 99% of the optimizer state of the low-rank factors so the new cycle
    is not steered by moments of factors that were just merged away, while keeping a little of
    it for stability. Per tensor of ``n`` entries exactly ``round(fraction * n)`` entries are
    zeroed, the same entries in ``exp_avg`` and ``exp_avg_sq``:

    - ``"random"``: a uniformly random subset (drawn on the CPU with ``generator``);
    - ``"magnitude"``: all but the ``n - round(fraction * n)`` entries of largest ``|exp_avg|``.

    Params without both ``exp_avg`` and ``exp_avg_sq`` state (not stepped yet) are skipped, and
    no other param's state is touched. Returns zeroed entries / entries considered (0.0 if none).
    """
    if mode not in PRUNE_MODES:
        raise ConfigError(
            f"Unknown optimizer-state prune mode {mode!r}; known modes are {list(PRUNE_MODES)}."
            + did_you_mean(mode, PRUNE_MODES)
        )
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"The pruned fraction must be in [0, 1], got {fraction}.")
    zeroed = total = 0
    for param in params:
        state = optimizer.state.get(param, {})
        if "exp_avg" not in state or "exp_avg_sq" not in state:
            continue
        # Sharded moments are gathered, pruned whole (the same entries as in one process) and
        # each rank keeps its shard.
        sharded_avg, sharded_sq = state["exp_avg"], state["exp_avg_sq"]
        exp_avg, exp_avg_sq = full_tensor(sharded_avg).clone(), full_tensor(sharded_sq).clone()
        n = exp_avg.numel()
        n_prune = round(fraction * n)
        if mode == "random":
            pruned = torch.randperm(n, generator=generator)[:n_prune].to(exp_avg.device)
        else:
            # Keep the n - n_prune largest |m|; everything else is pruned.
            order = exp_avg.abs().flatten().argsort(descending=True)
            pruned = order[n - n_prune :] if n_prune else order[:0]
        exp_avg.view(-1)[pruned] = 0
        exp_avg_sq.view(-1)[pruned] = 0
        assign_full(sharded_avg, exp_avg)
        assign_full(sharded_sq, exp_avg_sq)
        zeroed += n_prune
        total += n
    return zeroed / total if total else 0.0


def dense_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """A plain state dict: every layer with ``dense_weight()`` becomes ``<name>.weight`` (+ bias).

    The layer's own tensors (LoRA factors, sparse values, index buffers) are dropped; every other
    entry of ``model.state_dict()`` is kept as is. For a wrapped LlamaForCausalLM the result loads
    into ``LlamaForCausalLM(config)``. Works for :class:`ReLoRALinear` and SLTrain layers alike.
    """
    dense_layers = {
        name: module
        for name, module in model.named_modules()
        if callable(getattr(module, "dense_weight", None))
    }
    prefixes = {name: f"{name}." if name else "" for name in dense_layers}
    out: dict[str, torch.Tensor] = {}
    for key, value in model.state_dict().items():
        owner = next((n for n, p in prefixes.items() if key.startswith(p)), None)
        if owner is None:
            out[key] = value
        elif prefixes[owner] + "weight" not in out:
            # First key of this layer: emit its dense tensors here to keep the module order.
            layer = dense_layers[owner]
            with torch.no_grad():
                out[prefixes[owner] + "weight"] = layer.dense_weight().detach()
            if getattr(layer, "bias", None) is not None:
                out[prefixes[owner] + "bias"] = layer.bias.detach()
    return out


def dense_from_state(
    state: dict[str, torch.Tensor], modules: Mapping[str, ReLoRALinear]
) -> dict[str, torch.Tensor]:
    """:func:`dense_state_dict` from a whole state dict (a sharded model's, gathered) instead of
    the model: each ReLoRA layer's ``weight + scale * B @ A``, its factors dropped."""
    out = dict(state)
    for name, layer in modules.items():
        a, b = out.pop(f"{name}.lora_A"), out.pop(f"{name}.lora_B")
        weight = out[f"{name}.weight"]
        out[f"{name}.weight"] = weight + (layer.scale * (b.float() @ a.float())).to(weight.dtype)
    return out


def _kaiming_uniform(shape: torch.Size, generator: torch.Generator | None) -> torch.Tensor:
    # nn.Linear's default init: kaiming_uniform_(a=sqrt(5)) is U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    tensor = torch.empty(shape)
    return nn.init.kaiming_uniform_(tensor, a=math.sqrt(5), generator=generator)


def _check_rank_alpha(rank: int, alpha: float) -> None:
    if not isinstance(rank, int) or rank < 1:
        raise ConfigError(f"The low-rank rank must be a positive integer, got {rank!r}.")
    if alpha <= 0:
        raise ConfigError(
            f"alpha must be positive (the update is scaled by alpha/rank), got {alpha}."
        )
