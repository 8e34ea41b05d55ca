"""A pool of generation engines as Ray actors: shard a batch, stream results, sync weights,
survive a replica dying.

    pool = EnginePool(EngineSpec("smollm2-135m-instruct"), replicas=2)
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
largest batches), dealt round-robin to the replicas and collected as they finish (:meth:`EnginePool.stream` yields them in arrival order). Sampled chunks
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
from dataclasses import replace
from typing import Any, Literal

import torch

from assay.errors import ConfigError
from trainers.engines.base import Completion, Prompt, Sampling, distinct_tensors, named_items
from trainers.engines.cluster import init_ray
from trainers.engines.replica import EngineReplica, EngineSpec, replica_env


def _older(version: str, than: str) -> bool:
    from packaging.version import Version

    return Version(version) < Version(than)


def _resources(bundles: list[dict[str, float]]) -> str:
    """``2 CPUs and 1 GPU``: the CPU and GPU totals of Ray resource dicts, in words (Ray's own
    keys such as ``node:...`` and ``object_store_memory`` mean nothing to a user)."""
    cpus = sum(b.get("CPU", 0.0) for b in bundles)
    gpus = sum(b.get("GPU", 0.0) for b in bundles)
    return f"{cpus:g} CPU{'' if cpus == 1 else 's'} and {gpus:g} GPU{'' if gpus == 1 else 's'}"


class EnginePool:
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
                "EnginePool needs Ray: pip install 'ray>=2.40' (or use one local engine)."
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
            raise ConfigError("EnginePool: " + "; ".join(problems) + ".")
        self._ray = ray
        if not ray.is_initialized():
            init_ray(ray, address, tuple(hide_gpus))
        self.spec, self.chunk_size, self.max_restarts = spec, chunk_size, max_restarts
        # A tensor-parallel replica's actor only drives vLLM: its GPU workers hold the GPUs.
        actor_gpus = spec.num_gpus if spec.tensor_parallel_size == 1 else 0
        self._remote = ray.remote(num_cpus=spec.num_cpus, num_gpus=actor_gpus)(EngineReplica)
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
                f"EnginePool: replica {replica + 1} needs {_resources(self.spec.bundles())} on "
                f"one machine, and the cluster could not give them in {timeout_s:.0f} s "
                f"(engines.start_timeout_s); free now: "
                f"{_resources([self._ray.available_resources()])}. Ask for fewer replicas or "
                "CPUs/GPUs per replica, share the learner's GPUs (engines.placement: colocated), "
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
        from assay.distributed import free_port
        from trainers.engines.weight_sync import WeightGroup

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
