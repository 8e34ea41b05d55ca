"""Training methods by name: how each one changes the model, builds its optimizer, shapes the
learning rate and acts after a step. The trainer only talks to :class:`Method`.

==========  ==============================================================================
full        dense AdamW on every parameter
relora      ReLoRA (Lialin et al. 2023): frozen W + (alpha/r)·B A, merged every k steps
galore      GaLore (Zhao et al. 2024), ``galore_torch.GaLoreAdamW``: gradients projected to rank r
fira        Fira (Chen et al. 2024), ``fira.FiraAdamW``: GaLore plus a norm-scaled residual
cola        CoLA (Liu et al. 2025): every target layer is B·SiLU(A x)
sltrain     SLTrain (Han et al. 2024): W = (alpha/r)·B A + S with a fixed sparse support
==========  ==============================================================================

Embeddings, norms and the LM head stay dense and trainable in every method; the low-rank
methods act on the attention and MLP projections (:data:`TARGETS`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from assay.errors import ConfigError
from pretraining.config import PretrainConfig
from pretraining.schedules import jagged_cosine, warmup_cosine

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
METHODS = ("full", "relora", "galore", "fira", "cola", "sltrain")


@dataclass
class Method:
    name: str
    optimizer: torch.optim.Optimizer
    lr_lambda: Callable[[int], float]  # 0-based step -> LR multiplier
    after_step: Callable[[int], dict[str, float]] = lambda step: {}  # completed steps -> metrics
    mergeable: bool = True  # whether a plain LLaMA checkpoint can hold the model
    modules: dict[str, torch.nn.Module] = field(default_factory=dict)  # replaced layers

    def dense_state_dict(
        self, model: torch.nn.Module, whole: dict[str, torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor] | None:
        """Plain ``LlamaForCausalLM`` weights of the model (``None`` for CoLA, which has none);
        ``whole``: the model's whole state dict, gathered from a sharded model."""
        if not self.mergeable:
            return None
        if not self.modules:
            return whole  # the model is already a plain LLaMA: save it as it is
        from pretraining.relora import dense_from_state, dense_state_dict

        return dense_state_dict(model) if whole is None else dense_from_state(whole, self.modules)


def _adamw_groups(params: list[tuple[str, torch.nn.Parameter]], weight_decay: float) -> list[dict]:
    """Decay matrices only; norms and biases never decay (the usual LLaMA recipe)."""
    decay = [p for _, p in params if p.ndim >= 2]
    plain = [p for _, p in params if p.ndim < 2]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": plain, "weight_decay": 0.0},
    ]


