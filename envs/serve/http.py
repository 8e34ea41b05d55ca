"""HTTP plumbing of the env server: the JSON body, error responses with one-line reasons, and
a bound on the body's size."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from envs.serve import protocol as wire


async def json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError:
        raise wire.ProtocolError(wire.INVALID_JSON, "the body is not JSON") from None


_STATUS = {
    wire.INVALID_JSON: 400,
    wire.VALIDATION_ERROR: 422,
    wire.MESSAGE_TOO_LARGE: 413,
    wire.NO_EPISODE: 409,
    wire.EPISODE_DONE: 409,
}


async def protocol_error(request: Request, err: Exception) -> JSONResponse:
    code = getattr(err, "code", wire.VALIDATION_ERROR)
    return JSONResponse({"detail": str(err), "code": code}, status_code=_STATUS.get(code, 400))


async def timeout_error(request: Request, err: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(err), "code": wire.TIMEOUT}, status_code=504)


class BodyLimit:
    """Answers 413 to an HTTP body over ``limit`` bytes, declared or streamed."""

    def __init__(self, app: Any, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(send)
        seen = 0

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._refuse(send)

    async def _refuse(self, send: Callable) -> None:
        body = json.dumps(
            {"detail": f"the body is over {self.limit:,} bytes", "code": wire.MESSAGE_TOO_LARGE}
        )
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        await send({"type": "http.response.body", "body": body.encode()})


class _TooLarge(Exception):
    pass
