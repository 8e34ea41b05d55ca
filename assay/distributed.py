"""The process group that ``torchrun`` describes, shared by the RL learner (``trainers``) and the
pretraining trainer (``pretraining``): which rank this is, how many there are, and a barrier."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from assay.errors import ConfigError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1


def init_world() -> World:
    """Join the process group that ``torchrun`` describes in the environment (``WORLD_SIZE``,
    ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``...), or a world of one when it is absent."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        # Rank 0 alone evaluates and writes checkpoints while the others wait at a barrier:
        # allow that much longer than the default 10 (NCCL) or 30 (gloo) minutes.
        timeout = timedelta(minutes=float(os.environ.get("ASSAY_DIST_TIMEOUT_MIN", "120")))
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank)  # one GPU per rank, before NCCL touches any
            device = torch.device("cuda", local_rank)
            dist.init_process_group(backend="nccl", timeout=timeout, device_id=device)
        else:
            dist.init_process_group(backend="gloo", timeout=timeout)
    return World(dist.get_rank(), dist.get_world_size(), local_rank)


def current_world() -> World:
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return World()


def collective_device() -> torch.device:
    """Where collectives' buffers live: NCCL needs them on this rank's GPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_sum(value: float, world: World) -> float:
    if not world.active:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=collective_device())
    dist.all_reduce(t)
    return float(t.item())


def all_max(value: float, world: World) -> float:
    if not world.active:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def resolve_device(name: str, world: World | None = None) -> torch.device:
    """``auto``: this rank's GPU when CUDA is available, else the CPU; any other name as given."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", (world or World()).local_rank)
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"device {name!r} needs a CUDA GPU, and torch sees none here (torch "
            f"{torch.__version__}); use device=auto (a GPU when there is one) or device=cpu."
        )
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(
            f"device {name!r} is not a torch device; use auto, cpu or cuda[:N]."
        ) from None


def barrier(world: World) -> None:
    if world.active:
        dist.barrier()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` now (the OS picks it), for a rendezvous to bind."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def launch_ranks(nproc: int, argv: list[str]) -> int:
    """Run ``assay <argv>`` as ``nproc`` data-parallel processes under torchrun; its exit code."""
    import subprocess
    import sys

    launcher = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
                f"--master_port={free_port()}", "-m", "assay.cli"]  # fmt: skip
    env = dict(os.environ)
    # Share the cores between the ranks instead of every rank using all of them.
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    return subprocess.run([*launcher, *argv], env=env).returncode
