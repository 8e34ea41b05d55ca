"""Register environments by id, make them by id, and discover third-party games.

Every env is also registered with gymnasium as ``assay/<id>`` (a ``/`` in the id becomes ``-``). Third-party packages add games
through the entry-point group ``assay.envs``: the entry point's name is the env id and its value
the ``module:Class`` (or factory) to build it, imported only when the env is made.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from assay.errors import ConfigError, EnvNotFound, did_you_mean

ENTRY_POINT_GROUP = "assay.envs"
GYM_NAMESPACE = "assay"


@dataclass(frozen=True)
class EnvSpec:
    """How to build one env: ``entry_point`` is ``"module:attr"`` or a callable; ``kwargs`` defaults."""

    id: str
    entry_point: str | Callable[..., Any]
    kwargs: dict[str, Any] = field(default_factory=dict)
    source: str = "assay"

    def load(self) -> Callable[..., Any]:
        if callable(self.entry_point):
            return self.entry_point
        module, _, attr = self.entry_point.partition(":")
        return getattr(importlib.import_module(module), attr)


_REGISTRY: dict[str, EnvSpec] = {}
_plugins_loaded = False


def register(
    id: str, entry_point: str | Callable[..., Any], source: str = "assay", **kwargs: Any
) -> EnvSpec:
    """Register an env under ``id`` (and with gymnasium as ``assay/<id>``)."""
    spec = EnvSpec(id, entry_point, dict(kwargs), source)
    _REGISTRY[id] = spec
    gym_id = f"{GYM_NAMESPACE}/{id.replace('/', '-')}"  # gymnasium allows one namespace
    if gym_id not in gym.registry:
        # gymnasium's passive checker assumes numeric spaces; `envs.check_env` covers text envs.
        gym.register(gym_id, entry_point=entry_point, kwargs=dict(kwargs), disable_env_checker=True)
    return spec


def load_plugins() -> None:
    """Register every game found in the ``assay.envs`` entry-point group (once)."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _REGISTRY:
            warnings.warn(
                f"Plugin {ep.value!r} from {ep.dist.name if ep.dist else '?'} tries to register "
                f"{ep.name!r}, which already exists; ignored.",
                stacklevel=2,
            )
            continue
        register(ep.name, ep.value, source=ep.dist.name if ep.dist else ep.value)


def list_envs() -> list[str]:
    """Ids of every registered env, built-in and plugin (and reasoning-gym's, if installed), sorted."""
    load_plugins()
    from envs import rg, ta

    for name in rg.dataset_names():
        _register_rg(name)
    for game in ta.game_ids():
        _register_ta(game)
    return sorted(_REGISTRY)


def spec(id: str) -> EnvSpec:
    """The :class:`EnvSpec` of ``id``; raises :class:`EnvNotFound` with the known ids."""
    load_plugins()
    if id not in _REGISTRY and id.startswith("rg/") and id.endswith("-v0"):
        from envs import rg

        if id[3:-3] in rg.dataset_names():
            _register_rg(id[3:-3])
    if id not in _REGISTRY and id.startswith("ta/"):
        from envs import ta

        if id[3:] in ta.game_ids(include_variants=True):
            _register_ta(id[3:])
    if id not in _REGISTRY:
        raise EnvNotFound(
            f"No environment is registered as {id!r}.{did_you_mean(id, _REGISTRY)} "
            f"Known ids: {', '.join(sorted(_REGISTRY))}. Third-party games register through the "
            f"{ENTRY_POINT_GROUP!r} entry-point group."
        )
    return _REGISTRY[id]


def make(id: str, **kwargs: Any):
    """Build the env registered as ``id``; ``kwargs`` override the registered defaults.

    ``openenv:http://host:port`` is an env served elsewhere over OpenEnv's protocol
    (:class:`envs.serve.client.RemoteEnv`; ``kwargs`` are its options)."""
    if id.startswith("openenv:"):
        from envs.serve.client import RemoteEnv

        _check_options(id, RemoteEnv, kwargs)
        return RemoteEnv(id.removeprefix("openenv:"), **kwargs)
    env_spec = spec(id)
    factory = env_spec.load()
    options = {**env_spec.kwargs, **kwargs}
    _check_options(id, factory, options)
    return factory(**options)


def _register_rg(name: str) -> None:
    if f"rg/{name}-v0" not in _REGISTRY:
        register(f"rg/{name}-v0", "envs.rg:ReasoningGymEnv", source="reasoning-gym", dataset=name)


def _register_ta(game: str) -> None:
    if f"ta/{game}" not in _REGISTRY:
        register(f"ta/{game}", "envs.ta:TextArenaEnv", source="textarena", game=game)


def _check_options(id: str, factory: Callable[..., Any], options: dict[str, Any]) -> None:
    params = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    unknown = [k for k in options if k not in params]
    if unknown:
        accepted = ", ".join(p for p in params if p != "self") or "none"
        raise ConfigError(
            f"Environment {id!r} has no option {unknown[0]!r}.{did_you_mean(unknown[0], params)} "
            f"Its options are: {accepted}."
        )
