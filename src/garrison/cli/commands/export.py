"""``garrison export``: SIEM, file and webhook export targets (``/admin/v1/export-targets``)."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any

import typer

from garrison.cli import output
from garrison.cli.client import UsageError
from garrison.cli.command import Call, command, confirm

app = typer.Typer(
    help="Export targets (SIEM over syslog, NDJSON file, HTTP webhook): list, show, create, "
    "set, delete, test.",
    no_args_is_help=True,
)

TargetId = Annotated[int, typer.Argument(metavar="ID", help="export target id")]
Options = Annotated[
    list[str] | None,
    typer.Option(
        "--option",
        metavar="KEY=VALUE",
        help="a target option (repeatable), e.g. envelope=rfc3164, min_severity=Warning, "
        'event_types=["threat"]; values that read as JSON are sent as such',
    ),
]
COLUMNS = ("id", "name", "format", "transport", "destination", "enabled", "lag", "updated")


class StartAt(StrEnum):
    now = "now"
    beginning = "beginning"


def _not_a_constant(name: str) -> Any:
    # NaN and Infinity read as JSON in Python, but no JSON body may carry them: keep the text.
    raise ValueError(name)


def parse_option(text: str) -> tuple[str, Any]:
    """``key=value``; a value that reads as JSON (``2``, ``true``, ``["a"]``) is sent as such,
    anything else as the string it is."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"--option wants key=value, not {text!r}")
    try:
        value: Any = json.loads(raw, parse_constant=_not_a_constant)
    except ValueError:
        value = raw
    return key.strip(), value


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    return dict(parse_option(p) for p in pairs or [])


def destination(t: dict[str, Any]) -> str:
    """Where the target sends: the syslog receiver's ``host:port``, the file's path or the
    webhook's URL (whichever the target has, whatever its transport is called)."""
    host = str(t.get("host") or "")
    if host:
        return f"[{host}]:{t.get('port')}" if ":" in host else f"{host}:{t.get('port')}"
    return str(t.get("path") or t.get("url") or "")


def _row(t: dict[str, Any]) -> list[Any]:
    return [
        t.get("id"),
        t.get("name"),
        t.get("format"),
        t.get("transport"),
        destination(t),
        t.get("enabled"),
        t.get("lag"),
        output.when(t.get("updated_at")),
    ]


def _render_target(t: dict[str, Any]) -> None:
    summary = output.details(
        [
            ("id", t.get("id")),
            ("name", t.get("name")),
            ("format", t.get("format")),
            ("transport", t.get("transport")),
            ("destination", destination(t)),
            ("enabled", t.get("enabled")),
            ("position", t.get("position")),
            ("lag", t.get("lag")),
            ("created", output.when(t.get("created_at"))),
            ("updated", output.when(t.get("updated_at"))),
        ],
        title=f"Export target {t.get('id')}",
    )
    options = t.get("options") or {}
    rows = [[key, options[key]] for key in sorted(options)]
    output.show(summary, output.table(("option", "value"), rows))


def _check_destination(
    host: str | None, port: int | None, path: str | None, url: str | None
) -> None:
    given = [
        name
        for name, present in (
            ("--host/--port", host is not None or port is not None),
            ("--path", path is not None),
            ("--url", url is not None),
        )
        if present
    ]
    if len(given) > 1:
        raise UsageError(f"give only one destination: {' or '.join(given)}, not several")


Host = Annotated[str | None, typer.Option(help="syslog transports: the receiver's host")]
Port = Annotated[
    int | None, typer.Option(min=1, max=65535, help="syslog transports: the receiver's port")
]
FilePath = Annotated[str | None, typer.Option(help="file: the NDJSON file (rotated)")]
Url = Annotated[str | None, typer.Option(help="http: the webhook's http(s):// URL")]


