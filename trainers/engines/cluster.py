"""The Ray cluster a pool runs on: join the one named, or start a local one (without the
learner's GPUs), and tear a local one down with its driver (:mod:`trainers.engines.ray_reaper`)."""

from __future__ import annotations

import os
from typing import Any

import torch

from assay.errors import ConfigError
from trainers.engines import ray_reaper

# The reapers this process started (kept so that their Popen objects are not collected).
_REAPERS: list = []


def init_ray(ray, address: str | None, hide_gpus: tuple[int, ...]) -> None:
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
            f"EnginePool: every visible GPU ({len(devices)}) is the learner's, so replicas "
            "with GPUs of their own have none; share the learner's (engines.placement: "
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
