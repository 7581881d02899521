"""``garrison alerts``: threats the stations reported."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from garrison.cli import output
from garrison.cli.client import UsageError
from garrison.cli.command import Call, command

app = typer.Typer(help="Alerts: list, show, acknowledge, assign, comment.", no_args_is_help=True)

COLUMNS = (
    "id",
    "station",
    "threat",
    "file",
    "action",
    "module",
    "detected",
    "acknowledged",
    "assigned",
)


def _row(a: dict[str, Any]) -> list[Any]:
    acked = a.get("acknowledged_at")
    return [
        a.get("id"),
        a.get("station_id"),
        a.get("threat_name"),
        a.get("filepath"),
        a.get("action"),
        a.get("module_name"),
        output.when(a.get("detection_time")),
        f"{output.when(acked)} by {a.get('acknowledged_by')}" if acked else "no",
        a.get("assigned_to") or "",
    ]


@command(app, "list")
def list_alerts(
    call: Call,
    station: Annotated[int | None, typer.Option(metavar="ID", help="only this station")] = None,
    threat: Annotated[str | None, typer.Option(help="threat name contains this")] = None,
    acknowledged: Annotated[
        bool | None,
        typer.Option(
            "--acknowledged/--unacknowledged", help="only acknowledged / unacknowledged alerts"
        ),
    ] = None,
    job: Annotated[int | None, typer.Option(metavar="ID", help="only alerts of this job")] = None,
    assigned_to: Annotated[
        str | None,
        typer.Option(metavar="USER", help="only alerts assigned to this user ('' = unassigned)"),
    ] = None,
    since: Annotated[
        str | None, typer.Option(metavar="TIME", help="detected at or after (ISO 8601, UTC)")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    offset: Annotated[int, typer.Option(min=0)] = 0,
) -> None:
    """List alerts, newest first."""
    page = call.api.get(
        "/alerts",
        station_id=station,
        threat=threat,
        acknowledged=acknowledged,
        job_id=job,
        assigned_to=assigned_to,
        since=since,
        limit=limit,
        offset=offset,
    )

    def render(data: dict[str, Any]) -> None:
        rows = [_row(a) for a in data.get("items", [])]
        caption = output.page_caption(data, "alerts")
        output.show(output.table(COLUMNS, rows, caption=caption, no_wrap=("id",)))

    call.emit(page, render)


@command(app, "ack")
def ack(
    call: Call,
    alert_ids: Annotated[list[int], typer.Argument(metavar="ID...", help="alert ids")],
) -> None:
    """Acknowledge alerts."""

    def render(data: list[dict[str, Any]]) -> None:
        output.line(f"{len(data)} alert(s) acknowledged")

    call.emit(call.api.post("/alerts/acknowledge", {"alert_ids": alert_ids}), render)


@command(app, "show")
def show(
    call: Call, alert_id: Annotated[int, typer.Argument(metavar="ID", help="alert id")]
) -> None:
    """One alert with its comments."""

    def render(data: dict[str, Any]) -> None:
        output.show(output.table(COLUMNS, [_row(data)], no_wrap=("id",)))
        for note in data.get("comments", []):
            output.line(f"{output.when(note.get('created_at'))} {note.get('author')}:")
            output.line(f"  {note.get('body')}")

    call.emit(call.api.get(f"/alerts/{alert_id}"), render)


@command(app, "assign")
def assign(
    call: Call,
    alert_ids: Annotated[list[int], typer.Argument(metavar="ID...", help="alert ids")],
    to: Annotated[
        str | None, typer.Option("--to", metavar="USER", help="the user to assign them to")
    ] = None,
    unassign: Annotated[bool, typer.Option("--unassign", help="assign them to nobody")] = False,
) -> None:
    """Assign alerts to a user (--to USER), or unassign them (--unassign)."""
    if (to is None) == (not unassign):
        raise UsageError("give exactly one of --to USER or --unassign")

    def render(data: list[dict[str, Any]]) -> None:
        output.line(f"{len(data)} alert(s) " + (f"assigned to {to}" if to else "unassigned"))

    body = {"alert_ids": alert_ids, "assignee": to}
    call.emit(call.api.post("/alerts/assign", body), render)


@command(app, "comment")
def comment(
    call: Call,
    alert_id: Annotated[int, typer.Argument(metavar="ID", help="alert id")],
    text: Annotated[str, typer.Argument(metavar="TEXT", help="the comment")],
) -> None:
    """Add a comment to an alert."""

    def render(data: dict[str, Any]) -> None:
        output.line(f"comment {data.get('id')} added to alert {alert_id}")

    call.emit(call.api.post(f"/alerts/{alert_id}/comments", {"body": text}), render)
