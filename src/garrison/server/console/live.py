"""``/live``: the console's server-sent events.  Driven by the database, not by this
node's memory: every change the console shows (an enrolled or returning station, an alert,
a job's result) is in the event log, so each stream polls the log's position and tells the
page which topics moved.  A page open on one node sees what an agent did on another."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from garrison.common.vocabulary import Role
from garrison.server.console import web
from garrison.server.console.web import Form, Who
from garrison.server.context import ServerContext
from garrison.server.errors import GarrisonError
from garrison.server.events import service as events
from garrison.server.users import sessions

# A stream ends after this long and the browser reconnects (EventSource does, after
# ``RETRY_MS``): the session is checked again, and no stream outlives a node's restart.
STREAM_SECONDS = 55.0
RETRY_MS = 1000
SCAN_LIMIT = 1000
TOPICS = {
    "stations": (
        "station_created",
        "station_deleted",
        "station_connected",
        "CONNECTED",
        "DISCONNECTED",
        "STARTING_UP",
        "SHUTTING_DOWN",
        "station_status",
        "station_authorization_failed",
        "agent_deinstalled",
        "components_list_received",
        "virus_bases_received",
        "sensor_health",
        "station_geolocation_changed",
    ),
    "alerts": ("threat_detected", "detection", "threat", "edr_alarm", "file_blocked"),
    "jobs": (
        "task_executed",
        "component_completed",
        "station_scan_statistics",
        "station_scan_error",
        "SEGREGATE_NETWORK",
        "SELF_TEST",
    ),
}
_TOPIC_OF = {t: topic for topic, types in TOPICS.items() for t in types}


def topics_of(types: set[str]) -> list[str]:
    """What changed, for the page: each known topic, and ``events`` for any event."""
    found = {_TOPIC_OF[t] for t in types if t in _TOPIC_OF}
    return sorted(found) + (["events"] if types else [])


def _message(event: str, data: object) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


async def _stream(request: Request, ctx: ServerContext) -> AsyncIterator[bytes]:
    interval = ctx.settings.console_live_seconds
    token = request.cookies.get(web.COOKIE, "")
    position = await run_in_threadpool(_position, ctx)
    yield f"retry: {RETRY_MS}\n\n".encode()
    yield _message("hello", {"position": position})
    ends = time.monotonic() + STREAM_SECONDS
    while time.monotonic() < ends and not ctx.job_waiters.closing:
        await asyncio.sleep(interval)
        if await request.is_disconnected():
            return
        try:
            position, types = await run_in_threadpool(_changes, ctx, position, token)
        except GarrisonError as exc:
            # Logged out, expired, or the user changed: the page goes to the login page.
            yield _message("ended", {"message": exc.message})
            return
        if types:
            yield _message("changed", {"position": position, "topics": topics_of(types)})


def _position(ctx: ServerContext) -> int:
    with ctx.db.reading() as session:
        return events.last_position(session)


def _changes(ctx: ServerContext, position: int, token: str) -> tuple[int, set[str]]:
    with ctx.db.reading() as session:
        sessions.resolve(session, token, ctx.settings.console_idle_seconds)
        return events.types_after(session, position, SCAN_LIMIT)


@web.view(Role.VIEWER, touch=False)
def live(request: Request, who: Who, form: Form) -> Response:
    ctx = web.ctx_of(request)
    return StreamingResponse(
        _stream(request, ctx),
        media_type="text/event-stream",
        headers={**web.HEADERS, "X-Accel-Buffering": "no"},
    )
