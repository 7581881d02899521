"""Events: search (the admin API's filters: station, type, time, hash, process, path, user,
host, address, port, UniquePIDs), the search's events as an NDJSON download (each line the
admin API's ``EventOut``), and an IOC sweep over hashes."""

from __future__ import annotations

import datetime as dt

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from garrison.common.catalogue import CATALOGUE
from garrison.common.vocabulary import Role
from garrison.server.adminapi import convert
from garrison.server.adminapi import schemas as s
from garrison.server.console import paging, web
from garrison.server.console.web import Form, Who
from garrison.server.errors import GarrisonError, InvalidInputError
from garrison.server.events import service as events

TERMS = ("hash", "process", "path", "user", "host", "ip", "port", "unique_pid")
# The most events one download holds (newest first); a larger set: the admin API's paging.
EXPORT_LIMIT = 10_000


def _time(form: Form, name: str) -> dt.datetime | None:
    raw = form.get(name)
    if not raw:
        return None
    try:
        value = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInputError(f"{name}: not a date and time", field=name) from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _query(request: Request, form: Form) -> events.EventQuery:
    q = request.query_params
    form.values = {k: v[:255] for k, v in q.items()}
    station = q.get("station_id", "")
    return events.EventQuery(
        station_id=int(station) if station.isdigit() and len(station) < 18 else None,
        types=tuple(t for t in q.getlist("type") if t),
        since=_time(form, "since"),
        until=_time(form, "until"),
        **{name: (q.get(name) or None) for name in TERMS},
    )


@web.view(Role.VIEWER)
def events_search(request: Request, who: Who, form: Form) -> Response:
    ctx = web.ctx_of(request)
    q = request.query_params
    offset = paging.offset_of(request)
    rows: list[object] = []
    total = 0
    try:
        query = _query(request, form)
        with ctx.db.reading() as session:
            found, total = events.search(session, query, paging.PAGE_SIZE, offset)
            rows = list(found)
    except GarrisonError as exc:
        web.failed(form, exc)
    return web.render(
        request,
        "events.html",
        who,
        form=form,
        events=rows,
        page=paging.page(request, offset, len(rows), total),
        types=sorted(CATALOGUE),
        chosen=q.getlist("type"),
        sweep=None,
    )


@web.view(Role.VIEWER)
def events_export(request: Request, who: Who, form: Form) -> Response:
    """The search's events, newest first (at most ``EXPORT_LIMIT``), one JSON a line."""
    query = _query(request, form)
    with web.ctx_of(request).db.reading() as session:
        found, _ = events.search(session, query, EXPORT_LIMIT, 0)
        lines = [convert.event(e).model_dump_json() + "\n" for e in found]
    return StreamingResponse(
        iter(lines),
        media_type="application/x-ndjson",
        headers={**web.HEADERS, "Content-Disposition": 'attachment; filename="events.ndjson"'},
    )


@web.view(Role.VIEWER)
def ioc_sweep(request: Request, who: Who, form: Form) -> Response:
    """A read, but a POST (a list of hashes does not fit a URL): it carries the CSRF token."""
    ctx = web.ctx_of(request)
    hashes = form.get("hashes").replace(",", " ").split()
    body = web.validate(s.IocIn, {"hashes": hashes}, form)
    sweep = None
    if body is not None:
        try:
            with ctx.db.reading() as session:
                sweep = events.ioc_sweep(session, body.hashes, body.limit)
        except GarrisonError as exc:
            web.failed(form, exc)
    return web.render(
        request,
        "events.html",
        who,
        status=422 if form.errors else 200,
        form=form,
        events=sweep[0] if sweep else [],
        page=paging.page(request, 0, len(sweep[0]) if sweep else 0, len(sweep[0]) if sweep else 0),
        types=sorted(CATALOGUE),
        chosen=[],
        sweep=sweep,
    )
