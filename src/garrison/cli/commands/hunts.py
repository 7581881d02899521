"""``garrison hunts``: ask the fleet a question (a file, a process, a collection, a script,
or the telemetry already on the server) and follow the answers."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from garrison.cli import output
from garrison.cli.client import UsageError
from garrison.cli.command import Call, command
from garrison.cli.commands.jobs import parse_priority

app = typer.Typer(
    help="Hunts: create, list, show, stop, results (CSV, NDJSON).", no_args_is_help=True
)
HuntId = Annotated[int, typer.Argument(metavar="ID", help="hunt id")]
QUESTIONS = ("FindFile", "FindProcess", "CollectFile", "RunScript", "SearchEvents", "IocSweep")
COLUMNS = ("id", "question", "target", "state", "targeted", "done", "failed", "found", "expires")


def _question(kind: str, values: dict[str, Any]) -> dict[str, Any]:
    if kind not in QUESTIONS:
        raise UsageError(f"--question must be one of {', '.join(QUESTIONS)}, not {kind!r}")
    question: dict[str, Any] = {"type": kind}
    question.update({k: v for k, v in values.items() if v not in (None, [], "")})
    return question


def _target(everything: bool, group: str | None, label: str | None, os_name: str | None) -> Any:
    given = [
        t
        for t in (
            {"all": True} if everything else None,
            {"group": group} if group else None,
            {"label": label} if label else None,
            {"os": os_name} if os_name else None,
        )
        if t
    ]
    if len(given) != 1:
        raise UsageError("give exactly one target: --all, --group, --label or --os")
    return given[0]


def _progress_text(progress: dict[str, Any]) -> str:
    return output.counts({k: v for k, v in progress.items() if v})


def _row(hunt: dict[str, Any]) -> list[Any]:
    progress = hunt.get("progress") or {}
    return [
        hunt.get("id"),
        (hunt.get("question") or {}).get("type"),
        output.counts(hunt.get("target") or {}),
        hunt.get("state"),
        progress.get("targeted"),
        progress.get("done"),
        progress.get("failed"),
        progress.get("found"),
        output.when(hunt.get("expires_at")),
    ]


def _render(hunt: dict[str, Any]) -> None:
    summary = output.details(
        [
            ("id", hunt.get("id")),
            ("question", hunt.get("question")),
            ("target", hunt.get("target")),
            ("state", hunt.get("state")),
            ("progress", _progress_text(hunt.get("progress") or {})),
            ("created", output.when(hunt.get("created_at"))),
            ("created by", hunt.get("created_by")),
            ("expires", output.when(hunt.get("expires_at"))),
        ],
        title=f"Hunt {hunt.get('id')}",
    )
    rows = [_result_row(r) for r in hunt.get("results") or []]
    output.show(summary, output.table(RESULT_COLUMNS, rows))


RESULT_COLUMNS = ("station", "hostname", "status", "found", "paths", "message")


def _result_row(r: dict[str, Any]) -> list[Any]:
    found = r.get("found")
    return [
        r.get("station_id"),
        r.get("hostname"),
        r.get("status"),
        "?" if found is None else ("yes" if found else "no"),
        "; ".join(r.get("paths") or []),
        r.get("message"),
    ]


def _wait(call: Call, hunt_id: int, seconds: float) -> dict[str, Any]:
    """Poll the hunt, with a progress bar of the stations answered, until every targeted
    station answered or ``seconds`` passed (stations may still come later)."""
    deadline = time.monotonic() + seconds
    hunt: dict[str, Any] = call.api.get(f"/hunts/{hunt_id}")
    with output.progress(f"hunt {hunt_id}") as bar:
        task = bar.add_task(f"hunt {hunt_id}", total=None)
        while True:
            progress = hunt.get("progress") or {}
            answered = int(progress.get("done", 0)) + int(progress.get("failed", 0))
            targeted = int(progress.get("targeted", 0))
            bar.update(task, completed=answered, total=targeted or None)
            if hunt.get("state") != "active" or (targeted and answered >= targeted):
                return hunt
            if time.monotonic() >= deadline:
                return hunt
            time.sleep(1.0)
            hunt = call.api.get(f"/hunts/{hunt_id}")


@command(app, "create")
def create(
    call: Call,
    question: Annotated[str, typer.Option(help=", ".join(QUESTIONS))] = "FindFile",
    sha256: Annotated[str | None, typer.Option(help="FindFile, FindProcess: the hash")] = None,
    glob: Annotated[str | None, typer.Option(help="FindFile: a file name pattern")] = None,
    yara_file: Annotated[
        Path | None, typer.Option(help="FindFile: a file holding a YARA rule")
    ] = None,
    root: Annotated[
        list[str] | None, typer.Option(help="FindFile: a directory to walk (repeatable)")
    ] = None,
    name: Annotated[str | None, typer.Option(help="FindProcess: a process name pattern")] = None,
    cmdline: Annotated[str | None, typer.Option(help="FindProcess: command line text")] = None,
    path: Annotated[str | None, typer.Option(help="CollectFile: the file; SearchEvents")] = None,
    script: Annotated[str | None, typer.Option(help="RunScript: the script's name")] = None,
    script_sha256: Annotated[
        str | None, typer.Option(help="RunScript: its approved version's sha256")
    ] = None,
    arg: Annotated[list[str] | None, typer.Option(help="RunScript: an argument")] = None,
    hashes: Annotated[list[str] | None, typer.Option("--hash", help="IocSweep: a hash")] = None,
    everything: Annotated[bool, typer.Option("--all", help="target every station")] = False,
    group: Annotated[str | None, typer.Option(help="target a group")] = None,
    label: Annotated[str | None, typer.Option(help="target a label (a group)")] = None,
    os_name: Annotated[str | None, typer.Option("--os", help="target an OS name")] = None,
    expires_in: Annotated[int, typer.Option(help="seconds it reaches stations")] = 3600,
    priority: Annotated[str, typer.Option(help="0-3 or low, medium, high, urgent")] = "medium",
    wait: Annotated[
        float, typer.Option(help="then follow it with a progress bar for up to N seconds")
    ] = 0.0,
) -> None:
    """Start a hunt."""
    values: dict[str, Any] = {
        "sha256": script_sha256 if question == "RunScript" else sha256,
        "glob": glob,
        "yara": yara_file.read_text(encoding="utf-8") if yara_file else None,
        "roots": root,
        "name": name,
        "cmdline": cmdline,
        "path": path,
        "script": script,
        "args": arg,
        "hashes": hashes,
    }
    body = {
        "question": _question(question, values),
        "target": _target(everything, group, label, os_name),
        "expires_in": expires_in,
        "priority": parse_priority(priority),
    }
    hunt = call.api.post("/hunts", body)
    if wait > 0:
        hunt = _wait(call, int(hunt["id"]), wait)
    call.emit(hunt, _render)


@command(app, "list")
def list_hunts(
    call: Call,
    state: Annotated[str | None, typer.Option(help="active, stopped or expired")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    offset: Annotated[int, typer.Option(min=0)] = 0,
) -> None:
    """List hunts, newest first, with their progress."""
    page = call.api.get("/hunts", state=state, limit=limit, offset=offset)

    def render(data: dict[str, Any]) -> None:
        caption = output.page_caption(data, "hunts")
        rows = [_row(h) for h in data.get("items", [])]
        output.show(output.table(COLUMNS, rows, caption=caption, no_wrap=("id",)))

    call.emit(page, render)


@command(app, "show")
def show(
    call: Call,
    hunt_id: HuntId,
    found: Annotated[bool | None, typer.Option("--found/--not-found", help="filter")] = None,
    contains: Annotated[str | None, typer.Option(help="a path or sha256 containing")] = None,
    wait: Annotated[float, typer.Option(help="follow it for up to N seconds first")] = 0.0,
) -> None:
    """Show a hunt: progress, each station's answer, the aggregate."""
    if wait > 0:
        _wait(call, hunt_id, wait)
    params = {"found": None if found is None else str(found).lower(), "contains": contains}
    call.emit(call.api.get(f"/hunts/{hunt_id}", **params), _render)


