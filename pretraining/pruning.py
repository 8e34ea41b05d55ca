"""Iterative magnitude pruning (IMP) with rewinding.

Frankle & Carbin 2019 ("The Lottery Ticket Hypothesis"), algorithm 1: train the dense network,
prune ``p`` of the surviving weights with the smallest magnitude, reset the survivors to their
initial values and retrain; after ``r`` rounds the sparsity is ``1 - (1 - p)^r``. Frankle et al.
2020 ("Linear Mode Connectivity and the Lottery Ticket Hypothesis") rewind to the weights of an
early iteration ``k`` instead of to initialisation, which is what makes tickets appear in larger
networks. Masks are ``True`` where a weight is kept.

This module is the algorithm only: who trains, and who snapshots the weights at iteration ``k``,
is the caller's business (``run_imp`` takes callbacks).
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from assay.errors import AssayError, ConfigError, did_you_mean
from assay.runs import save_figure

SCOPES = ("global", "layer")
Masks = dict[str, torch.Tensor]


# ---- which weights -------------------------------------------------------------------------


def prunable_parameters(
    model: nn.Module, *, include: Sequence[str] = (), exclude: Sequence[str] = ()
) -> dict[str, nn.Parameter]:
    """The weights IMP prunes, by parameter name: the 2-D weights of every ``nn.Linear`` except
    the LM head (for a LLaMA: q/k/v/o_proj and gate/up/down_proj), plus any parameter whose name
    matches a glob in ``include`` (e.g. ``"lm_head.weight"``), minus those matching ``exclude``.

    Embeddings and norms are left dense by default, as in Frankle & Carbin's transformer-free
    setting and most LM pruning work: they are a small share of the weights and prune badly.
    """
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    head_weight = getattr(head, "weight", None)
    linear_weights = {
        id(module.weight)
        for module in model.modules()
        if isinstance(module, nn.Linear) and module is not head and module.weight.dim() == 2
    }
    chosen: dict[str, nn.Parameter] = {}
    names = []
    for name, param in model.named_parameters():  # shared (tied) weights appear once
        names.append(name)
        default = id(param) in linear_weights and param is not head_weight
        extra = any(fnmatch.fnmatch(name, pat) for pat in include)
        dropped = any(fnmatch.fnmatch(name, pat) for pat in exclude)
        if (default or extra) and not dropped:
            chosen[name] = param
    for pattern in include:
        if not any(fnmatch.fnmatch(n, pattern) for n in names):
            raise ConfigError(
                f"include pattern {pattern!r} matches no parameter of the model."
                + did_you_mean(pattern, names)
            )
    if not chosen:
        raise ConfigError(
            "no prunable parameters: the model has no nn.Linear weights besides the LM head and "
            "include matched nothing; pass include=['<name glob>']."
        )
    return chosen


def full_masks(params: Mapping[str, torch.Tensor]) -> Masks:
    """All-``True`` masks (the dense network) for ``params``."""
    return {name: torch.ones_like(p, dtype=torch.bool) for name, p in params.items()}


# ---- pruning -------------------------------------------------------------------------------


def _prune_smallest(magnitudes: torch.Tensor, alive: torch.Tensor, fraction: float) -> torch.Tensor:
    """New flat keep-mask: ``alive`` minus the ``round(fraction * alive.sum())`` live entries of
    smallest magnitude. Ties go to the lower index (a stable sort), so the result is
    deterministic."""
    alive_idx = alive.nonzero().squeeze(1)
    n_prune = math.floor(fraction * alive_idx.numel() + 0.5)
    keep = alive.clone()
    if n_prune:
        order = torch.sort(magnitudes[alive_idx], stable=True).indices
        keep[alive_idx[order[:n_prune]]] = False
    return keep


def _check_masks(params: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]) -> None:
    missing = [n for n in params if n not in masks]
    if missing:
        raise ConfigError(
            f"masks lack {len(missing)} parameter(s), e.g. {missing[:3]}; build them with "
            "full_masks(params) or the previous magnitude_masks call."
        )
    wrong = [n for n in params if masks[n].shape != params[n].shape]
    if wrong:
        raise ConfigError(
            f"mask and parameter shapes differ for {wrong[:3]}: e.g. {tuple(masks[wrong[0]].shape)}"
            f" vs {tuple(params[wrong[0]].shape)}; the masks belong to another model."
        )


def magnitude_masks(
    params: Mapping[str, torch.Tensor],
    masks: Mapping[str, torch.Tensor] | None,
    fraction: float,
    scope: str = "global",
) -> Masks:
    """Prune ``fraction`` of the weights still kept by ``masks`` (None = dense), those with the
    smallest ``|w|``, ranked across all ``params`` (``scope="global"``) or within each tensor
    (``"layer"``). Returns new masks; already pruned weights stay pruned.

    After ``r`` calls with the same fraction ``p`` the sparsity is ``1 - (1 - p)^r`` up to
    rounding to whole weights.
    """
    if scope not in SCOPES:
        raise ConfigError(
            f"scope must be one of {SCOPES}, got {scope!r}." + did_you_mean(scope, SCOPES)
        )
    if not 0 <= fraction < 1:
        raise ConfigError(
            f"fraction is the share of surviving weights pruned per round, in [0, 1); got "
            f"{fraction!r} (Frankle & Carbin use 0.2)."
        )
    masks = full_masks(params) if masks is None else masks
    _check_masks(params, masks)
    names = list(params)
    with torch.no_grad():
        magnitudes = [params[n].detach().abs().flatten().float() for n in names]
        alive = [masks[n].flatten().to(magnitudes[i].device) for i, n in enumerate(names)]
        if scope == "layer":
            flat = [_prune_smallest(m, a, fraction) for m, a in zip(magnitudes, alive, strict=True)]
        else:
            # One ranking over every weight: a copy of all magnitudes, fine up to ~1B weights on
            # one device; beyond that shard the ranking (or prune per layer).
            keep = _prune_smallest(torch.cat(magnitudes), torch.cat(alive), fraction)
            flat = list(keep.split([m.numel() for m in magnitudes]))
    return {
        n: f.view(params[n].shape).to(masks[n].device) for n, f in zip(names, flat, strict=True)
    }


# ---- keeping pruned weights at zero --------------------------------------------------------


def _resolve(model_or_params: nn.Module | Mapping[str, torch.Tensor], masks: Mapping[str, Any]):
    """``{name: parameter}`` for every name in ``masks``."""
    if isinstance(model_or_params, nn.Module):
        params = dict(model_or_params.named_parameters())
    else:
        params = dict(model_or_params)
    unknown = [n for n in masks if n not in params]
    if unknown:
        raise ConfigError(
            f"masks name parameters the model lacks: {unknown[:3]}."
            + did_you_mean(unknown[0], params)
        )
    return {n: params[n] for n in masks}


def apply_masks(
    model_or_params: nn.Module | Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]
) -> None:
    """Zero the pruned weights in place."""
    params = _resolve(model_or_params, masks)
    with torch.no_grad():
        for name, param in params.items():
            param.masked_fill_(~masks[name].to(param.device), 0.0)


def mask_gradients(
    model_or_params: nn.Module | Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]
) -> None:
    """Zero the gradients of pruned weights in place (call between backward and the step)."""
    params = _resolve(model_or_params, masks)
    for name, param in params.items():
        if param.grad is not None:
            param.grad.masked_fill_(~masks[name].to(param.grad.device), 0.0)


class MaskEnforcer:
    """Keeps pruned weights at zero while training.

    The gradient at a zeroed weight is generally not zero, so one optimizer step would revive it.
    Zeroing the gradient (a hook on each parameter, so gradient accumulation and clipping see the
    pruned gradient) is not enough on its own: AdamW's moment estimates carried over from before
    the pruning keep moving the entry, and a coupled L2 penalty or any other update rule may too.
    So the weights are also re-zeroed after every step: automatically when ``optimizer`` is given
    (a step post-hook), else by calling the enforcer after ``optimizer.step()``. Call ``remove()``
    (or leave the ``with`` block) before changing the masks.
    """

    def __init__(
        self,
        model_or_params: nn.Module | Mapping[str, torch.Tensor],
        masks: Mapping[str, torch.Tensor],
        *,
        optimizer: torch.optim.Optimizer | None = None,
    ) -> None:
        self.params = _resolve(model_or_params, masks)
        self.masks = {n: m.to(self.params[n].device) for n, m in masks.items()}
        self._handles = [
            param.register_hook(lambda grad, keep=self.masks[name]: grad * keep)
            for name, param in self.params.items()
            if param.requires_grad
        ]
        if optimizer is not None:
            self._handles.append(optimizer.register_step_post_hook(lambda *_: self()))
        apply_masks(self.params, self.masks)

    def __call__(self) -> None:
        """Re-zero the pruned weights (after each optimizer step)."""
        apply_masks(self.params, self.masks)

    def remove(self) -> None:
        """Detach the gradient and optimizer hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> MaskEnforcer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


