"""``garrison events``: the event log (``/admin/v1/events``): search, IOC sweep, the
catalogue of event types and how long each type is kept."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from garrison.cli import output
from garrison.cli.client import UsageError
from garrison.cli.command import Call, command
from garrison.cli.commands.procedures import read_text

app = typer.Typer(help="Events: search, ioc, types, retention.", no_args_is_help=True)
retention_app = typer.Typer(help="Days each event type is kept: show, set.", no_args_is_help=True)
app.add_typer(retention_app, name="retention")

# "time" is the event's own (the station's clock), "received" the server's at receipt.
COLUMNS = ("seq", "time", "received", "type", "station", "severity", "data")


def _data(data: Any) -> str:
    """``{"login": "x", "id": 3}`` as ``login=x id=3``: one line per event."""
    if not isinstance(data, dict):
        return "" if data is None else str(data)
    return " ".join(f"{key}={value}" for key, value in data.items() if value not in (None, ""))


def _row(e: dict[str, Any]) -> list[Any]:
    return [
        e.get("seq"),
        output.when(e.get("time")),
        output.when(e.get("received_at")),
        e.get("type"),
        e.get("station_id"),
        e.get("severity"),
        _data(e.get("data")),
    ]


def _events_table(items: list[dict[str, Any]], caption: str) -> None:
    rows = [_row(e) for e in items]
    output.show(output.table(COLUMNS, rows, caption=caption, no_wrap=("seq", "type")))


@command(app, "search")
def search(
    call: Call,
    station: Annotated[int | None, typer.Option(metavar="ID", help="only this station")] = None,
    types: Annotated[
        list[str] | None,
        typer.Option("--type", metavar="TYPE", help="only this event type (repeatable)"),
    ] = None,
    since: Annotated[
        str | None, typer.Option(metavar="TIME", help="at or after (ISO 8601, UTC)")
    ] = None,
    until: Annotated[
        str | None, typer.Option(metavar="TIME", help="before (ISO 8601, UTC)")
    ] = None,
    hash_: Annotated[
        str | None, typer.Option("--hash", help="an MD5, SHA-1 or SHA-256 digest")
    ] = None,
    process: Annotated[
        str | None, typer.Option(help="a process path or its file name (exact, any case)")
    ] = None,
    path: Annotated[
        str | None, typer.Option(help="a file path or its file name (exact, any case)")
    ] = None,
    user: Annotated[str | None, typer.Option(help="a user name (exact, any case)")] = None,
    host: Annotated[str | None, typer.Option(help="a host name (exact, any case)")] = None,
    ip: Annotated[str | None, typer.Option(help="an IP address (exact)")] = None,
    port: Annotated[int | None, typer.Option(help="a port number (listening-port events)")] = None,
    unique_pid: Annotated[
        str | None, typer.Option(metavar="UPID", help="a process's UniquePID (exact)")
    ] = None,
    parent_unique_pid: Annotated[
        str | None, typer.Option(metavar="UPID", help="the parent's UniquePID (exact)")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    offset: Annotated[int, typer.Option(min=0)] = 0,
) -> None:
    """Search events, newest first (paged: --limit, --offset)."""
    # Api.get's own "path" parameter would swallow the query's path: pass them as params.
    query = {
        "station_id": station,
        "type": types or None,
        "since": since,
        "until": until,
        "hash": hash_,
        "process": process,
        "path": path,
        "user": user,
        "host": host,
        "ip": ip,
        "port": port,
        "unique_pid": unique_pid,
        "parent_unique_pid": parent_unique_pid,
        "limit": limit,
        "offset": offset,
    }
    page = call.api.request("GET", "/events", params=query)
    call.emit(
        page, lambda data: _events_table(data.get("items", []), output.page_caption(data, "events"))
    )


def _hashes_from(name: str) -> list[str]:
    """One hash a line; blank lines and ``#`` comments are skipped."""
    hashes = []
    for raw in read_text(name, "hash file").splitlines():
        text = raw.split("#", 1)[0].strip()
        if text:
            hashes.append(text)
    return hashes


@command(app, "ioc")
def ioc(
    call: Call,
    hashes: Annotated[
        list[str] | None,
        typer.Argument(metavar="HASH...", help="MD5, SHA-1 or SHA-256 digests"),
    ] = None,
    hash_file: Annotated[
        str | None,
        typer.Option("--file", metavar="FILE", help="more hashes, one a line; - reads stdin"),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="at most this many events")] = 1000,
) -> None:
    """IOC sweep: the events and stations that saw any of these hashes."""
    wanted = list(hashes or [])
    if hash_file is not None:
        wanted += _hashes_from(hash_file)
    if not wanted:
        raise UsageError("give at least one HASH or a --file of hashes")
    result = call.api.post("/events/ioc-sweep", {"hashes": wanted, "limit": limit})

    def render(data: dict[str, Any]) -> None:
        items = data.get("events") or []
        stations = data.get("station_ids") or []
        caption = f"{len(items)} event(s)" if items else "no events"
        _events_table(items, caption)
        listed = ", ".join(str(s) for s in stations) or "none"
        output.line(f"{len(stations)} station(s) saw these hashes: {listed}")

    call.emit(result, render)


@command(app, "types")
def types_(call: Call) -> None:
    """The event catalogue: every type, its origin, severity and procedure."""

    def render(data: list[dict[str, Any]]) -> None:
        rows = [
            [
                t.get("name"),
                t.get("origin"),
                t.get("severity"),
                t.get("procedure"),
                t.get("telemetry"),
                t.get("eset_type"),
                len(t.get("fields") or []),
            ]
            for t in data
        ]
        columns = ("type", "origin", "severity", "procedure", "telemetry", "eset", "fields")
        caption = f"{len(data)} event type(s)"
        output.show(output.table(columns, rows, caption=caption, no_wrap=("type", "procedure")))

    call.emit(call.api.get("/events/types"), render)


def _render_retention(data: dict[str, Any]) -> None:
    rows = [[name, days] for name, days in sorted(data.items())]
    output.show(output.table(("type", "days"), rows, no_wrap=("type",)))


def parse_days(text: str) -> tuple[str, int]:
    """``TYPE=DAYS`` with a whole number of days."""
    name, sep, raw = text.partition("=")
    name, raw = name.strip(), raw.strip()
    if not sep or not name:
        raise UsageError(f"retention wants TYPE=DAYS, not {text!r}")
    if not (raw.isascii() and raw.isdigit()):
        raise UsageError(f"{name}: days must be a whole number, not {raw!r}")
    return name, int(raw)


@command(retention_app, "show")
def retention_show(call: Call) -> None:
    """Show how many days each event type is kept."""
    call.emit(call.api.get("/events/retention"), _render_retention)


@command(retention_app, "set")
def retention_set(
    call: Call,
    pairs: Annotated[
        list[str], typer.Argument(metavar="TYPE=DAYS...", help="e.g. process_started=7")
    ],
) -> None:
    """Change how long event types are kept; prints every type afterwards."""
    changes = dict(parse_days(p) for p in pairs)
    if not changes:
        raise UsageError("give at least one TYPE=DAYS")
    call.emit(call.api.patch("/events/retention", changes), _render_retention)
