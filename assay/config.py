"""Typed configs: dataclasses loaded from YAML plus dotted ``key=value`` overrides.

Every problem (unknown key, wrong type, bad value) is collected and raised together as one
:class:`~assay.errors.ConfigError` before any work starts, e.g.::

    train.stpes: unknown key. Did you mean 'steps'? Allowed keys: steps, max_minutes, ...
    algo.group_size: expected int, got 'eight' (str)

A dataclass may define ``problems(self) -> list[str]`` for checks across its fields; each message
starts with the field name relative to that dataclass (the loader adds the dotted path).
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

from assay.errors import ConfigError, did_you_mean

T = TypeVar("T")
_MISSING = object()
_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")


def parse_overrides(overrides: Sequence[str]) -> dict[str, Any]:
    """Turn ``["a.b=3", "c=[1, 2]"]`` into a nested dict; values are parsed as YAML scalars/lists."""
    tree: dict[str, Any] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"Override {item!r} is not of the form dotted.key=value.")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = tree
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"Override {item!r} sets a key under {part!r}, which is a value.")
        node[parts[-1]] = value
    return tree


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def _convert(tp: Any, value: Any, where: str, errors: list[str]) -> Any:
    """Check ``value`` against the annotation ``tp``; append to ``errors`` and return _MISSING if wrong."""
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            errors.append(f"{where}: expected a mapping of {tp.__name__} fields, got {value!r}")
            return _MISSING
        return _build(tp, value, where + ".", errors)
    if tp is Any:
        return value
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            hint = did_you_mean(str(value), [str(a) for a in allowed])
            errors.append(
                f"{where}: got {value!r}; allowed values: {', '.join(map(repr, allowed))}.{hint}"
            )
            return _MISSING
        return value
    if origin in (typing.Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            trial: list[str] = []
            converted = _convert(option, value, where, trial)
            if not trial:
                return converted
        errors.append(
            f"{where}: expected {' or '.join(_type_name(o) for o in options)}, got {value!r}"
        )
        return _MISSING
    if origin in (list, tuple, Sequence) or tp in (list, tuple):
        if not isinstance(value, list | tuple):
            errors.append(f"{where}: expected a list, got {value!r} ({type(value).__name__})")
            return _MISSING
        args = get_args(tp)
        item_tp = args[0] if args else Any
        items = [_convert(item_tp, v, f"{where}[{i}]", errors) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            errors.append(f"{where}: expected a mapping, got {value!r} ({type(value).__name__})")
            return _MISSING
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            errors.append(
                f"{where}: expected true or false, got {value!r} ({type(value).__name__})"
            )
            return _MISSING
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(f"{where}: expected int, got {value!r} ({type(value).__name__})")
            return _MISSING
        return value
    if tp is float:
        if isinstance(value, str) and _FLOAT.match(value):
            value = float(value)  # YAML 1.1 reads `1e-5` (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, int | float):
            errors.append(f"{where}: expected float, got {value!r} ({type(value).__name__})")
            return _MISSING
        return float(value)
    if tp is str:
        if isinstance(value, int | float | datetime.date) and not isinstance(value, bool):
            value = str(value)  # YAML reads run names such as 2024-01-01 or 42 as dates/numbers
        if not isinstance(value, str):
            errors.append(f"{where}: expected a string, got {value!r} ({type(value).__name__})")
            return _MISSING
        return value
    raise TypeError(f"config field {where} has an unsupported annotation {tp!r}")


def _was_renamed(
    renamed: dict[str, str], key: str, value: Any, prefix: str, errors: list[str]
) -> bool:
    """Report an old key (or each key of an old section) by its new name, from a config class's
    ``RENAMED`` table (old dotted key -> new dotted key); False if ``key`` is not an old name."""
    if key in renamed:
        errors.append(f"{prefix}{key} is now {prefix}{renamed[key]}; rename it")
        return True
    if not isinstance(value, dict) or not any(old.startswith(key + ".") for old in renamed):
        return False
    sections = sorted(
        {new.split(".")[0] for old, new in renamed.items() if old.startswith(key + ".")}
    )
    for sub in value:
        old = f"{key}.{sub}"
        if old in renamed:
            errors.append(f"{prefix}{old} is now {prefix}{renamed[old]}; move it")
        else:
            errors.append(
                f"{prefix}{old}: unknown key ({prefix}{key} was split into "
                f"{' and '.join(prefix + s for s in sections)})"
            )
    return True


def _build(cls: type[T], raw: dict[str, Any], prefix: str, errors: list[str]) -> T:
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs: dict[str, Any] = {}
    renamed = getattr(cls, "RENAMED", {})
    for key, value in raw.items():
        if key not in fields and _was_renamed(renamed, str(key), value, prefix, errors):
            continue
        if key not in fields:
            errors.append(
                f"{prefix}{key}: unknown key.{did_you_mean(str(key), fields)} "
                f"Allowed keys: {', '.join(fields)}."
            )
            continue
        converted = _convert(hints[key], value, prefix + key, errors)
        if converted is not _MISSING:
            kwargs[key] = converted
    for name, f in fields.items():
        if (
            name not in kwargs
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ):
            errors.append(f"{prefix}{name}: required key is missing")
    try:
        obj = cls(**kwargs)
    except TypeError:
        return _MISSING  # type: ignore[return-value]  # already reported above
    problems = getattr(obj, "problems", None)
    if problems is not None:
        errors.extend(f"{prefix}{p}" for p in problems())
    return obj


def load_config(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Load ``cls`` from a YAML file (optional) and dotted overrides; raise one ConfigError for all problems."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if path.is_dir():
            raise ConfigError(
                f"Config {str(path)!r} is a directory; pass a YAML file (e.g. configs/*.yaml), "
                "or --resume DIR to continue a run."
            )
        if not path.is_file():
            raise ConfigError(f"Config file {str(path)!r} does not exist.")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except UnicodeDecodeError as err:
            raise ConfigError(
                f"Config file {str(path)!r} is not UTF-8 text (byte {err.start}); save it as UTF-8."
            ) from None
        except OSError as err:
            raise ConfigError(
                f"Config file {str(path)!r} cannot be read: {err.strerror}."
            ) from None
        except yaml.YAMLError as err:
            raise ConfigError(f"Config file {str(path)!r} is not valid YAML: {err}") from None
        if not isinstance(raw, dict):
            raise ConfigError(
                f"Config file {str(path)!r} must hold a mapping, not {type(raw).__name__}."
            )
    raw = _merge(raw, parse_overrides(overrides))
    errors: list[str] = []
    config = _build(cls, raw, "", errors)
    if errors:
        where = f" in {path}" if path else ""
        raise ConfigError(f"{len(errors)} config problem(s){where}: " + "; ".join(errors))
    return config


def to_dict(config: Any) -> dict[str, Any]:
    """The config as plain data (tuples become lists), ready for YAML or JSON."""

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    return plain(dataclasses.asdict(config))


def dump_yaml(config: Any, path: Path) -> None:
    path.write_text(yaml.safe_dump(to_dict(config), sort_keys=False))