@command(app, "list")
def list_targets(call: Call) -> None:
    """List export targets, with how many events each has yet to send (lag)."""

    def render(data: list[dict[str, Any]]) -> None:
        caption = f"{len(data)} target(s)" if data else "no export targets"
        rows = [_row(t) for t in data]
        output.show(output.table(COLUMNS, rows, caption=caption, no_wrap=("id",)))

    call.emit(call.api.get("/export-targets"), render)


@command(app, "show")
def show(call: Call, target_id: TargetId) -> None:
    """Show an export target and all its options."""
    call.emit(call.api.get(f"/export-targets/{target_id}"), _render_target)


@command(app, "create")
def create(
    call: Call,
    name: Annotated[str, typer.Argument(metavar="NAME", help="a unique name for the target")],
    format_: Annotated[
        str, typer.Option("--format", metavar="FORMAT", help="eset-json, leef, leef2 or cef")
    ],
    transport: Annotated[
        str,
        typer.Option(metavar="TRANSPORT", help="udp, tcp, tls, relp (syslog), file or http"),
    ],
    host: Host = None,
    port: Port = None,
    path: FilePath = None,
    url: Url = None,
    options: Options = None,
    start_at: Annotated[
        StartAt,
        typer.Option(help="send events from now on, or the whole stored event log"),
    ] = StartAt.now,
    disabled: Annotated[
        bool, typer.Option("--disabled", help="create it disabled (nothing is sent)")
    ] = False,
) -> None:
    """Create an export target (the server checks the format, transport and options)."""
    _check_destination(host, port, path, url)
    body: dict[str, Any] = {
        "name": name,
        "format": format_,
        "transport": transport,
        "options": parse_options(options),
        "start_at": start_at.value,
        "enabled": not disabled,
    }
    for key, value in (("host", host), ("port", port), ("path", path), ("url", url)):
        if value is not None:
            body[key] = value
    call.emit(call.api.post("/export-targets", body), _render_target)


@command(app, "set")
def set_target(
    call: Call,
    target_id: TargetId,
    options: Options = None,
    enabled: Annotated[
        bool | None, typer.Option("--enable/--disable", help="start / stop sending")
    ] = None,
    name: Annotated[str | None, typer.Option(help="a new name")] = None,
    format_: Annotated[
        str | None, typer.Option("--format", metavar="FORMAT", help="eset-json, leef, leef2, cef")
    ] = None,
    transport: Annotated[
        str | None, typer.Option(metavar="TRANSPORT", help="udp, tcp, tls, relp, file or http")
    ] = None,
    host: Host = None,
    port: Port = None,
    path: FilePath = None,
    url: Url = None,
) -> None:
    """Change an export target: the options given are merged into its options."""
    changes: dict[str, Any] = {
        key: value
        for key, value in (
            ("name", name),
            ("format", format_),
            ("transport", transport),
            ("host", host),
            ("port", port),
            ("path", path),
            ("url", url),
            ("enabled", enabled),
        )
        if value is not None
    }
    if options:
        changes["options"] = parse_options(options)
    if not changes:
        raise UsageError("nothing to change: give --option KEY=VALUE, --enable or --disable")
    call.emit(call.api.patch(f"/export-targets/{target_id}", changes), _render_target)


@command(app, "delete")
def delete(
    call: Call,
    target_id: TargetId,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Delete an export target (and its place in the event log)."""
    confirm(f"Delete export target {target_id}?", yes)
    call.api.delete(f"/export-targets/{target_id}")
    call.emit(
        {"id": target_id, "deleted": True},
        lambda _: output.line(f"export target {target_id} deleted"),
    )


@command(app, "test")
def send_test(call: Call, target_id: TargetId) -> None:
    """Send one test event to the target now; exits 1 with the reason if it was not delivered."""
    result = call.api.post(f"/export-targets/{target_id}/test")

    def render(data: dict[str, Any]) -> None:
        output.line(f"export target {target_id}: test event sent")
        output.line(str(data.get("message") or "").rstrip("\r\n"))

    call.emit(result, render)
