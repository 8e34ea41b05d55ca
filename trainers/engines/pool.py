"""A pool of generation engines as Ray actors: shard a batch, stream results, sync weights,
survive a replica dying.

    pool = RolloutPool(EngineSpec("smollm2-135m-instruct"), replicas=2)
    groups = pool.generate(prompts, Sampling(n=8, temperature=0.7))   # same as one engine's
    pool.update_weights(learner.model.state_dict())                    # after each learner step

Each replica is one Ray actor holding an :class:`trainers.engines.hf.HFEngine` or, with
``EngineSpec(backend="vllm")``, a :class:`trainers.engines.vllm.VLLMEngine`. Every replica gets a
placement group of its own: one bundle with the resources its :class:`EngineSpec` declares
(``num_gpus=1`` for one GPU each, a fraction to share one), or, for a tensor-parallel vLLM
replica, ``tensor_parallel_size`` bundles of one GPU each on one node (``STRICT_PACK``); vLLM's
Ray executor finds the group it was started in and puts its workers on those bundles. A pool
whose groups cannot be placed says which resources the cluster lacks instead of waiting.
``ray.init()`` starts a local cluster unless one is running or ``address`` names one to join.

A batch is cut into chunks of ``chunk_size`` prompts (by default one chunk per replica, the
largest batches), dealt round-robin to the replicas and collected as they finish (:meth:`RolloutPool.stream` yields them in arrival order). Sampled chunks
get seeds derived from ``sampling.seed`` and the chunk's position, so results do not depend on
which replica ran what. New weights go through the Ray object store once (``ray.put``) and every
replica loads them in place, or, with ``weight_sync="broadcast"``, over a collective group from
the learner's process (NCCL between GPUs, gloo on CPUs; :mod:`trainers.engines.weight_sync`). A replica
that dies is restarted with the current weights (the group is re-formed before the next sync)
and its unfinished chunks are run again. Every request is answered exactly once.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch

from assay.errors import ConfigError
from trainers.engines import ray_reaper
from trainers.engines.base import Completion, Prompt, Sampling, distinct_tensors, named_items


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


def _older(version: str, than: str) -> bool:
    from packaging.version import Version

    return Version(version) < Version(than)


class _EngineActor:
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


def _resources(bundles: list[dict[str, float]]) -> str:
    """``2 CPUs and 1 GPU``: the CPU and GPU totals of Ray resource dicts, in words (Ray's own
    keys such as ``node:...`` and ``object_store_memory`` mean nothing to a user)."""
    cpus = sum(b.get("CPU", 0.0) for b in bundles)
    gpus = sum(b.get("GPU", 0.0) for b in bundles)
    return f"{cpus:g} CPU{'' if cpus == 1 else 's'} and {gpus:g} GPU{'' if gpus == 1 else 's'}"


class RolloutPool:
    """``replicas`` engines behind the :class:`trainers.engines.base.GenerationEngine` interface."""

    def __init__(
        self,
        spec: EngineSpec,
        replicas: int = 2,
        chunk_size: int = 0,
        address: str | None = None,
        max_restarts: int = 3,
        weight_sync: Literal["object_store", "broadcast"] = "object_store",
        start_timeout_s: float = 120.0,
        hide_gpus: Iterable[int] = (),
        call_timeout_s: float = 600.0,
    ):
        """``hide_gpus``: local CUDA device indices the pool must leave alone (the learner's).
        They are left out of the local Ray cluster when this pool starts one; a cluster that is
        already running (``address``, ``RAY_ADDRESS``, or ``ray.init`` called before) is used
        as it is. ``call_timeout_s`` bounds each request to a replica (a chunk of prompts, a
        weight update): a replica that hangs without dying past it is killed, restarted and
        counted in ``hung``, and its chunk goes again; ``start_timeout_s`` bounds the wait for
        a replica's placement."""
        try:
            import ray
        except ImportError as err:
            raise ConfigError(
                "RolloutPool needs Ray: pip install 'ray>=2.40' (or use one local engine)."
            ) from err
        problems = spec.problems(weight_sync)
        if spec.tensor_parallel_size > 1 and _older(ray.__version__, "2.50"):
            problems.append(
                f"tensor-parallel replicas need Ray >= 2.50, found {ray.__version__} (older "
                "releases blank the GPU-less driver actor's CUDA_VISIBLE_DEVICES, and vLLM then "
                "finds no GPU)"
            )
        if replicas < 1 or chunk_size < 0:
            problems.append(
                f"replicas must be >= 1 and chunk_size >= 0 (0: one chunk per replica), "
                f"got {replicas} and {chunk_size}"
            )
        if not (call_timeout_s > 0 and start_timeout_s > 0):
            problems.append(
                f"call_timeout_s and start_timeout_s must be > 0 seconds, got {call_timeout_s} "
                f"and {start_timeout_s}"
            )
        if weight_sync not in ("object_store", "broadcast"):
            problems.append(f"weight_sync must be object_store or broadcast, got {weight_sync!r}")
        if problems:
            raise ConfigError("RolloutPool: " + "; ".join(problems) + ".")
        self._ray = ray
        if not ray.is_initialized():
            _init_ray(ray, address, tuple(hide_gpus))
        self.spec, self.chunk_size, self.max_restarts = spec, chunk_size, max_restarts
        # A tensor-parallel replica's actor only drives vLLM: its GPU workers hold the GPUs.
        actor_gpus = spec.num_gpus if spec.tensor_parallel_size == 1 else 0
        self._remote = ray.remote(num_cpus=spec.num_cpus, num_gpus=actor_gpus)(_EngineActor)
        self.weight_sync = weight_sync
        self._weights_ref = None
        self._latest: dict[str, torch.Tensor] | None = None  # broadcast mode: for restarts
        self._group = None  # broadcast mode: this process's WeightGroup (rank 0)
        self.start_timeout_s, self.call_timeout_s = start_timeout_s, call_timeout_s
        self.hung = 0  # replicas killed and restarted because a request passed call_timeout_s
        self._progress: dict[int, float] = {}  # replica -> when it last answered or got work
        self._fresh: set[int] = set(range(replicas))  # started, not yet answered
        self.actors: list = []
        self.groups: list = []  # filled one by one, so a failure can release what it holds
        try:
            for replica in range(replicas):
                self.groups.append(self._placement_group(replica))
            self.actors = [self._start(k) for k in range(replicas)]
        except BaseException:  # a timeout, Ctrl-C, a bad spec: release what was reserved
            self.close()
            raise
        self.restarts = 0

    def _placement_group(self, replica: int):
        """Reserve one replica's bundles, or say what the cluster lacks (Ray would wait)."""
        from ray.util.placement_group import placement_group, remove_placement_group

        if not self.spec.bundles():  # a replica that reserves nothing needs no group
            return None
        group = placement_group(self.spec.bundles(), strategy="STRICT_PACK")
        timeout_s = self.start_timeout_s
        ready, _ = self._ray.wait([group.ready()], timeout=timeout_s)
        if not ready:
            remove_placement_group(group)
            raise ConfigError(
                f"RolloutPool: replica {replica + 1} needs {_resources(self.spec.bundles())} on "
                f"one machine, and the cluster could not give them in {timeout_s:.0f} s "
                f"(rollout.start_timeout_s); free now: "
                f"{_resources([self._ray.available_resources()])}. Ask for fewer replicas or "
                "CPUs/GPUs per replica, share the learner's GPUs (rollout.placement: colocated), "
                "or add machines to the cluster."
            )
        return group

    def _start(self, replica: int):
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        options: dict[str, Any] = {}
        job_env = (self._ray.get_runtime_context().runtime_env or {}).get("env_vars") or {}
        env = replica_env(self.spec, os.environ, job_env)
        if env:
            options["runtime_env"] = {"env_vars": env}
        if self.groups[replica] is not None:
            options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                placement_group=self.groups[replica],
                placement_group_bundle_index=0,
                placement_group_capture_child_tasks=True,  # vLLM's TP workers join the group
            )
        return self._remote.options(**options).remote(self.spec, self._weights_ref)

    def generate(self, prompts: list[Prompt], sampling: Sampling) -> list[list[Completion]]:
        """``sampling.n`` completions per prompt, in prompt order."""
        results: list[list[Completion] | None] = [None] * len(prompts)
        for index, completions in self.stream(prompts, sampling):
            results[index] = completions
        return results  # type: ignore[return-value]

    def stream(
        self, prompts: list[Prompt], sampling: Sampling
    ) -> Iterator[tuple[int, list[Completion]]]:
        """Yield ``(prompt_index, completions)`` as chunks finish, each index exactly once."""
        ray = self._ray
        size = self.chunk_size or max(1, -(-len(prompts) // len(self.actors)))  # ceil division
        chunks = [
            list(range(start, min(start + size, len(prompts))))
            for start in range(0, len(prompts), size)
        ]
        pending: dict[Any, tuple[int, int, Any]] = {}  # ref -> (chunk, replica, its actor)
        replica_of = itertools.cycle(range(len(self.actors)))
        for number in range(len(chunks)):
            self._submit(pending, number, next(replica_of), chunks, prompts, sampling)
        restarts_here = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=self._wait_s(pending))
            if not ready:  # the oldest request passed call_timeout_s: its replica hangs
                restarts_here += self._restart_hung(pending, chunks, prompts, sampling)
                if restarts_here > self.max_restarts * len(self.actors):
                    raise TimeoutError(
                        f"pool replicas hung past call_timeout_s={self.call_timeout_s:g} s "
                        f"{restarts_here} times in one batch; giving up."
                    )
                continue
            (ref,) = ready
            number, replica, actor = pending.pop(ref)
            self._progress[replica] = time.monotonic()  # it answered: not hung
            self._fresh.discard(replica)
            try:
                groups = ray.get(ref)
            except ray.exceptions.RayActorError:
                if self.actors[replica] is actor:  # not replaced yet by an earlier failed chunk
                    restarts_here += 1
                    if restarts_here > self.max_restarts * len(self.actors):
                        raise
                    self._restart(replica)
                self._submit(pending, number, replica, chunks, prompts, sampling)
                continue
            yield from zip(chunks[number], groups, strict=True)

    def _submit(self, pending, number, replica, chunks, prompts, sampling) -> None:
        chunk_sampling = sampling
        if sampling.seed is not None:
            chunk_sampling = replace(sampling, seed=sampling.seed * 100_003 + number)
        actor = self.actors[replica]
        if not any(r == replica for _, r, _ in pending.values()):
            self._progress[replica] = time.monotonic()  # idle until now: its clock starts
        ref = actor.generate.remote([prompts[i] for i in chunks[number]], chunk_sampling)
        pending[ref] = (number, replica, actor)

    @staticmethod
    def _busy(pending) -> set[int]:
        return {replica for _, replica, _ in pending.values()}

    def _limit_s(self, replica: int) -> float:
        """How long a busy replica may go without answering: ``call_timeout_s``, plus
        ``start_timeout_s`` until its first answer (it imports and loads its model first)."""
        fresh = replica in self._fresh
        return self.call_timeout_s + (self.start_timeout_s if fresh else 0.0)

    def _wait_s(self, pending) -> float:
        """Seconds until a busy replica has gone its limit without answering (queued chunks
        wait their turn, so a replica is judged by its progress, not by each chunk)."""
        now = time.monotonic()
        limits = [self._progress.get(r, now) + self._limit_s(r) - now for r in self._busy(pending)]
        return max(0.0, min(limits))

    def _restart_hung(self, pending, chunks, prompts, sampling) -> int:
        """Kill and restart every busy replica that answered nothing for ``call_timeout_s``;
        send its chunks again. Returns how many replicas were restarted."""
        now = time.monotonic()
        hung_replicas = {
            r for r in self._busy(pending) if now - self._progress.get(r, now) >= self._limit_s(r)
        }
        for replica in hung_replicas:
            self._restart(replica)
            self.hung += 1
        again = [pending.pop(r)[:2] for r in [r for r in pending if pending[r][1] in hung_replicas]]
        for number, replica in again:  # all popped first, so the fresh replica's clock restarts
            self._submit(pending, number, replica, chunks, prompts, sampling)
        return len(hung_replicas)

    def _restart(self, replica: int) -> None:
        """Replace a dead replica by a fresh one holding the current weights."""
        self._ray.kill(self.actors[replica], no_restart=True)
        if self.spec.tensor_parallel_size > 1:
            # vLLM's GPU workers belong to its engine process, which may outlive the killed
            # actor; removing the group ends every actor in it and frees the GPUs for sure.
            from ray.util.placement_group import remove_placement_group

            remove_placement_group(self.groups[replica])
            self.groups[replica] = self._placement_group(replica)
        if self.weight_sync == "broadcast" and self._latest is not None:
            self._weights_ref = self._ray.put(self._latest)
        self.actors[replica] = self._start(replica)  # its own placement group, as before
        self._fresh.add(replica)
        self.restarts += 1
        self._group = None  # its old member is gone: form the group again before the next sync

    def update_weights(
        self, named_tensors: Mapping[str, torch.Tensor] | Iterable[tuple[str, torch.Tensor]]
    ) -> None:
        """Send new weights to every replica through the object store (once) and wait."""
        # HF replicas tie weights as the learner does: one copy of tied tensors is enough.
        # vLLM's reload does not re-tie, so it gets every name.
        hf = self.spec.backend == "hf"
        items = distinct_tensors(named_tensors) if hf else list(named_items(named_tensors))
        if self.weight_sync == "broadcast":
            self._broadcast(list(items))
            return
        weights = {name: t.detach().to("cpu") for name, t in items}
        self._weights_ref = self._ray.put(weights)
        refs = [a.update_weights.remote(self._weights_ref) for a in self.actors]
        deadline = time.monotonic() + self.call_timeout_s
        for replica, ref in enumerate(refs):
            try:
                self._ray.get(ref, timeout=max(0.0, deadline - time.monotonic()))
            except self._ray.exceptions.GetTimeoutError:
                self.hung += 1
                self._restart(replica)  # hung: the new replica starts from these weights
            except self._ray.exceptions.RayActorError:
                self._restart(replica)  # the new replica starts from these weights

    def _broadcast(self, items: list[tuple[str, torch.Tensor]]) -> None:
        from trainers.engines.weight_sync import manifest

        self._latest = {name: t.detach().to("cpu", copy=True) for name, t in items}
        self._weights_ref = None
        for attempt in range(2):
            try:
                if self._group is None:
                    self._form_group()
                receipts = [a.receive_weights.remote(manifest(items)) for a in self.actors]
                self._group.send(items)
                self._ray.get(receipts, timeout=self.call_timeout_s)
                return
            # A replica died or hung mid-broadcast: the group's own timeout (call_timeout_s) ends
            # the send or the join, or the receipts' wait ends.
            except Exception:
                if attempt == 1:
                    raise
                self._group = None
                self._restart_dead()

    def _restart_dead(self) -> None:
        """Restart every replica that is dead, or alive but not answering (counted in ``hung``)."""
        pings = [actor.ping.remote() for actor in self.actors]
        deadline = time.monotonic() + min(60.0, self.call_timeout_s)
        for replica, ping in enumerate(pings):
            try:
                self._ray.get(ping, timeout=max(0.0, deadline - time.monotonic()))
            except self._ray.exceptions.GetTimeoutError:
                self.hung += 1
                self._restart(replica)
            except Exception:
                self._restart(replica)  # starts from self._latest

    def _form_group(self) -> None:
        """Learner as rank 0, replicas as 1..N, on a fresh port (the old group, if any, had a
        member that died)."""
        from trainers.engines.weight_sync import WeightGroup, free_port

        host = self._ray.util.get_node_ip_address()
        port, world = free_port(host), len(self.actors) + 1
        backend = "nccl" if self.spec.device.startswith("cuda") else "gloo"
        timeout_s = self.call_timeout_s
        joins = [
            a.join_weight_group.remote(host, port, rank, world, backend, timeout_s)
            for rank, a in enumerate(self.actors, start=1)
        ]
        self._group = WeightGroup(host, port, 0, world, backend, timeout_s=timeout_s)
        self._ray.get(joins, timeout=timeout_s)

    def close(self) -> None:
        from ray.util.placement_group import remove_placement_group

        for actor in self.actors:
            self._ray.kill(actor, no_restart=True)
        for group in self.groups:
            if group is not None:
                remove_placement_group(group)
        self.actors, self.groups = [], []


# The reapers this process started (kept so that their Popen objects are not collected).
_REAPERS: list = []

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


def _init_ray(ray, address: str | None, hide_gpus: tuple[int, ...]) -> None:
    """Join the cluster ``address`` (or ``RAY_ADDRESS``) names, or start a local one. Ray counts
    every visible GPU as its own, and the learner is not a Ray actor, so a local cluster would
    hand the learner's GPU to a replica: the GPUs in ``hide_gpus`` are left out of it (the new
    raylet inherits a ``CUDA_VISIBLE_DEVICES`` without them)."""
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    if not hide_gpus or address is not None or os.environ.get("RAY_ADDRESS"):
        ray.init(address=address, **options)
        _reap_if_local(ray)
        return
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    devices = visible.split(",") if visible else [str(k) for k in range(torch.cuda.device_count())]
    keep = [d.strip() for k, d in enumerate(devices) if k not in hide_gpus and d.strip()]
    if not keep:
        raise ConfigError(
            f"RolloutPool: every visible GPU ({len(devices)}) is the learner's, so replicas "
            "with GPUs of their own have none; share the learner's (rollout.placement: "
            "colocated) or name a cluster with RAY_ADDRESS."
        )
    try:
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(keep)
        # "local": a new cluster even where `ray start` left one (that one would count the
        # learner's GPU); set RAY_ADDRESS to join a running cluster instead.
        ray.init(address="local", num_gpus=len(keep), **options)
    finally:
        if visible is None:
            del os.environ["CUDA_VISIBLE_DEVICES"]
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = visible
    _reap_if_local(ray)


def _reap_if_local(ray) -> None:
    """If ``ray.init`` started a cluster here (rather than joining one), start a reaper that tears
    it down should this process die without ``ray.shutdown()`` (Ray leaves its agents running)."""
    # Ray has no public handle on the processes it started; a Ray without this private attribute
    # just goes without the reaper.
    node = getattr(getattr(ray, "_private", None), "worker", None)
    node = getattr(node, "_global_node", None)
    if node is None or not node.is_head():
        return
    pids = [info.process.pid for infos in node.all_processes.values() for info in infos]
    _REAPERS.append(ray_reaper.watch(pids))
