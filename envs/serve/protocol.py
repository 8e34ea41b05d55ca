"""OpenEnv's wire format, as ``openenv-core`` 0.3 defines it (``openenv.core.env_server``), and
what an assay env puts in it.

HTTP (stateless in OpenEnv: each request gets an env of its own):

- ``POST /reset`` ``{"seed"?: int >= 0, "episode_id"?: str}`` and ``POST /step``
  ``{"action": {...}, "timeout_s"?: float, "request_id"?: str}`` answer
  ``{"observation": {...}, "reward": float | null, "done": bool}``;
- ``GET /health`` ``{"status": "healthy"}``, ``GET /state``, ``GET /metadata``, ``GET /schema``.

WebSocket ``/ws`` (one env per connection, for whole episodes): the client sends
``{"type": "reset", "data": {"seed": ...}}``, ``{"type": "step", "data": <action>}``,
``{"type": "state"}`` or ``{"type": "close"}``; the server answers
``{"type": "observation", "data": {"observation", "reward", "done"}}``,
``{"type": "state", "data": {...}}`` or ``{"type": "error", "data": {"message", "code"}}``.

An assay env's action is ``{"message": text}``. Its observation is
``{"messages": [chat messages], "agent", "valid", "reason", "truncated", "info"}``: ``agent`` says
whose turn it is, and ``info`` is the step's info (JSON-safe), hidden state included, for the
trainer; a policy is shown ``messages`` only, as in process.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

ACTION_KEY = "message"
MAX_ACTION_CHARS = 1 << 16
"""The longest action text accepted (65,536 characters: past any answer a trainer samples)."""

# Error codes: OpenEnv's, then assay's own (an OpenEnv client raises on any of them).
INVALID_JSON = "INVALID_JSON"
UNKNOWN_TYPE = "UNKNOWN_TYPE"
VALIDATION_ERROR = "VALIDATION_ERROR"
EXECUTION_ERROR = "EXECUTION_ERROR"
CAPACITY_REACHED = "CAPACITY_REACHED"
NO_EPISODE = "NO_EPISODE"
EPISODE_DONE = "EPISODE_DONE"
TIMEOUT = "TIMEOUT"
SESSION_EXPIRED = "SESSION_EXPIRED"
MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"


class ProtocolError(ValueError):
    """A request that breaks the protocol; ``code`` is the error code sent back."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def error(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """A WebSocket error reply."""
    return {"type": "error", "data": {"message": message, "code": code, **extra}}


def parse_action(data: Any) -> str:
    """The action text of a step's ``data`` (``{"message": str}``, nothing else)."""
    if not isinstance(data, Mapping):
        raise ProtocolError(
            VALIDATION_ERROR, f'an action is {{"{ACTION_KEY}": text}}, got {data!r}'[:200]
        )
    extra = sorted(set(data) - {ACTION_KEY})
    if extra:
        raise ProtocolError(
            VALIDATION_ERROR,
            f'an action has one key, "{ACTION_KEY}"; unexpected: {", ".join(map(str, extra))[:100]}',
        )
    text = data.get(ACTION_KEY)
    if not isinstance(text, str):
        raise ProtocolError(VALIDATION_ERROR, f'the action\'s "{ACTION_KEY}" must be a string')
    if len(text) > MAX_ACTION_CHARS:
        raise ProtocolError(
            MESSAGE_TOO_LARGE,
            f"the action has {len(text):,} characters; at most {MAX_ACTION_CHARS:,}",
        )
    return text


def parse_seed(data: Any) -> int | None:
    """The ``seed`` of a reset's data: a whole number >= 0, or absent."""
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise ProtocolError(VALIDATION_ERROR, 'reset data must be an object such as {"seed": 0}')
    seed = data.get("seed")
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ProtocolError(
            VALIDATION_ERROR, f"seed must be a whole number >= 0, got {seed!r}"[:200]
        )
    return seed


def step_payload(
    observation: list, reward: float | None, terminated: bool, truncated: bool, info: Mapping
) -> dict[str, Any]:
    """``{observation, reward, done}`` of a reset (``reward`` None) or a step."""
    payload = {
        "messages": plain(observation),
        "agent": str(info.get("agent", "")),
        "valid": bool(info.get("valid", True)),
        "reason": str(info.get("reason", "")),
        "truncated": bool(truncated),
        "info": plain(dict(info)),
    }
    return {
        "observation": payload,
        "reward": None if reward is None else float(reward),
        "done": bool(terminated or truncated),
    }


def plain(value: Any) -> Any:
    """A JSON-safe copy: numpy scalars become numbers, tuples and sets lists, keys strings,
    non-finite floats strings (JSON has none), anything else its ``str``."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((plain(v) for v in value), key=repr)
    item = getattr(value, "item", None)  # numpy and torch scalars
    if callable(item) and getattr(value, "ndim", None) == 0:
        return plain(item())
    tolist = getattr(value, "tolist", None)  # arrays
    if callable(tolist):
        return plain(tolist())
    return str(value)


_TEXT = {"type": "string"}
SCHEMA = {
    "action": {
        "type": "object",
        "properties": {ACTION_KEY: {**_TEXT, "maxLength": MAX_ACTION_CHARS}},
        "required": [ACTION_KEY],
        "additionalProperties": False,
    },
    "observation": {
        "type": "object",
        "properties": {
            "messages": {
                "type": "array",
                "items": {"type": "object", "properties": {"role": _TEXT, "content": _TEXT}},
            },
            "agent": _TEXT,
            "valid": {"type": "boolean"},
            "reason": _TEXT,
            "truncated": {"type": "boolean"},
            "info": {"type": "object"},
        },
    },
    "state": {
        "type": "object",
        "properties": {
            "episode_id": {"type": ["string", "null"]},
            "step_count": {"type": "integer", "minimum": 0},
            "seed": {"type": ["integer", "null"]},
            "done": {"type": ["boolean", "null"]},
            "agent": _TEXT,
        },
    },
}
