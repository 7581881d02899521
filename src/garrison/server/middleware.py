"""ASGI middleware that runs before routing: path normalisation and the body size limit."""

from __future__ import annotations

import re
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_SLASHES = re.compile(r"/{2,}")


class NormalizePath:
    """``//api/x`` (a trailing slash in the agent's server URL) and ``/api/x/`` mean ``/api/x``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            clean = _SLASHES.sub("/", path)
            if len(clean) > 1 and clean.endswith("/"):
                clean = clean.rstrip("/") or "/"
            if clean != path:
                scope = dict(scope)
                scope["path"] = clean
                scope["raw_path"] = clean.encode("utf-8")
        await self.app(scope, receive, send)


class _TooLarge(HTTPException):
    """Raised while a handler reads the body: an HTTPException, so that FastAPI passes it on
    (it turns other exceptions during body parsing into a 400) and the JSON handler answers
    413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than the limit of {limit} bytes")


async def send_json_error(
    send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = orjson.dumps({"error": message, "message": message})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ]
            + (headers or []),
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Refuses request bodies over ``limit`` bytes with 413, whether announced or streamed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = f"request body is larger than the limit of {self.limit} bytes"
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    announced = int(value)
                except ValueError:
                    await send_json_error(send, 400, "invalid Content-Length header")
                    return
                if announced > self.limit:
                    await send_json_error(send, 413, too_large, [(b"connection", b"close")])
                    return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge(self.limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await send_json_error(send, 413, too_large, [(b"connection", b"close")])


def header_value(scope: Scope, name: bytes) -> Any:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None
