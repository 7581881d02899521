"""The pieces of the check-in hot path (a cached token, nothing queued, no long-poll) that
skip Starlette's general machinery: the agent's short query string read without building a
multi-dict, and the one fixed answer sent as two pre-built ASGI messages.  Profiles of the
check-in put Starlette's query parsing and per-response header building at about a sixth of
the server's time (bench/findings.md)."""

from __future__ import annotations

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

# Where the hot path leaves the station it resolved, so the request log (agentapi/edge.py)
# need not parse and hash the token a second time.
STATION_KEY = "garrison.station_id"


def agent_query(query_string: bytes) -> tuple[list[str], bool] | None:
    """``(agent_id values, whether a wait is asked)`` for a query with nothing escaped; None
    when a value is percent- or plus-encoded, so the caller uses the full parser."""
    if b"%" in query_string or b"+" in query_string:
        return None
    ids: list[str] = []
    wait = False
    for part in query_string.split(b"&"):
        key, _, value = part.partition(b"=")
        if key == b"agent_id":
            ids.append(value.decode("latin-1"))
        elif key == b"wait":
            wait = True
    return ids, wait


class FixedResponse(Response):
    """A response built once and sent many times.  Each send gets its own message dicts
    and header list, so nothing downstream can change the next answer."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": self.status_code,
                "headers": list(self.raw_headers),
            }
        )
        await send({"type": "http.response.body", "body": self.body})
