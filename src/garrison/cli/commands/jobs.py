"""``garrison jobs``: send work to stations and follow it."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from garrison.cli import output
from garrison.cli.client import UsageError
from garrison.cli.command import Call, command
from garrison.common.vocabulary import JobPriority, JobStatus, JobType, spoken

app = typer.Typer(help="Jobs: create, list, show, cancel.", no_args_is_help=True)

JobId = Annotated[int, typer.Argument(metavar="ID", help="job id")]


_BY_LABEL = {p.label: p for p in JobPriority}
_LABELS = ", ".join(_BY_LABEL)


def parse_priority(text: str) -> int:
    """``0``-``3`` or ``low``, ``medium``, ``high``, ``urgent``."""
    value = text.strip().lower()
    if value in _BY_LABEL:
        return _BY_LABEL[value].value
    if value.isdigit() and int(value) <= max(JobPriority):
        return int(value)
    raise UsageError(f"--priority must be 0-3 or one of {_LABELS}, not {text!r}")


def parse_pair(text: str, option: str) -> tuple[str, Any]:
    """``key=value``; a value that reads as JSON (``2``, ``true``, ``[1]``) is sent as such."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"{option} wants key=value, not {text!r}")
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    return key.strip(), value


def priority_name(value: Any) -> str:
    if isinstance(value, int) and min(JobPriority) <= value <= max(JobPriority):
        return JobPriority(value).label
    return str(value)


def _summary(job: dict[str, Any]) -> str:
    params = job.get("params") or {}
    return str(params.get("path") or "") or output.counts(
        {k: v for k, v in params.items() if isinstance(v, (str, int))}
    )


def _row(job: dict[str, Any]) -> list[Any]:
    counts = job.get("status_counts") or {}
    return [
        job.get("id"),
        job.get("type"),
        priority_name(job.get("priority")),
        _summary(job),
        sum(n for n in counts.values() if isinstance(n, int)),
        output.counts(counts),
        output.when(job.get("created_at")),
        job.get("created_by"),
    ]


COLUMNS = ("id", "type", "priority", "target", "stations", "status", "created", "by")


def _result_summary(result: Any) -> str:
    """A live-response result in a cell: a file's sha256, or how many items (--json has all)."""
    if not isinstance(result, dict):
        return ""
    parts = [] if not result.get("partial") else ["PARTIAL"]
    if isinstance(result.get("sha256"), str):
        parts.append(f"sha256 {result['sha256']}")
    for key, value in result.items():
        if isinstance(value, list):
            parts.append(f"{len(value)} {key}")
    if result.get("truncated"):
        parts.append("truncated")
    if "exit_code" in result:
        parts.append(f"exit {result['exit_code']}")
    return ", ".join(parts)


def _render_job(job: dict[str, Any]) -> None:
    summary = output.details(
        [
            ("id", job.get("id")),
            ("type", job.get("type")),
            ("priority", priority_name(job.get("priority"))),
            ("params", job.get("params")),
            ("status", output.counts(job.get("status_counts") or {})),
            ("created", output.when(job.get("created_at"))),
            ("created by", job.get("created_by")),
        ],
        title=f"Job {job.get('id')}",
    )
    targets = [
        [
            t.get("station_id"),
            t.get("status"),
            output.when(t.get("downloaded_at")),
            output.when(t.get("start_time")),
            output.when(t.get("end_time")),
            t.get("code"),
            t.get("message"),
            _result_summary(t.get("result")),
        ]
        for t in job.get("targets") or []
    ]
    columns = ("station", "status", "downloaded", "started", "ended", "code", "message", "result")
    output.show(summary, output.table(columns, targets))


