"""The project's exception hierarchy.

Every user-facing failure is an :class:`AssayError` whose message says what was wrong, the
value received and how to fix it. The CLI prints the message as one line and exits with code 2.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class AssayError(Exception):
    """Base class of every error assay raises on purpose."""


class ConfigError(AssayError):
    """A config file or override is wrong (unknown key, wrong type, value out of range)."""


class EnvNotFound(AssayError):
    """No environment is registered under the requested id."""


class ModelNotFound(AssayError):
    """A model name is neither registered, a local path, nor reachable on the hub."""


class CheckpointError(AssayError):
    """A run directory or checkpoint cannot be resumed from."""


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest known name, or ``""``."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""
