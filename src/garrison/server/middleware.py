"""What runs before routing: path normalisation, the client address behind trusted
proxies, and the body size limit."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from garrison.server import errors_http

_SLASHES = re.compile(r"/{2,}")
AGENT_PREFIX = "/api/"


def is_agent_path(path: str) -> bool:
    """The agent API (Armadito's wire protocol) lives under ``/api/``."""
    return path.startswith(AGENT_PREFIX)


def normalize_path(scope: Scope) -> Scope:
    """``//api/x`` (a trailing slash in the agent's server URL) and ``/api/x/`` mean ``/api/x``."""
    path: str = scope["path"]
    if "//" not in path and (len(path) <= 1 or not path.endswith("/")):
        return scope
    clean = _SLASHES.sub("/", path)
    if len(clean) > 1 and clean.endswith("/"):
        clean = clean.rstrip("/") or "/"
    scope = dict(scope)
    scope["path"] = clean
    scope["raw_path"] = clean.encode("utf-8")
    return scope


Networks = Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, proxies: Networks) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


def resolve_client(scope: Scope, proxies: Networks) -> Scope:
    """The scope with ``client`` set to the real client's address: the TCP peer's, unless
    the peer is one of ``proxies`` (GARRISON_TRUSTED_PROXIES; none by default), when
    ``X-Forwarded-For`` is read from the right, past every trusted proxy, to the first
    address that is not one.  A hop that is not an address ends the walk at the last proxy:
    a forged or garbled header can never name an arbitrary client.  Every user of the client
    address (station address, audit, the login and enrollment limits) reads ``client``."""
    client = scope.get("client")
    if not proxies or not client:
        return scope
    peer = _address(str(client[0]))
    if peer is None or not _trusted(peer, proxies):
        return scope
    hops = [
        hop
        for name, value in scope.get("headers", [])
        if name == b"x-forwarded-for"
        for hop in value.decode("latin-1").split(",")
        if hop.strip()
    ]
    found = peer
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break
        found = address
        if not _trusted(address, proxies):
            break
    if found == peer:
        return scope
    scope = dict(scope)
    scope["client"] = (str(found), 0)
    return scope


class BodyTooLarge(HTTPException):
    """Raised while a handler reads the body: an HTTPException, so that FastAPI passes it on
    (it turns other exceptions during body parsing into a 400) and the JSON handler answers
    413.  The connection is closed: the rest of the body is never read."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            f"request body is larger than the limit of {limit} bytes",
            headers={"connection": "close"},
        )


def announced_length_error(scope: Scope, limit: int) -> HTTPException | None:
    """The refusal of a request whose Content-Length is invalid or over ``limit``."""
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                announced = int(value)
            except ValueError:
                return HTTPException(400, "invalid Content-Length header")
            if announced > limit:
                return BodyTooLarge(limit)
    return None


def limited_receive(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises :class:`BodyTooLarge` once more than ``limit`` bytes came."""
    received = 0

    async def limited() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
        return message

    return limited


class BodyLimit:
    """Refuses request bodies over ``limit`` bytes with 413, whether announced or streamed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = announced_length_error(scope, self.limit)
        if refusal is not None:
            await self._refuse(refusal, scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive(receive, self.limit), tracking_send)
        except BodyTooLarge as exc:
            if not started:
                await self._refuse(exc, scope, receive, send)

    @staticmethod
    async def _refuse(exc: HTTPException, scope: Scope, receive: Receive, send: Send) -> None:
        response = errors_http.http_error_response(exc, scope["method"], scope["path"])
        await response(scope, receive, send)


def header_value(scope: Scope, name: bytes) -> Any:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None