@command(app, "create")
def create(
    call: Call,
    job_type: Annotated[
        str,
        typer.Option(
            "--type",
            help=spoken(JobType),
        ),
    ] = "Scan",
    stations: Annotated[
        list[int] | None,
        typer.Option("--station", metavar="ID", help="a target station (repeatable)"),
    ] = None,
    group: Annotated[str | None, typer.Option(help="also target every station of a group")] = None,
    priority: Annotated[str, typer.Option(help=f"0-3 or {_LABELS}")] = JobPriority.MEDIUM.label,
    path: Annotated[
        str | None, typer.Option(help="Scan: the path to scan; GetFile, DeleteFile…: the file")
    ] = None,
    options: Annotated[str | None, typer.Option(help="Scan: scanner options")] = None,
    name: Annotated[str | None, typer.Option(help="Scan: a name for the scan")] = None,
    pid: Annotated[int | None, typer.Option(help="KillProcess: the process id")] = None,
    tree: Annotated[
        bool | None, typer.Option("--tree/--no-tree", help="KillProcess: its descendants too")
    ] = None,
    sha256: Annotated[
        str | None, typer.Option(help="KillProcess: by image hash; RunScript: the version")
    ] = None,
    item: Annotated[
        str | None, typer.Option("--id", help="RestoreQuarantined: the quarantine item id")
    ] = None,
    script: Annotated[str | None, typer.Option(help="RunScript: the script's name")] = None,
    args: Annotated[
        list[str] | None, typer.Option("--arg", help="RunScript: an argument (repeatable)")
    ] = None,
    timeout: Annotated[int | None, typer.Option(help="RunScript: seconds")] = None,
    params: Annotated[
        list[str] | None,
        typer.Option("--param", metavar="KEY=VALUE", help="any job parameter (repeatable)"),
    ] = None,
) -> None:
    """Create a job for stations and/or a group."""
    if not stations and not group:
        raise UsageError("give at least one --station ID or a --group NAME")
    body_params: dict[str, Any] = dict(parse_pair(p, "--param") for p in params or [])
    for key, value in (
        ("path", path),
        ("options", options),
        ("name", name),
        ("pid", pid),
        ("tree", tree),
        ("sha256", sha256),
        ("id", item),
        ("script", script),
        ("args", args),
        ("timeout", timeout),
    ):
        if value is not None:
            body_params[key] = value
    body: dict[str, Any] = {
        "type": job_type,
        "station_ids": stations or [],
        "priority": parse_priority(priority),
        "params": body_params,
    }
    if group:
        body["group"] = group
    call.emit(call.api.post("/jobs", body), _render_job)


@command(app, "list")
def list_jobs(
    call: Call,
    station: Annotated[
        int | None, typer.Option(metavar="ID", help="only jobs for this station")
    ] = None,
    status: Annotated[
        str | None,
        typer.Option(help=spoken(JobStatus)),
    ] = None,
    job_type: Annotated[str | None, typer.Option("--type", help="only this job type")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    offset: Annotated[int, typer.Option(min=0)] = 0,
) -> None:
    """List jobs, newest first, with how many stations are at each status."""
    page = call.api.get(
        "/jobs", station_id=station, status=status, type=job_type, limit=limit, offset=offset
    )

    def render(data: dict[str, Any]) -> None:
        rows = [_row(j) for j in data.get("items", [])]
        caption = output.page_caption(data, "jobs")
        output.show(output.table(COLUMNS, rows, caption=caption, no_wrap=("id",)))

    call.emit(page, render)


@command(app, "show")
def show(call: Call, job_id: JobId) -> None:
    """Show a job and its status on each station."""
    call.emit(call.api.get(f"/jobs/{job_id}"), _render_job)


@command(app, "cancel")
def cancel(
    call: Call,
    job_id: JobId,
    stations: Annotated[
        list[int] | None,
        typer.Option("--station", metavar="ID", help="only for these stations (repeatable)"),
    ] = None,
) -> None:
    """Cancel a job for the stations that have not downloaded it yet."""
    body = {"station_ids": stations} if stations else None
    result = call.api.post(f"/jobs/{job_id}/cancel", body)
    call.emit(
        result,
        lambda r: output.line(
            f"job {r.get('job_id')}: cancelled for {r.get('cancelled')} station(s)"
        ),
    )
