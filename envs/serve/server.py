"""``assay serve env ID [option=value ...]``: one registered env over OpenEnv's protocol
(:mod:`envs.serve.protocol`), so any trainer with an OpenEnv client can play it.

FastAPI and uvicorn carry the HTTP and WebSocket plumbing. The app is written here rather than
with ``openenv-core``'s ``create_fastapi_app`` because that app has no time limit per request, no
bound on request size, and HTTP ``/step`` on a fresh env that was never reset; its routes and
message shapes are kept exactly (tests drive this server with openenv-core's own client).

Guarantees: every WebSocket connection gets an env of its own (two clients never share one); at
most ``max_sessions`` at once (one more is refused with ``CAPACITY_REACHED`` and closed); a session
silent for ``idle_timeout_s`` is told ``SESSION_EXPIRED`` and closed; a reset or step that runs
past ``request_timeout_s`` answers ``TIMEOUT`` (HTTP 504) and its env is dropped; requests over
``max_request_bytes`` get 413 (HTTP) or ``MESSAGE_TOO_LARGE``; malformed JSON, a bad action, a
step before reset or after the end, and an env that raises each get a one-line error and leave the
server and every other session running. HTTP ``/step`` is stateless as in OpenEnv; with a
``seed`` in its body it resets that episode first, which scores a single-turn answer in one call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from envs.serve import protocol as wire

try:
    from fastapi import FastAPI, Request, WebSocket

    from envs.serve import http
except ImportError as err:  # the optional extra is not installed
    raise ImportError(
        "assay serve env needs FastAPI and uvicorn: pip install 'assay[serve]'"
    ) from err


@dataclass
class ServerLimits:
    max_sessions: int = 64
    """WebSocket sessions (episodes in progress) at once."""
    idle_timeout_s: float = 300.0
    """A session with no message for this long is closed."""
    request_timeout_s: float = 60.0
    """The longest one reset or step may take."""
    max_request_bytes: int = 1 << 20
    """The largest HTTP body or WebSocket message accepted (1 MiB)."""


@dataclass
class _Session:
    env: Any
    seed: int | None = None
    episode_id: str | None = None
    step_count: int = 0
    done: bool | None = None  # None: not reset yet
    agent: str = ""

    def state(self) -> dict[str, Any]:
        return {
            "episode_id": self.episode_id,
            "step_count": self.step_count,
            "seed": self.seed,
            "done": self.done,
            "agent": self.agent,
        }


class _Timeout(Exception):
    pass


class EnvServer:
    """Serves envs built by ``make_env`` (one per session, reused after a session ends)."""

    def __init__(
        self, make_env: Callable[[], Any], env_id: str, limits: ServerLimits | None = None
    ):
        self.make_env, self.env_id = make_env, env_id
        self.limits = limits or ServerLimits()
        self.sessions: dict[str, _Session] = {}
        self.executor = ThreadPoolExecutor(self.limits.max_sessions + 4, "assay-env")
        self._idle: list[Any] = []
        self._probe = make_env()  # fails now, not on the first request, if the env cannot build
        self._idle.append(self._probe)

    # --- env calls ---------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        call = loop.run_in_executor(self.executor, lambda: fn(*args, **kwargs))
        try:
            return await asyncio.wait_for(call, self.limits.request_timeout_s)
        except asyncio.TimeoutError:
            raise _Timeout(
                f"the env took longer than {self.limits.request_timeout_s:g} s "
                "(request_timeout_s); this episode is dropped"
            ) from None

    async def _take(self) -> Any:
        return self._idle.pop() if self._idle else await self._run(self.make_env)

    def _give_back(self, env: Any) -> None:
        if len(self._idle) < self.limits.max_sessions:
            self._idle.append(env)

    async def _reset(self, session: _Session, data: Any) -> dict[str, Any]:
        seed = wire.parse_seed(data)
        episode_id = data.get("episode_id") if isinstance(data, dict) else None
        observation, info = await self._run(session.env.reset, seed=seed)
        session.seed, session.step_count, session.done = seed, 0, False
        session.episode_id = str(episode_id)[:255] if episode_id is not None else uuid.uuid4().hex
        session.agent = str(info.get("agent", ""))
        return wire.step_payload(observation, None, False, False, info)

    async def _step(self, session: _Session, data: Any) -> dict[str, Any]:
        if session.done is None:
            raise wire.ProtocolError(wire.NO_EPISODE, "no episode yet: send reset first")
        if session.done:
            raise wire.ProtocolError(wire.EPISODE_DONE, "the episode is over: send reset")
        action = wire.parse_action(data)
        observation, reward, terminated, truncated, info = await self._run(session.env.step, action)
        session.step_count += 1
        session.done = bool(terminated or truncated)
        session.agent = str(info.get("agent", ""))
        return wire.step_payload(observation, reward, terminated, truncated, info)

    # --- the app -----------------------------------------------------------------------------

    def app(self) -> FastAPI:
        app = FastAPI(title=f"assay env {self.env_id}", docs_url=None, redoc_url=None)
        app.add_middleware(http.BodyLimit, limit=self.limits.max_request_bytes)
        app.add_exception_handler(wire.ProtocolError, http.protocol_error)
        app.add_exception_handler(_Timeout, http.timeout_error)

        @app.get("/health")
        async def health() -> dict[str, str]:
            return {"status": "healthy"}

        @app.get("/metadata")
        async def metadata() -> dict[str, Any]:
            return self.metadata()

        @app.get("/schema")
        async def schema() -> dict[str, Any]:
            return wire.SCHEMA

        @app.get("/state")
        async def state() -> dict[str, Any]:
            return _Session(env=None).state()  # HTTP is stateless, as in OpenEnv

        @app.post("/reset")
        async def reset(request: Request) -> dict[str, Any]:
            return await self._http(await http.json_body(request), step=False)

        @app.post("/step")
        async def step(request: Request) -> dict[str, Any]:
            return await self._http(await http.json_body(request), step=True)

        @app.websocket("/ws")
        async def ws(websocket: WebSocket) -> None:
            await self._serve_socket(websocket)

        return app

    def metadata(self) -> dict[str, Any]:
        env = self._probe.unwrapped
        doc = (type(env).__doc__ or "").strip().splitlines()
        return {
            "name": self.env_id,
            "description": doc[0] if doc else "",
            "readme_content": None,
            "version": _version(),
            "author": "assay",
            "documentation_url": None,
            "assay": {
                "env_id": self.env_id,
                "possible_agents": list(getattr(env, "possible_agents", ())),
                "metric_keys": list(getattr(env, "metric_keys", ())),
                "active_sessions": len(self.sessions),
                "max_sessions": self.limits.max_sessions,
            },
        }

    async def _http(self, body: Any, step: bool) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise wire.ProtocolError(wire.VALIDATION_ERROR, "the body must be a JSON object")
        session = _Session(env=await self._take())
        try:
            if not step:
                result = await self._reset(session, body)
            elif body.get("seed") is None:
                raise wire.ProtocolError(
                    wire.NO_EPISODE,
                    "HTTP /step is stateless (as in OpenEnv): add a seed to score one answer on "
                    "that episode, or play whole episodes over the WebSocket /ws",
                )
            else:
                await self._reset(session, {"seed": body.get("seed")})
                result = await self._step(session, body.get("action"))
        except _Timeout:
            raise  # the env is still busy in its thread: never reuse it
        except BaseException:
            self._give_back(session.env)
            raise
        self._give_back(session.env)
        return result

    async def _serve_socket(self, websocket: WebSocket) -> None:
        await websocket.accept()
        limits = self.limits
        if len(self.sessions) >= limits.max_sessions:
            await websocket.send_json(wire.error(
                wire.CAPACITY_REACHED,
                f"server at capacity: {len(self.sessions)}/{limits.max_sessions} sessions active",
                active_sessions=len(self.sessions), max_sessions=limits.max_sessions,
            ))  # fmt: skip
            await websocket.close(code=1013)
            return
        key = uuid.uuid4().hex
        self.sessions[key] = session = _Session(env=None)
        healthy = True
        try:
            session.env = await self._take()
            while True:
                try:
                    message = await asyncio.wait_for(websocket.receive(), limits.idle_timeout_s)
                except asyncio.TimeoutError:
                    await websocket.send_json(wire.error(
                        wire.SESSION_EXPIRED,
                        f"no message for {limits.idle_timeout_s:g} s (idle_timeout_s); closed",
                    ))  # fmt: skip
                    break
                if message["type"] == "websocket.disconnect":
                    break
                reply = await self._answer(session, message)
                if reply is None:  # close
                    break
                await websocket.send_json(reply)
                if reply["type"] == "error" and reply["data"]["code"] == wire.TIMEOUT:
                    healthy = False
                    break
        except Exception:  # the client went away mid-send, or the env could not be built
            healthy = False
        finally:
            del self.sessions[key]
            if healthy and session.env is not None:
                self._give_back(session.env)
            with contextlib.suppress(Exception):  # already closed by the client
                await websocket.close()

    async def _answer(self, session: _Session, message: dict[str, Any]) -> dict[str, Any] | None:
        """The reply to one WebSocket message (None for ``close``)."""
        raw = message.get("text")
        if raw is None and message.get("bytes") is not None:
            raw = message["bytes"].decode("utf-8", errors="replace")
        if (
            raw is None
            or len(raw.encode("utf-8", errors="replace")) > self.limits.max_request_bytes
        ):
            return wire.error(
                wire.MESSAGE_TOO_LARGE,
                f"messages are at most {self.limits.max_request_bytes:,} bytes",
            )
        try:
            request = json.loads(raw)
        except ValueError:
            return wire.error(wire.INVALID_JSON, "the message is not JSON")
        if not isinstance(request, dict):
            return wire.error(wire.INVALID_JSON, "a message is a JSON object with a type")
        kind = request.get("type")
        try:
            if kind == "reset":
                return {
                    "type": "observation",
                    "data": await self._reset(session, request.get("data") or {}),
                }
            if kind == "step":
                return {
                    "type": "observation",
                    "data": await self._step(session, request.get("data")),
                }
            if kind == "state":
                return {"type": "state", "data": session.state()}
            if kind == "close":
                return None
            return wire.error(wire.UNKNOWN_TYPE, f"unknown message type {str(kind)[:50]!r}")
        except wire.ProtocolError as err:
            return wire.error(err.code, str(err))
        except _Timeout as err:
            return wire.error(wire.TIMEOUT, str(err))
        except Exception as err:  # the env raised: report it, keep serving
            session.done = None
            return wire.error(wire.EXECUTION_ERROR, _one_line(err) + "; send reset")


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:300]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("assay")
    except PackageNotFoundError:
        return "0"


def serve(env_id: str, options: dict[str, Any], host: str, port: int, limits: ServerLimits) -> None:
    """Run the server until interrupted (``assay serve env``)."""
    import uvicorn

    import envs

    server = EnvServer(lambda: envs.make(env_id, **options), env_id, limits)
    print(f"serving {env_id} on http://{host}:{port} (WebSocket ws://{host}:{port}/ws)", flush=True)
    uvicorn.run(server.app(), host=host, port=port, log_level="warning",
                ws_max_size=4 * limits.max_request_bytes)  # fmt: skip
