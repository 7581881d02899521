"""``garrison scans``: scan progress and results the stations reported
(``/admin/v1/scans``)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from garrison.cli import output
from garrison.cli.command import Call, command

app = typer.Typer(help="Scans: list, show.", no_args_is_help=True)

COLUMNS = (
    "id",
    "station",
    "job",
    "progress",
    "scanned",
    "malware",
    "suspicious",
    "seconds",
    "started",
    "completed",
)


def _row(sc: dict[str, Any]) -> list[Any]:
    return [
        sc.get("id"),
        sc.get("station_id"),
        sc.get("job_id"),
        f"{sc.get('progress', 0)}%",
        sc.get("scanned_count"),
        sc.get("malware_count"),
        sc.get("suspicious_count"),
        sc.get("duration_seconds"),
        output.when(sc.get("started_at")),
        output.when(sc.get("completed_at")),
    ]


@command(app, "list")
def list_scans(
    call: Call,
    station: Annotated[int | None, typer.Option(metavar="ID", help="only this station")] = None,
    job: Annotated[int | None, typer.Option(metavar="ID", help="only scans of this job")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    offset: Annotated[int, typer.Option(min=0)] = 0,
) -> None:
    """List scans, newest first (paged: --limit, --offset)."""
    page = call.api.get("/scans", station_id=station, job_id=job, limit=limit, offset=offset)

    def render(data: dict[str, Any]) -> None:
        rows = [_row(sc) for sc in data.get("items", [])]
        caption = output.page_caption(data, "scans")
        output.show(output.table(COLUMNS, rows, caption=caption, no_wrap=("id",)))

    call.emit(page, render)


def _render_scan(sc: dict[str, Any]) -> None:
    output.show(
        output.details(
            [
                ("id", sc.get("id")),
                ("station", sc.get("station_id")),
                ("job", sc.get("job_id")),
                ("progress", f"{sc.get('progress', 0)}%"),
                ("scanned", sc.get("scanned_count")),
                ("malware", sc.get("malware_count")),
                ("suspicious", sc.get("suspicious_count")),
                ("duration", f"{sc.get('duration_seconds', 0)} s"),
                ("started", output.when(sc.get("started_at"))),
                ("updated", output.when(sc.get("updated_at"))),
                ("completed", output.when(sc.get("completed_at"))),
            ],
            title=f"Scan {sc.get('id')}",
        )
    )


@command(app, "show")
def show(call: Call, scan_id: Annotated[int, typer.Argument(metavar="ID", help="scan id")]) -> None:
    """Show one scan."""
    call.emit(call.api.get(f"/scans/{scan_id}"), _render_scan)
