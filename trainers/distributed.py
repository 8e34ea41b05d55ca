"""Data-parallel learning with ``torch.distributed``, launched by ``torchrun``
(``assay train rl --nproc N`` calls it for you).

Why torchrun + plain collectives rather than DDP, FSDP or Ray Train: the learner's shared-prompt
pass runs the model twice per backward (prompt, then completions on its cache), which DDP's
reducer does not expect, and RL losses are normalised by counts that only the whole batch knows
(tokens, sequences). So each rank generates and scores its share of the prompt groups, the loss
is divided by the *global* count, and after backward the gradients are summed once per optimizer
step with one ``all_reduce`` over a flat buffer: the result is the single-process gradient
exactly, gradient accumulation needs no ``no_sync``, and the same code runs on gloo (CPU) and
NCCL (GPU). Ray stays the tool for the rollout pool, whose workers come and go.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist

from assay.distributed import (
    World,
    all_max,
    all_sum,
    barrier,
    collective_device,
    current_world,
    init_world,
)

__all__ = ["World", "all_max", "all_sum", "barrier", "current_world", "init_world"]


def all_gather_rows(tensor: torch.Tensor, world: World) -> torch.Tensor:
    """Concatenate each rank's ``tensor`` (same shape on every rank) along dim 0, in rank order."""
    if not world.active:
        return tensor
    local = tensor.contiguous().to(collective_device())
    parts = [torch.empty_like(local) for _ in range(world.size)]
    dist.all_gather(parts, local)
    return torch.cat(parts).to(tensor.device)


def all_gather_objects(obj: Any, world: World) -> list[Any]:
    if not world.active:
        return [obj]
    out: list[Any] = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def sum_gradients(params: list[torch.nn.Parameter], world: World) -> None:
    """Sum every parameter's gradient over the ranks, in one collective over a flat buffer."""
    if not world.active or not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1).float() for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for p, g in zip(params, grads, strict=True):
        n = g.numel()
        p.grad = flat[offset : offset + n].view_as(g).to(g.dtype)
        offset += n
