"""One replica of a :class:`trainers.engines.pool.EnginePool`: how it builds its engine
(:class:`EngineSpec`), the environment it runs in (:func:`replica_env`), and the Ray actor body
(:class:`EngineReplica`) whose methods the pool calls."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from trainers.engines.base import Completion, Prompt, Sampling


@dataclass(frozen=True)
class EngineSpec:
    """How each replica builds its engine, and the Ray resources it reserves."""

    model: str
    """Registered model name (``assay.models``), local directory or hub id."""
    dtype: str = "float32"
    device: str = "cpu"
    batch_size: int = 64
    """HF backend: sequences per ``generate`` call (vLLM schedules its own batches)."""
    num_cpus: float = 1
    num_gpus: float = 0
    """GPUs per replica (per tensor-parallel rank): 1 for a GPU each, a fraction to share one."""
    backend: Literal["hf", "vllm"] = "hf"
    tensor_parallel_size: int = 1
    """vLLM only: GPUs per replica, each in its own placement-group bundle on one node."""
    vllm_kwargs: dict[str, Any] = field(default_factory=dict, hash=False)
    """Passed to :class:`trainers.engines.vllm.VLLMEngine` (``gpu_memory_utilization``,
    ``max_model_len``, ``kv_cache_memory_bytes``, ...)."""

    def problems(self, weight_sync: str = "object_store") -> list[str]:
        out = []
        if self.backend not in ("hf", "vllm"):
            out.append(f"backend must be hf or vllm, got {self.backend!r}")
        if self.tensor_parallel_size < 1:
            out.append(f"tensor_parallel_size must be >= 1, got {self.tensor_parallel_size}")
        if self.tensor_parallel_size > 1 and (self.backend != "vllm" or self.num_gpus != 1):
            out.append(
                "tensor_parallel_size > 1 needs backend vllm and num_gpus=1 (one whole GPU per "
                "tensor-parallel rank)"
            )
        if weight_sync == "broadcast" and self.tensor_parallel_size > 1:
            # The replica's actor holds no GPU of its own to join a NCCL group from.
            out.append(
                "weight_sync=broadcast does not reach tensor-parallel replicas (their GPUs belong "
                "to vLLM's workers); they sync through the object store"
            )
        if weight_sync == "broadcast" and self.device.startswith("cuda") and self.num_gpus < 1:
            # Seen on an H200 (NCCL 2.28.9): two ranks on one GPU fail with "invalid usage".
            out.append(
                "weight_sync=broadcast over NCCL needs a whole GPU per replica (NCCL refuses two "
                "ranks on one GPU); replicas sharing a GPU sync through the object store"
            )
        return out

    def bundles(self) -> list[dict[str, float]]:
        """The placement-group bundles one replica reserves (none if it asks for nothing): the
        CPUs of its actor in the first, a GPU per tensor-parallel rank."""
        first = {k: float(v) for k, v in (("CPU", self.num_cpus), ("GPU", self.num_gpus)) if v}
        if not first:
            return []
        return [first] + [
            {"GPU": float(self.num_gpus)} for _ in range(self.tensor_parallel_size - 1)
        ]


class EngineReplica:
    """Body of one replica (wrapped by ``ray.remote`` at pool start)."""

    def __init__(self, spec: EngineSpec, weights: dict[str, torch.Tensor] | None):
        from assay.models import load_causal_lm
        from trainers.engines.hf import HFEngine

        torch.set_num_threads(max(1, int(spec.num_cpus)))
        if spec.backend == "vllm":
            from trainers.engines.vllm import VLLMEngine

            kwargs = dict(spec.vllm_kwargs)
            if spec.tensor_parallel_size > 1:  # workers go on this actor's placement group
                kwargs.update(
                    tensor_parallel_size=spec.tensor_parallel_size,
                    distributed_executor_backend="ray",
                )
            self.engine = VLLMEngine(spec.model, dtype=spec.dtype, **kwargs)
        else:
            model, tokenizer = load_causal_lm(spec.model, dtype=spec.dtype, device=spec.device)
            self.engine = HFEngine(model, tokenizer, batch_size=spec.batch_size)
        if weights is not None:
            self.engine.update_weights(weights)

    def generate(self, prompts: list[Prompt], sampling: Sampling) -> list[list[Completion]]:
        return self.engine.generate(prompts, sampling)

    def update_weights(self, weights: dict[str, torch.Tensor]) -> bool:
        self.engine.update_weights(weights)
        return True

    def join_weight_group(
        self, host: str, port: int, rank: int, world: int, backend: str, timeout_s: float
    ) -> bool:
        from trainers.engines.weight_sync import WeightGroup

        self.weight_group = WeightGroup(host, port, rank, world, backend, timeout_s=timeout_s)
        return True

    def ping(self) -> bool:
        return True

    def placement(self) -> dict[str, Any]:
        """Where this replica runs: its placement group, node, process and the environment
        variables the pool may set."""
        import ray

        context = ray.get_runtime_context()
        return {
            "placement_group": context.get_placement_group_id(),
            "node": context.get_node_id(),
            "pid": os.getpid(),
            "env": {k: os.environ.get(k) for k in _SHOWN_ENV},
        }

    def receive_weights(self, manifest) -> bool:
        self.engine.update_weights(self.weight_group.receive(manifest))
        return True


_SHOWN_ENV = (  # what placement() reports: the pool's variables and what they sit beside
    "CUDA_VISIBLE_DEVICES",
    "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO",
    "VLLM_CPU_OMP_THREADS_BIND",
    "VLLM_CPU_KVCACHE_SPACE",
)


def replica_env(
    spec: EngineSpec, driver_env: Mapping[str, str], job_env: Mapping[str, str]
) -> dict[str, str]:
    """Environment variables a replica's actor gets beyond the Ray job's ``runtime_env``. A
    value set in the driver's environment is passed on explicitly: on a remote cluster the
    workers never see the driver's environment."""
    env = {}
    if spec.tensor_parallel_size > 1:
        # This actor holds no GPU (its vLLM workers take the bundles'). With the override on,
        # Ray blanks a zero-GPU actor's CUDA_VISIBLE_DEVICES and vLLM's engine process finds
        # no GPU at all (ray-project/ray#51242); Ray 2.60 defaults to off, but a cluster
        # may turn it on.
        env["RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO"] = "0"
    cpu_vllm = spec.backend == "vllm" and not spec.device.startswith("cuda")
    if cpu_vllm and "VLLM_CPU_OMP_THREADS_BIND" not in job_env:
        # vllm-cpu pins each engine's OpenMP threads to the first NUMA node's cores ("auto"),
        # so replicas on one machine would all run on the same cores; leave it to the OS.
        env["VLLM_CPU_OMP_THREADS_BIND"] = driver_env.get("VLLM_CPU_OMP_THREADS_BIND", "nobind")
    return env
