"""The sharded learner: PyTorch's FSDP2 (``fully_shard``) over the learner's processes.

Each decoder layer is one FSDP unit and the root (embeddings, final norm, LM head) another, so a
rank keeps ``1/N`` of the parameters, gradients and AdamW state and all-gathers one layer at a
time for its forward and backward. What assay adds around FSDP2, and why:

- Gradients are *summed* over ranks, not averaged (``set_gradient_divide_factor(1)``): the RL
  loss is already divided by the whole batch's token or sequence count, as in
  ``trainers.distributed``.
- Every rank must run the sharded model the same number of times, or the collectives inside
  FSDP stop lining up and the job hangs. Ranks hold different numbers of micro-batches (token
  budgets, multi-turn rows), so :func:`lockstep` pads each rank's list to the longest with
  passes whose loss is multiplied by zero.
- The norm for gradient clipping spans sharded (DTensor) and replicated gradients (the value
  head): :func:`clip_gradients` sums the squares of each rank's shards over ranks and adds the
  replicated ones once, which ``torch.nn.utils.clip_grad_norm_`` cannot do for a mix of both.
- Weights leave the learner one tensor at a time (:func:`stream_full`): each rank all-gathers
  one parameter, hands it on (to an engine, a file), and drops it, so no rank ever holds a
  second full copy of the model.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor

from assay.distributed import World, collective_device, free_port


def ensure_process_group() -> None:
    """A process group of one when none is running (FSDP2 needs one even on a single GPU,
    where it still offers mixed precision and CPU offload)."""
    if dist.is_initialized():
        return
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    store = dist.TCPStore("127.0.0.1", free_port(), 1, is_master=True)
    dist.init_process_group(backend, store=store, rank=0, world_size=1)


def decoder_layers(model) -> list[torch.nn.Module]:
    """The repeated blocks of a transformers model (the classes it names in
    ``_no_split_modules``, e.g. ``LlamaDecoderLayer``), under any wrapper such as peft's."""
    inner = model.get_base_model() if hasattr(model, "peft_config") else model
    names = set(getattr(inner, "_no_split_modules", None) or ())
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        raise ValueError(
            f"{type(inner).__name__} names no decoder layer class (_no_split_modules), so "
            "train.sharding: fsdp cannot tell where to cut it; use train.sharding: none"
        )
    return layers


def shard(model, world: World, *, bf16: bool = False, cpu_offload: bool = False):
    """Shard ``model`` in place over ``world``'s ranks: each decoder layer, then the root.
    ``bf16``: parameters all-gathered and computed in bf16, gradients reduced in fp32 and fp32
    master weights kept (FSDP2's MixedPrecisionPolicy)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, fully_shard

    ensure_process_group()
    device = next(model.parameters()).device.type
    options = {"mesh": init_device_mesh(device, (dist.get_world_size(),))}
    if bf16:
        options["mp_policy"] = MixedPrecisionPolicy(
            param_dtype=torch.bfloat16, reduce_dtype=torch.float32
        )
    if cpu_offload:
        options["offload_policy"] = CPUOffloadPolicy()
    units = [fully_shard(layer, **options) for layer in decoder_layers(model)]
    units.append(fully_shard(model, **options))
    for unit in units:  # each unit keeps its own reduction settings
        unit.set_gradient_divide_factor(1.0)  # sum: the loss is divided by global counts
        unit.set_force_sum_reduction_for_comms(True)  # plain SUM (gloo has no PREMUL_SUM)
    return model


def is_sharded(model) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def lockstep(chunks: list, world: World) -> list[tuple[object, bool]]:
    """``(chunk, real)`` pairs, padded with ``(chunks[0], False)`` to the longest list of any
    rank: a sharded model must run as often on every rank."""
    longest = len(chunks)
    if world.active:
        n = torch.tensor([len(chunks)], device=collective_device())
        dist.all_reduce(n, op=dist.ReduceOp.MAX)
        longest = int(n.item())
    return [(c, True) for c in chunks] + [(chunks[0], False)] * (longest - len(chunks))


def clip_gradients(params: list[torch.nn.Parameter], max_norm: float) -> float:
    """Scale the gradients so that their global L2 norm is at most ``max_norm``; returns the
    norm before clipping. Sharded gradients count each rank's shard once; replicated ones
    (equal on every rank) count once in all."""
    sharded, plain = torch.zeros((), dtype=torch.float64), torch.zeros((), dtype=torch.float64)
    grads = [p.grad for p in params if p.grad is not None]
    for g in grads:
        if isinstance(g, DTensor):
            sharded += g.to_local().double().pow(2).sum().cpu()
        else:
            plain += g.double().pow(2).sum().cpu()
    if dist.is_initialized() and dist.get_world_size() > 1:
        total = sharded.to(collective_device())
        dist.all_reduce(total)
        sharded = total.cpu()
    norm = math.sqrt(float(sharded + plain))
    coef = max_norm / (norm + 1e-6)
    if coef < 1:
        for g in grads:
            g.mul_(coef)
    return norm


def full_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """The whole of ``tensor``: all-gathered if it is sharded (a collective: every rank calls)."""
    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


@torch.no_grad()
def assign_full(tensor: torch.Tensor, whole: torch.Tensor) -> None:
    """Write ``whole`` into ``tensor`` in place: all of it, or this rank's shard of it when
    ``tensor`` is sharded (every rank passes the same ``whole``)."""
    if isinstance(tensor, DTensor):
        from torch.distributed.tensor import distribute_tensor

        mine = distribute_tensor(whole.to(tensor.dtype), tensor.device_mesh, tensor.placements)
        tensor.to_local().copy_(mine.to_local())
    else:
        tensor.copy_(whole)


def stream_full(state: dict[str, torch.Tensor]) -> Iterator[tuple[str, torch.Tensor]]:
    """``(name, whole tensor)`` one at a time, in ``state``'s order on every rank."""
    for name, tensor in state.items():
        yield name, full_tensor(tensor.detach())


def local_bytes(tensors) -> int:
    """Bytes this rank holds of ``tensors`` (its shard of a DTensor)."""
    total = 0
    for t in tensors:
        local = t.to_local() if isinstance(t, DTensor) else t
        total += local.numel() * local.element_size()
    return total