def _trainable(model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def _schedule(config: PretrainConfig) -> Callable[[int], float]:
    optim, steps = config.optim, config.train.max_steps
    warmup = min(optim.warmup_steps, max(steps - 1, 0))
    return lambda step: warmup_cosine(
        step, max_steps=steps, warmup_steps=warmup, min_lr_ratio=optim.min_lr_ratio
    )


def _adamw(config: PretrainConfig, groups: list[dict]) -> torch.optim.Optimizer:
    o = config.optim
    return torch.optim.AdamW(groups, lr=o.lr, betas=tuple(o.betas), eps=o.eps)


def prepare_method(
    model: torch.nn.Module, config: PretrainConfig, generator: torch.Generator
) -> Method:
    """Change ``model`` in place for ``config.method.name`` and build its optimizer."""
    name = config.method.name
    builders = {
        "full": _full,
        "relora": _relora,
        "galore": _projected,
        "fira": _projected,
        "cola": _cola,
        "sltrain": _sltrain,
    }
    if name not in builders:
        raise ConfigError(f"Unknown method {name!r}; known: {', '.join(METHODS)}.")
    return builders[name](model, config, generator)


def _full(model, config, generator) -> Method:
    groups = _adamw_groups(_trainable(model), config.optim.weight_decay)
    return Method("full", _adamw(config, groups), _schedule(config))


def _relora(model, config, generator) -> Method:
    from pretraining.relora import merge_all, prune_optimizer_state, wrap_relora

    cfg, optim, steps = config.method.relora, config.optim, config.train.max_steps
    modules = wrap_relora(model, cfg.rank, cfg.alpha, targets=TARGETS, generator=generator)
    optimizer = _adamw(config, _adamw_groups(_trainable(model), optim.weight_decay))
    warmup = min(optim.warmup_steps, max(steps - 1, 0))

    def lr_lambda(step: int) -> float:
        return jagged_cosine(
            step,
            max_steps=steps,
            warmup_steps=warmup,
            min_lr_ratio=optim.min_lr_ratio,
            reset_every=cfg.reset_every,
            restart_warmup_steps=cfg.restart_warmup_steps,
        )

    def after_step(done: int) -> dict[str, float]:
        if done % cfg.reset_every or done >= steps:
            return {}
        # Same generator state on every rank, so data-parallel replicas re-initialise alike.
        reinit = torch.Generator().manual_seed(config.train.seed * 1_000_003 + done)
        merge_all(modules, generator=reinit)
        # Looked up now: sharding (FSDP2) replaces the parameter objects after this is built.
        lora_params = [p for m in modules.values() for p in (m.lora_A, m.lora_B)]
        pruned = prune_optimizer_state(
            optimizer, lora_params, mode=cfg.prune, fraction=cfg.prune_fraction, generator=reinit
        )
        return {"relora/reset": 1.0, "relora/state_pruned": pruned}

    return Method("relora", optimizer, lr_lambda, after_step, modules=modules)


def _projected(model, config, generator) -> Method:
    """GaLore and Fira: one optimizer parameter group carries the projection settings."""
    name, cfg, o = config.method.name, config.method.galore, config.optim
    # bitsandbytes (imported by both packages) logs a warning about optional CPU kernels.
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    try:
        if name == "galore":
            from galore_torch import GaLoreAdamW as Optimizer
        else:
            from fira import FiraAdamW as Optimizer
    except ImportError:
        package = "galore-torch" if name == "galore" else "fira"
        raise ConfigError(
            f"method {name} needs the {package} package: pip install {package} (or assay[lowrank])"
        ) from None
    projected = [
        module.weight
        for path, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and path.rsplit(".", 1)[-1] in TARGETS
    ]
    ids = {id(p) for p in projected}
    regular = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
    settings: dict[str, Any] = {
        "rank": cfg.rank,
        "update_proj_gap": cfg.update_proj_gap,
        "proj_type": cfg.proj_type,
        ("scale" if name == "galore" else "alpha"): cfg.scale,
    }
    groups = [
        {"params": regular, "weight_decay": 0.0},
        {"params": projected, "weight_decay": o.weight_decay, **settings},
    ]
    optimizer = Optimizer(
        groups, lr=o.lr, betas=tuple(o.betas), eps=o.eps, no_deprecation_warning=True
    )
    return Method(name, optimizer, _schedule(config))


def _cola(model, config, generator) -> Method:
    from pretraining.cola import convert_cola

    modules = convert_cola(model, config.method.cola.rank, targets=TARGETS)
    groups = _adamw_groups(_trainable(model), config.optim.weight_decay)
    return Method(
        "cola", _adamw(config, groups), _schedule(config), mergeable=False, modules=modules
    )


def _sltrain(model, config, generator) -> Method:
    from pretraining.sltrain import convert_sltrain

    cfg = config.method.sltrain
    modules = convert_sltrain(
        model, cfg.rank, cfg.alpha, cfg.density, targets=TARGETS, generator=generator
    )
    groups = _adamw_groups(_trainable(model), config.optim.weight_decay)
    return Method("sltrain", _adamw(config, groups), _schedule(config), modules=modules)


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes held in the optimizer's state: moments, and the projection matrices that GaLore and
    Fira keep inside a projector object per parameter."""

    def tensor_bytes(value: Any, depth: int = 0) -> int:
        if isinstance(value, torch.Tensor):
            return value.numel() * value.element_size()
        if isinstance(value, dict):
            return sum(tensor_bytes(v, depth + 1) for v in value.values())
        if isinstance(value, list | tuple):
            return sum(tensor_bytes(v, depth + 1) for v in value)
        if depth < 2 and hasattr(value, "__dict__"):
            return sum(tensor_bytes(v, depth + 1) for v in vars(value).values())
        return 0

    return sum(tensor_bytes(state) for state in optimizer.state.values())