# ---- rewinding and bookkeeping -------------------------------------------------------------


def snapshot_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached copies of the parameters and buffers, for ``rewind`` (take it at iteration k)."""
    return {name: t.detach().clone() for name, t in model.state_dict(keep_vars=True).items()}


def rewind(
    model: nn.Module, saved_state: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]
) -> None:
    """Restore every parameter (and any saved buffer) to ``saved_state``, e.g. the weights at
    iteration k (0 = initialisation, Frankle & Carbin; k > 0, Frankle et al. 2020), then zero the
    pruned weights."""
    params = dict(model.named_parameters())
    missing = [n for n in params if n not in saved_state]
    if missing:
        raise ConfigError(
            f"the rewind state lacks {len(missing)} parameter(s), e.g. {missing[:3]}; save it with "
            "snapshot_state(model)."
        )
    with torch.no_grad():
        for name, tensor in list(params.items()) + list(model.named_buffers()):
            if name in saved_state:
                tensor.copy_(saved_state[name])
    apply_masks(model, masks)


def sparsity(masks: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """``{"overall": pruned share of all masked weights, "per_layer": {name: pruned share},
    "pruned": count, "total": count}``."""
    per_layer = {}
    pruned = total = 0
    for name, mask in masks.items():
        kept = int(mask.sum())
        pruned += mask.numel() - kept
        total += mask.numel()
        per_layer[name] = 1.0 - kept / mask.numel() if mask.numel() else 0.0
    overall = pruned / total if total else 0.0
    return {"overall": overall, "per_layer": per_layer, "pruned": pruned, "total": total}


# ---- the loop ------------------------------------------------------------------------------


def _count_revived(params: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]) -> int:
    return sum(int((p.detach() != 0)[~masks[n].to(p.device)].sum()) for n, p in params.items())


def run_imp(
    model: nn.Module,
    *,
    rounds: int,
    fraction: float,
    scope: str = "global",
    rewind_state: Mapping[str, torch.Tensor] | Callable[[], Mapping[str, torch.Tensor]],
    train_fn: Callable[[nn.Module, Masks, int], Any],
    eval_fn: Callable[[nn.Module], float],
    params: Mapping[str, nn.Parameter] | None = None,
) -> list[dict[str, Any]]:
    """Iterative magnitude pruning (Frankle & Carbin 2019, alg. 1, with rewinding).

    Round 0 trains the dense model; each of the ``rounds`` rounds after it prunes ``fraction`` of
    the surviving weights (``magnitude_masks``), rewinds to ``rewind_state`` and retrains.
    ``train_fn(model, masks, round)`` must keep pruned weights at zero (``MaskEnforcer``).
    ``rewind_state`` is a state dict, or a callable returning one, read after round 0: pass
    ``snapshot_state(model)`` taken before calling for k = 0, or let ``train_fn`` save the
    weights at iteration k of round 0. ``params`` defaults to ``prunable_parameters(model)``.

    Returns one record per round (``rounds + 1``): ``{"round", "sparsity", "loss",
    "per_layer"}``.
    """
    if rounds < 0:
        raise ConfigError(f"rounds counts pruning rounds after the dense one, >= 0; got {rounds}.")
    params = prunable_parameters(model) if params is None else params
    masks = full_masks(params)
    records = []
    for round_ in range(rounds + 1):
        if round_ > 0:
            masks = magnitude_masks(params, masks, fraction, scope)
            state = rewind_state() if callable(rewind_state) else rewind_state
            if not state:
                raise ConfigError(
                    "rewind_state is empty after round 0: save the weights at iteration k "
                    "(snapshot_state) before rewinding."
                )
            rewind(model, state, masks)
        train_fn(model, masks, round_)
        revived = _count_revived(params, masks)
        if revived:
            raise AssayError(
                f"round {round_}: train_fn left {revived} pruned weight(s) non-zero; wrap the "
                "optimizer with MaskEnforcer(model, masks, optimizer=opt)."
            )
        stats = sparsity(masks)
        records.append(
            {
                "round": round_,
                "sparsity": stats["overall"],
                "loss": float(eval_fn(model)),
                "per_layer": stats["per_layer"],
            }
        )
    return records


def plot_imp(records: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Loss against the share of weights remaining (log axis, sparser to the right, as in
    Frankle & Carbin's figures), one labelled point per round. Returns ``path``."""
    import matplotlib.ticker

    from assay.runs import pyplot

    plt = pyplot()

    remaining = [100.0 * (1.0 - r["sparsity"]) for r in records]
    losses = [r["loss"] for r in records]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(remaining, losses, "o-", color="tab:blue", linewidth=1.8, label="IMP")
    for rec, x, y in zip(records, remaining, losses, strict=True):
        ax.annotate(
            f"r{rec['round']}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8
        )
    if records:
        ax.axhline(losses[0], linestyle=":", color="0.5", label="dense")
        ax.set_xscale("log")
        ax.invert_xaxis()
        # Tick the rounds themselves: the default log ticks read "6x10^1".
        ax.set_xticks(remaining, [f"{x:.3g}" for x in remaining], fontsize=8)
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.set_xlabel("weights remaining (%)")
    ax.set_ylabel("eval loss")
    ax.set_title("iterative magnitude pruning")
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)
