"""Broadcast new policy weights from the learner to engine replicas over a collective group.

The Ray object store (the pool's default) copies the whole state through shared memory and
each replica deserialises it; on GPUs a NCCL broadcast from the learner's GPU straight into the
replicas' GPUs is the fast path. This module is that path: rank 0 is the learner, ranks 1..N are
the replicas; ``nccl`` between GPUs (each rank on its own GPU, as NCCL requires), ``gloo`` on CPUs
(which is how the tests run it).

The group is built from ``torch.distributed.TCPStore`` and a process-group object of its own, not
``init_process_group``: the learner's default group stays free for its own data-parallel
training. Every rank must call :meth:`WeightGroup.broadcast` with the same tensor list, in
the same order: the learner sends ``manifest(named_tensors)`` first so replicas can allocate.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

import torch
import torch.distributed as dist

Manifest = list[tuple[str, torch.dtype, tuple[int, ...]]]


class WeightGroup:
    """One process's membership in the learner -> replicas broadcast group."""

    def __init__(
        self,
        host: str,
        port: int,
        rank: int,
        world_size: int,
        backend: str = "gloo",
        timeout_s: float = 120.0,
    ):
        timeout = datetime.timedelta(seconds=timeout_s)
        self.store = dist.TCPStore(host, port, world_size, is_master=rank == 0, timeout=timeout)
        self.backend, self.rank = backend, rank
        if backend == "nccl":
            self.device = torch.device("cuda", torch.cuda.current_device())
            options = dist.ProcessGroupNCCL.Options()
            options._timeout = timeout  # as torch's own new_group sets it (there is no public name)
            self.group = dist.ProcessGroupNCCL(self.store, rank, world_size, options)
        else:
            self.device = torch.device("cpu")
            self.group = dist.ProcessGroupGloo(self.store, rank, world_size, timeout)

    def send(self, named_tensors: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Rank 0: broadcast each tensor, in order (replicas call :meth:`receive` with the
        manifest of the same tensors)."""
        for _, tensor in named_tensors:
            buffer = tensor.detach().to(self.device).contiguous()
            self.group.broadcast(buffer, 0).wait()

    def receive(self, manifest: Manifest) -> Iterable[tuple[str, torch.Tensor]]:
        """Ranks > 0: yield ``(name, tensor)`` as each broadcast arrives."""
        for name, dtype, shape in manifest:
            buffer = torch.empty(shape, dtype=dtype, device=self.device)
            self.group.broadcast(buffer, 0).wait()
            yield name, buffer


def manifest(named_tensors: Iterable[tuple[str, torch.Tensor]]) -> Manifest:
    return [(name, t.dtype, tuple(t.shape)) for name, t in named_tensors]
