"""The ASGI edge of the agent API: ``/api/*`` served from a table of exact paths.

Every agent calls ``/api/jobs`` every minute, so its requests skip FastAPI's per-request
stack and Starlette's routing (exception and exit-stack middleware, route regexes, the
wrappers that track whether a response started): the profiles in ``bench/findings.md``
measured that stack as the largest cost left in a check-in.  A handler returns its whole
response, so an error can always still be answered, with the same JSON bodies the admin API
uses (``errors_http``).
"""

from __future__ import annotations

from collections.abc import Iterable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from garrison.server import errors_http
from garrison.server.agentapi.routes import Endpoint
from garrison.server.middleware import announced_length_error, limited_receive


class AgentEdge:
    """The agent API's routes, body limit and JSON error answers, and nothing else."""

    def __init__(
        self,
        routes: Iterable[tuple[str, str, Endpoint]],
        basic_challenge: str,
        body_limit: int,
    ) -> None:
        self.table: dict[str, dict[str, Endpoint]] = {}
        for method, path, endpoint in routes:
            self.table.setdefault(path, {})[method] = endpoint
        self.challenge = basic_challenge
        self.limit = body_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, limited_receive(receive, self.limit))
        try:
            response = await self._respond(scope, request)
        except Exception as exc:
            response = errors_http.any_error_response(
                exc, scope["method"], scope["path"], self.challenge
            )
        await response(scope, receive, send)

    async def _respond(self, scope: Scope, request: Request) -> Response:
        methods = self.table.get(scope["path"])
        if methods is None:
            raise HTTPException(404)
        method: str = scope["method"]
        endpoint = methods.get("GET" if method == "HEAD" else method)
        if endpoint is None:
            raise HTTPException(405, headers={"Allow": ", ".join(sorted(methods))})
        refusal = announced_length_error(scope, self.limit)
        if refusal is not None:
            raise refusal
        return await endpoint(request)
