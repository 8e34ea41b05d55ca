"""Pretraining under FSDP2 (``train.sharding: fsdp``): the model is sharded with
:func:`assay.sharding.shard` instead of wrapped in DDP, and checkpoints hold whole state dicts
gathered to rank 0 (a resumed run reshards them onto any number of ranks).

Only ``method: full`` shards (``pretraining.config.SHARDING_REFUSALS`` says why each other
method does not yet): GaLore and Fira project each weight's whole gradient, ReLoRA merges into
and prunes over whole tensors.
"""

from __future__ import annotations

from typing import Any

import torch

from assay.distributed import World
from assay.errors import ConfigError
from assay.sharding import shard


def shard_with_optimizer(model: torch.nn.Module, method, world: World, masks=None) -> None:
    """Shard ``model`` in place and point ``method.optimizer``'s groups at its new (sharded)
    parameters, by name; the optimizer has no state yet."""
    if masks is not None:
        raise ConfigError("pruning masks (assay prune) are not supported with train.sharding: fsdp")
    names = {id(p): n for n, p in model.named_parameters()}
    optimizer = method.optimizer
    if optimizer.state:
        raise RuntimeError("shard the model before the optimizer takes its first step")
    groups = [[names[id(p)] for p in g["params"]] for g in optimizer.param_groups]
    shard(model, world)  # replaces every parameter by a sharded one
    params = dict(model.named_parameters())
    for group, group_names in zip(optimizer.param_groups, groups, strict=True):
        group["params"] = [params[n] for n in group_names]


def full_state(model: torch.nn.Module, optimizer) -> tuple[dict[str, Any], dict[str, Any]]:
    """Whole model and optimizer state dicts on rank 0's CPU (empty on the others); every rank
    calls it. The optimizer's is keyed by parameter names, as :func:`load_full_state` reads."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return (
        get_model_state_dict(model, options=options),
        get_optimizer_state_dict(model, optimizer, options=options),
    )


def load_state(model: torch.nn.Module, optimizer, state: dict[str, Any]) -> None:
    """Load a checkpoint's model and optimizer state: a sharded run's (keyed by names) into a
    sharded or plain model, a plain run's into a plain one as saved, or into shards."""
    from assay.sharding import is_sharded

    if not is_sharded(model):
        model.load_state_dict(state["model"])
        saved = state["optimizer"]
        optimizer.load_state_dict(_by_index(saved) if keyed_by_name(saved) else saved)
        return
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True)
    set_model_state_dict(model, state["model"], options=options)
    set_optimizer_state_dict(model, optimizer, state["optimizer"], options=options)


def keyed_by_name(optimizer_state: dict[str, Any]) -> bool:
    """Whether an optimizer state dict came from :func:`full_state` (names, not indices)."""
    return any(isinstance(k, str) for k in optimizer_state.get("state", {}))


def _by_index(named: dict[str, Any]) -> dict[str, Any]:
    """A name-keyed optimizer state dict (:func:`full_state`) as ``Optimizer.load_state_dict``
    takes it: parameters numbered in the order of the groups' ``params``."""
    index = {
        name: i for i, name in enumerate(n for g in named["param_groups"] for n in g["params"])
    }
    return {
        "state": {index[name]: value for name, value in named["state"].items()},
        "param_groups": [
            {**g, "params": [index[n] for n in g["params"]]} for g in named["param_groups"]
        ],
    }
