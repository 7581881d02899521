"""The ASGI edge of the agent API: ``/api/*`` served from a table of exact paths.

Every agent calls ``/api/jobs`` every minute, so its requests skip FastAPI's per-request
stack and Starlette's routing (exception and exit-stack middleware, route regexes, the
wrappers that track whether a response started): the profiles in ``bench/findings.md``
measured that stack as the largest cost left in a check-in.  A handler returns its whole
response, so an error can always still be answered, with the same JSON bodies the admin API
uses (``errors_http``), and the request logged with its status.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from garrison.server import errors_http
from garrison.server.agentapi.hotpath import STATION_KEY
from garrison.server.agentapi.routes import Endpoint
from garrison.server.logs import RequestLog
from garrison.server.middleware import announced_length_error, limited_receive

# The station a token belongs to, when this node knows it without a database read.


class AgentEdge:
    """The agent API's routes, body limit, JSON error answers and request log."""

    def __init__(
        self,
        routes: Iterable[tuple[str, str, Endpoint]],
        basic_challenge: str,
        body_limit: int,
        request_log: RequestLog,
        own_limits: Iterable[str] = ("/api/files/",),
    ) -> None:
        self.table: dict[str, dict[str, Endpoint]] = {}
        # Paths whose last segment is a parameter ("/api/content/files/{sha256}"): by the
        # prefix before it; the endpoint reads the segment from the path itself.
        self.prefixed: dict[str, dict[str, Endpoint]] = {}
        for method, path, endpoint in routes:
            if path.endswith("}"):
                prefix = path[: path.rindex("/") + 1]
                self.prefixed.setdefault(prefix, {})[method] = endpoint
            else:
                self.table.setdefault(path, {})[method] = endpoint
        self.challenge = basic_challenge
        self.limit = body_limit
        self.log = request_log
        # Path prefixes whose endpoint holds its body to its own limit (a collected file may
        # be larger than any report: the upload reads it within the station's file cap).
        self.own_limits = tuple(own_limits)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        logged = self.log.enabled
        started = time.perf_counter() if logged else 0.0
        own = scope["path"].startswith(self.own_limits)
        request = Request(scope, receive if own else limited_receive(receive, self.limit))
        try:
            response = await self._respond(scope, request)
        except Exception as exc:
            response = errors_http.any_error_response(
                exc, scope["method"], scope["path"], self.challenge
            )
        await response(scope, receive, send)
        if logged:
            self.log.write(
                scope["method"], scope["path"], response.status_code, started, self._station(scope)
            )

    @staticmethod
    def _station(scope: Scope) -> int | None:
        """The station the request acted for, as its handler noted it once authenticated
        (none for a refused request): the edge parses no credentials itself."""
        known: int | None = scope.get(STATION_KEY)
        return known

    async def _respond(self, scope: Scope, request: Request) -> Response:
        path: str = scope["path"]
        methods = self.table.get(path)
        if methods is None:
            prefix = path[: path.rfind("/") + 1]
            methods = self.prefixed.get(prefix) if len(path) > len(prefix) else None
        if methods is None:
            raise HTTPException(404)
        method: str = scope["method"]
        endpoint = methods.get("GET" if method == "HEAD" else method)
        if endpoint is None:
            raise HTTPException(405, headers={"Allow": ", ".join(sorted(methods))})
        if not path.startswith(self.own_limits):
            refusal = announced_length_error(scope, self.limit)
            if refusal is not None:
                raise refusal
        return await endpoint(request)
