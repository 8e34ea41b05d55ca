"""Algorithms by name: advantage estimators, policy losses and presets (``algo.name``).

An estimator or a loss is one decorated function in a module of its own; a preset names the
estimator, the loss and the knobs an algorithm sets. ``trainers.rl.config`` checks names against
these tables before any work, and the learner looks them up once, at construction. Adding an
algorithm is one file (docs/rl.md shows one):

    @advantage_estimator("median")
    def median_advantages(rewards):  # (n_groups, G) -> (n_groups, G)
        return rewards - rewards.median(dim=1, keepdim=True).values

    preset("median", advantage="median")

Algorithms in other packages register the same way and are found through the ``assay.algos``
entry-point group (each entry names a module to import; see docs/rl.md).

This module imports nothing heavier than the standard library.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from assay.errors import ConfigError


@dataclass(frozen=True)
class AdvantageEstimator:
    """A registered estimator and what it needs from the batch.

    - group estimators (``needs_values=False``): ``fn(rewards) -> advantages``, both
      ``(n_groups, G)``: one number per completion, spread over its tokens;
    - critic estimators (``needs_values=True``): ``fn(token_rewards, values, mask, gamma, lam)
      -> (advantages, returns)``, all ``(B, T)``; the learner then trains a value head.

    ``within_group``: a group's advantages depend on its own rewards only (multi-turn training
    groups each seat's episodes and needs this); REINFORCE++ normalises over the whole batch."""

    name: str
    fn: Callable[..., Any]
    needs_values: bool = False
    within_group: bool = True


ENTRY_POINT_GROUP = "assay.algos"

ADVANTAGES: dict[str, AdvantageEstimator] = {}
POLICY_LOSSES: dict[str, Callable[..., Any]] = {}
PRESETS: dict[str, dict[str, Any]] = {}

DEFAULTS: dict[str, Any] = {
    "policy_loss": "clip",
    "clip_low": 0.2,
    "clip_high": 0.2,
    "loss_agg": "token-mean",
    "ratio_level": "token",
    "dynamic_sampling": False,
    "overlong_buffer": 0,
}
"""What every preset starts from; a preset names only what it changes."""


def advantage_estimator(name: str, *, needs_values: bool = False, within_group: bool = True):
    """Register the decorated function as the advantage estimator ``name``."""

    def register(fn):
        _claim(ADVANTAGES, name, "advantage estimator", fn)
        ADVANTAGES[name] = AdvantageEstimator(name, fn, needs_values, within_group)
        return fn

    return register


def policy_loss(name: str):
    """Register the decorated function as the policy loss ``name``. It is called as
    ``fn(logprobs, old_logprobs, advantages, mask, clip_low, clip_high, *, ratio_level,
    is_weights, aggregation, denom, constant)`` and returns ``(loss, stats)`` like
    :func:`trainers.algos.policy.clipped_policy_loss`."""

    def register(fn):
        _claim(POLICY_LOSSES, name, "policy loss", fn)
        POLICY_LOSSES[name] = fn
        return fn

    return register


def preset(name: str, **settings: Any) -> None:
    """Register ``algo.name: name``: ``settings`` override :data:`DEFAULTS` for every knob the
    config leaves null (``advantage`` is required)."""
    unknown = set(settings) - set(DEFAULTS) - {"advantage"}
    if "advantage" not in settings or unknown:
        raise ValueError(f"preset {name!r} needs an advantage and knows no {sorted(unknown)}")
    full = {**DEFAULTS, **settings}
    if PRESETS.get(name, full) != full:
        raise ValueError(f"algorithm preset {name!r} is already registered")
    PRESETS[name] = full


def estimator(name: str) -> AdvantageEstimator:
    return ADVANTAGES[_known(ADVANTAGES, name, "advantage estimator")]


def loss(name: str) -> Callable[..., Any]:
    return POLICY_LOSSES[_known(POLICY_LOSSES, name, "policy loss")]


_plugins_loaded = False


def load_plugins() -> None:
    """Import every module named in the ``assay.algos`` entry-point group (once), so that their
    estimators, losses and presets are registered."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            importlib.import_module(ep.value.split(":")[0])
        except Exception as err:  # a broken plugin: say which, not a traceback
            source = ep.dist.name if ep.dist else ep.value
            raise ConfigError(
                f"The algorithm plugin {ep.name!r} ({ep.value} from {source}) failed to import: "
                f"{type(err).__name__}: {err}"
            ) from err


def unknown_name(table: dict[str, Any], name: str, what: str) -> str | None:
    """A sentence for a name not in ``table`` (with the known names and the closest one), or
    None when it is known. Plugins are loaded first."""
    load_plugins()
    if name in table:
        return None
    close = difflib.get_close_matches(str(name), table, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"unknown {what} {name!r}; known: {', '.join(sorted(table))}.{hint}"


def _known(table: dict[str, Any], name: str, what: str) -> str:
    problem = unknown_name(table, name, what)
    if problem:
        raise ConfigError(problem[0].upper() + problem[1:])
    return name


def _claim(table: dict[str, Any], name: str, what: str, fn: Any = None) -> None:
    """Refuse a second registration of ``name``, unless it is the same function again (a
    module imported twice, e.g. by path and by name)."""
    old = table.get(name)
    old = getattr(old, "fn", old)
    same = fn is not None and all(
        getattr(old, k, None) == getattr(fn, k, None) for k in ("__module__", "__qualname__")
    )
    if old is not None and not same:
        raise ValueError(f"{what} {name!r} is already registered")
