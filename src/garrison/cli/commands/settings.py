"""``garrison settings`` (run-time settings) and ``garrison audit`` (who did what)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from garrison.cli import output
from garrison.cli.client import UsageError
from garrison.cli.command import Call, command
from garrison.cli.commands.jobs import parse_pair

settings_app = typer.Typer(help="Run-time settings: show, set.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log of administrative actions.", no_args_is_help=True)


def _render_settings(data: dict[str, Any]) -> None:
    rows = [[key, value] for key, value in sorted(data.items())]
    output.show(output.table(("setting", "value"), rows))


@command(settings_app, "show")
def show(call: Call) -> None:
    """Show the run-time settings."""
    call.emit(call.api.get("/settings"), _render_settings)


@command(settings_app, "set")
def set_settings(
    call: Call,
    pairs: Annotated[
        list[str], typer.Argument(metavar="KEY=VALUE...", help="e.g. getjobs_limit=20")
    ],
) -> None:
    """Change run-time settings; prints them all afterwards."""
    changes = dict(parse_pair(p, "a setting") for p in pairs)
    if not changes:
        raise UsageError("give at least one KEY=VALUE")
    call.emit(call.api.patch("/settings", changes), _render_settings)


@command(audit_app, "list")
def list_audit(
    call: Call,
    user: Annotated[str | None, typer.Option(help="only this user's actions")] = None,
    action: Annotated[
        str | None, typer.Option(help="e.g. job.create, or job for every job.* action")
    ] = None,
    since: Annotated[str | None, typer.Option(metavar="TIME", help="ISO 8601, UTC")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    offset: Annotated[int, typer.Option(min=0)] = 0,
) -> None:
    """List audit entries, newest first."""
    entries = call.api.get(
        "/audit", user=user, action=action, since=since, limit=limit, offset=offset
    )

    def render(data: list[dict[str, Any]]) -> None:
        rows = [
            [
                e.get("id"),
                output.when(e.get("at")),
                e.get("actor"),
                e.get("action"),
                e.get("target"),
                e.get("details") or "",
                e.get("address"),
            ]
            for e in data
        ]
        columns = ("id", "at", "actor", "action", "target", "details", "address")
        output.show(output.table(columns, rows, caption=f"{len(data)} entries", no_wrap=("id",)))

    call.emit(entries, render)