@command(app, "stop")
def stop(call: Call, hunt_id: HuntId) -> None:
    """Stop a hunt: no station gets it any more."""
    call.emit(call.api.post(f"/hunts/{hunt_id}/stop"), _render)


@command(app, "results")
def results(
    call: Call,
    hunt_id: HuntId,
    fmt: Annotated[str, typer.Option("--format", help="csv or ndjson (a file), json")] = "csv",
    out: Annotated[Path | None, typer.Option("--output", "-o", help="write here")] = None,
    found: Annotated[bool | None, typer.Option("--found/--not-found", help="filter")] = None,
) -> None:
    """Export a hunt's per-station results."""
    if fmt not in ("csv", "ndjson", "json"):
        raise UsageError(f"--format must be csv, ndjson or json, not {fmt!r}")
    params = {"format": fmt, "found": None if found is None else str(found).lower()}
    if fmt == "json":
        call.emit(call.api.get(f"/hunts/{hunt_id}/results", **params), _render_rows)
        return
    dest = out or Path(f"hunt-{hunt_id}.{fmt}")
    size = call.api.download(f"/hunts/{hunt_id}/results", dest, None, **params)
    call.emit(
        {"hunt_id": hunt_id, "output": str(dest), "bytes": size, "format": fmt},
        lambda d: output.line(f"{d['output']}: {d['bytes']} bytes"),
    )


def _render_rows(page: dict[str, Any]) -> None:
    output.show(output.table(RESULT_COLUMNS, [_result_row(r) for r in page.get("items", [])]))
