"""A remote env as a local one: :class:`RemoteEnv` plays episodes on any server that speaks
OpenEnv's WebSocket protocol (``assay serve env``, or ``openenv-core``'s own server), so
``assay train rl``, ``assay rollout`` and ``assay envs check`` take ``env.id:
openenv:http://host:port`` unchanged.

Network failures are bounded: connecting waits ``connect_timeout_s``, every reply
``timeout_s``. A connection lost mid-episode is opened again and the episode rebuilt by replaying
its seed and actions (envs are deterministic per seed), and the replay is checked against what was
seen; ``retries`` such reconnects per request, each counted in ``reconnects``, then a
:class:`RemoteEnvError` says what failed. An error the server reports (a bad action, an env that
raised, a timeout) is raised at once as a :class:`RemoteEnvError` with the server's message.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from assay.errors import AssayError, ConfigError
from envs.core import TextEnv
from envs.serve import protocol as wire

PREFIX = "openenv:"


class RemoteEnvError(AssayError):
    """The remote env could not be reached, or its server reported an error."""


class RemoteEnv(TextEnv):
    """An env served elsewhere (``envs.make("openenv:http://host:port")``)."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 10.0,
        retries: int = 2,
        action_key: str = wire.ACTION_KEY,
    ):
        if not (timeout_s > 0 and connect_timeout_s > 0) or retries < 0:
            raise ConfigError("timeout_s and connect_timeout_s must be > 0 and retries >= 0.")
        self.base_url, self.ws_url = _urls(url)
        self.timeout_s, self.connect_timeout_s, self.retries = timeout_s, connect_timeout_s, retries
        self.action_key = action_key
        self.server = self._metadata()
        about = self.server.get("assay") or {}
        self.possible_agents = tuple(about.get("possible_agents") or ())
        self.metric_keys = tuple(about.get("metric_keys") or ())
        self.reconnects = 0
        self._socket = None
        self._seed: int | None = None
        self._actions: list[str] = []
        self._seen: list[dict[str, Any]] = []  # replies of this episode, to check a replay

    def __repr__(self) -> str:
        return f"RemoteEnv({self.base_url!r})"

    # --- the TextEnv contract ---------------------------------------------------------------

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        data = {} if seed is None else {"seed": int(seed)}
        self._seed, self._actions, self._seen = seed, [], []
        reply = self._request({"type": "reset", "data": data})
        self._seen.append(reply)
        observation, info, _ = self._unpack(reply)
        return observation, info

    def step(self, action: str):
        payload = {"type": "step", "data": {self.action_key: action}}
        reply = self._request(payload)
        self._actions.append(action)
        self._seen.append(reply)
        observation, info, truncated = self._unpack(reply)
        reward = float(reply.get("reward") or 0.0)
        done = bool(reply.get("done"))
        return observation, reward, done and not truncated, truncated, info

    def close(self) -> None:
        if self._socket is not None:
            try:
                self._socket.send(json.dumps({"type": "close"}))
                self._socket.close()
            except Exception:  # already gone
                pass
            self._socket = None

    # --- wire ---------------------------------------------------------------------------------

    def _unpack(self, reply: dict[str, Any]) -> tuple[list, dict[str, Any], bool]:
        obs = reply.get("observation")
        if not isinstance(obs, dict):
            raise RemoteEnvError(f"{self.base_url} sent an observation that is not an object.")
        messages = obs.get("messages")
        if not (isinstance(messages, list) and all(isinstance(m, dict) for m in messages)):
            messages = [{"role": "user", "content": _as_text(obs)}]  # a generic OpenEnv env
        info = obs.get("info") if isinstance(obs.get("info"), dict) else {}
        info = {
            **info,
            "agent": str(obs.get("agent") or info.get("agent") or "agent"),
            "valid": bool(obs.get("valid", info.get("valid", True))),
            "reason": str(obs.get("reason", info.get("reason", ""))),
        }
        return messages, info, bool(obs.get("truncated", False))

    def _request(self, message: dict[str, Any]) -> dict[str, Any]:
        failures = []
        for attempt in range(self.retries + 1):
            try:
                if self._socket is None:
                    self._connect(replay=attempt > 0 or message["type"] == "step")
                return self._exchange(message)
            except (OSError, TimeoutError, _Closed) as err:
                failures.append(f"{type(err).__name__}: {err}"[:200])
                self._drop()
        raise RemoteEnvError(
            f"{self.base_url} did not answer after {self.retries + 1} tries "
            f"(timeout {self.timeout_s:g} s): {'; '.join(failures)}"
        )

    def _exchange(self, message: dict[str, Any]) -> dict[str, Any]:
        from websockets.exceptions import ConnectionClosed

        try:
            self._socket.send(json.dumps(message))
            raw = self._socket.recv(timeout=self.timeout_s)
        except ConnectionClosed as err:
            raise _Closed(str(err)) from None
        try:
            reply = json.loads(raw)
        except ValueError:
            raise RemoteEnvError(f"{self.base_url} sent a reply that is not JSON.") from None
        if not isinstance(reply, dict):
            raise RemoteEnvError(f"{self.base_url} sent a reply that is not an object.")
        if reply.get("type") == "error":
            data = reply.get("data") or {}
            raise RemoteEnvError(
                f"{self.base_url} refused {message['type']}: {data.get('message')} "
                f"({data.get('code')})"
            )
        return reply.get("data") or {}

    def _connect(self, replay: bool) -> None:
        """Open the socket; with ``replay``, rebuild the episode in progress on it."""
        import inspect

        from websockets.sync.client import connect

        # websockets >= 16 wants `with connect(...)` unless asked for a connection to keep.
        keep = {"legacy": True} if "legacy" in inspect.signature(connect).parameters else {}
        self._socket = connect(
            self.ws_url,
            open_timeout=self.connect_timeout_s,
            close_timeout=self.connect_timeout_s,
            max_size=16 << 20,  # a reply (observation and info) of up to 16 MiB
            **keep,
        )
        if not replay or not self._seen:
            return
        if self._seed is None:
            raise RemoteEnvError(
                f"the connection to {self.base_url} was lost mid-episode and an episode reset "
                "without a seed cannot be rebuilt; reset with a seed"
            )
        self.reconnects += 1
        replies = [self._exchange({"type": "reset", "data": {"seed": self._seed}})]
        for action in self._actions:
            replies.append(self._exchange({"type": "step", "data": {self.action_key: action}}))
        if replies != self._seen:
            raise RemoteEnvError(
                f"the connection to {self.base_url} was lost and replaying the episode "
                f"(seed {self._seed}) gave other observations: the env is not deterministic"
            )

    def _drop(self) -> None:
        try:
            if self._socket is not None:
                self._socket.close()
        except Exception:
            pass
        self._socket = None

    def _metadata(self) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(
                self.base_url + "/metadata", timeout=self.connect_timeout_s
            ) as response:
                data = json.loads(response.read(1 << 20))
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise RemoteEnvError(
                f"No OpenEnv server answers at {self.base_url} ({err}); start one with "
                "`assay serve env ID --port N`."
            ) from None
        return data if isinstance(data, dict) else {}


class _Closed(Exception):
    pass


def _urls(url: str) -> tuple[str, str]:
    """The HTTP base URL and the WebSocket URL of a server address."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    scheme = {"http": "http", "ws": "http", "https": "https", "wss": "https"}.get(parts.scheme)
    if scheme is None or not parts.hostname:
        raise ConfigError(
            f"openenv:{url} is not a server address; use openenv:http://host:port (or https)."
        )
    path = parts.path.rstrip("/")
    path = path[: -len("/ws")] if path.endswith("/ws") else path
    base = urlunsplit((scheme, parts.netloc, path, "", ""))
    socket = urlunsplit(("wss" if scheme == "https" else "ws", parts.netloc, path + "/ws", "", ""))
    return base, socket


def _as_text(observation: dict[str, Any]) -> str:
    """The prompt of a generic OpenEnv observation: its one text field, else all its fields."""
    fields = {k: v for k, v in observation.items() if k not in ("reward", "done", "metadata")}
    texts = [v for v in fields.values() if isinstance(v, str)]
    if len(fields) == 1 and len(texts) == 1:
        return texts[0]
    return json.dumps(fields, sort_keys=True, default=str)
