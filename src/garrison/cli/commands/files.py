"""``garrison files``: the files agents collected (GetFile jobs, CollectFile hunts, samples)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from garrison.cli import output
from garrison.cli.command import Call, command

app = typer.Typer(
    help="Collected files: list, get (as a password-protected zip).", no_args_is_help=True
)

COLUMNS = ("sha256", "size", "station", "job", "path", "uploaded")


@command(app, "list")
def list_files(
    call: Call,
    station: Annotated[int | None, typer.Option(metavar="ID", help="only this station's")] = None,
    job: Annotated[int | None, typer.Option(metavar="ID", help="only this job's")] = None,
    sha256: Annotated[str | None, typer.Option(help="only this file")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    offset: Annotated[int, typer.Option(min=0)] = 0,
) -> None:
    """List collected files, newest upload first, with station, job, size and time."""
    page = call.api.get(
        "/files", station_id=station, job_id=job, sha256=sha256, limit=limit, offset=offset
    )

    def render(data: dict[str, Any]) -> None:
        rows = [
            [
                f.get("sha256"),
                f.get("size"),
                f.get("station_id"),
                f.get("job_id") or (f"alert {f['alert_uid']}" if f.get("alert_uid") else ""),
                f.get("path"),
                output.when(f.get("created_at")),
            ]
            for f in data.get("items", [])
        ]
        caption = output.page_caption(data, "uploads")
        output.show(output.table(COLUMNS, rows, caption=caption, no_wrap=("sha256",)))

    call.emit(page, render)


@command(app, "get")
def get_file(
    call: Call,
    sha256: Annotated[str, typer.Argument(help="the file's SHA-256")],
    out: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="where to write the zip (default <sha256>.zip)"),
    ] = None,
) -> None:
    """Download a collected file as a zip encrypted with the password 'infected'
    (7z x -pinfected FILE.zip opens it)."""
    dest = out or Path(f"{sha256.lower()}.zip")
    with output.progress(f"{sha256[:12]}…", transfer=True) as bar:
        task = bar.add_task(f"{sha256[:12]}…", total=None)

        def moved(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        size = call.api.download(f"/files/{sha256}", dest, moved)
    call.emit(
        {"sha256": sha256.lower(), "output": str(dest), "bytes": size, "password": "infected"},
        lambda d: output.line(f"{d['output']}: {d['bytes']} bytes, zip password 'infected'"),
    )
