"""``garrison procedures``: the Lua procedures run for events (``/admin/v1/procedures``)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from garrison.cli import output
from garrison.cli.client import CliError, UsageError, segment
from garrison.cli.command import Call, command, confirm

app = typer.Typer(
    help="Event procedures (Lua): list, show, set, test, enable, disable, delete, versions, "
    "errors.",
    no_args_is_help=True,
)

EventName = Annotated[
    str, typer.Argument(metavar="EVENT", help="the procedure's event, e.g. threat_detected")
]
COLUMNS = ("procedure", "enabled", "version", "updated", "by", "lines")
STDIN = "-"


def read_text(name: str, what: str) -> str:
    """A file's UTF-8 text, or stdin's for ``-``; any failure is a usage error."""
    if name == STDIN:
        try:
            return sys.stdin.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read the {what} from stdin: {exc}") from None
    try:
        with open(name, encoding="utf-8") as file:
            return file.read()
    except UnicodeDecodeError:
        raise UsageError(f"the {what} {name} is not UTF-8 text") from None
    except OSError as exc:
        raise UsageError(f"cannot read the {what} {name}: {exc.strerror or exc}") from None


def read_args(name: str) -> dict[str, Any]:
    """The procedure's ``args``: a JSON object in a file (or on stdin)."""
    text = read_text(name, "args file")
    try:
        args = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"the args file {name} is not valid JSON: {exc}") from None
    if not isinstance(args, dict):
        raise UsageError(f"the args file {name} must hold a JSON object, not {type(args).__name__}")
    return args


def _lines(source: Any) -> int:
    return len(str(source or "").splitlines())


def _row(p: dict[str, Any]) -> list[Any]:
    return [
        p.get("name"),
        p.get("enabled"),
        p.get("version"),
        output.when(p.get("updated_at")),
        p.get("updated_by"),
        _lines(p.get("source")),
    ]


def _summary(p: dict[str, Any]) -> str:
    state = "enabled" if p.get("enabled") else "disabled"
    return f"procedure {p.get('name')}: version {p.get('version')}, {state}"


@command(app, "list")
def list_procedures(call: Call) -> None:
    """List the stored procedures."""

    def render(data: list[dict[str, Any]]) -> None:
        caption = f"{len(data)} procedure(s)" if data else "no procedures"
        output.show(output.table(COLUMNS, [_row(p) for p in data], caption=caption))

    call.emit(call.api.get("/procedures"), render)


@command(app, "show")
def show(call: Call, event: EventName) -> None:
    """Show a procedure and its Lua source."""

    def render(p: dict[str, Any]) -> None:
        output.show(
            output.details(
                [
                    ("procedure", p.get("name")),
                    ("enabled", p.get("enabled")),
                    ("version", p.get("version")),
                    ("updated", output.when(p.get("updated_at"))),
                    ("updated by", p.get("updated_by")),
                ],
                title=f"Procedure {p.get('name')}",
            )
        )
        output.line("")
        output.line(str(p.get("source") or "").rstrip("\n"))

    call.emit(call.api.get(f"/procedures/{segment(event)}"), render)


@command(app, "set")
def set_procedure(
    call: Call,
    event: EventName,
    source_file: Annotated[
        str, typer.Argument(metavar="FILE.lua", help="the Lua source; - reads stdin")
    ],
    disabled: Annotated[
        bool, typer.Option("--disabled", help="store it disabled (kept, not run)")
    ] = False,
) -> None:
    """Set a procedure's Lua source (a new version; the server checks its syntax)."""
    source = read_text(source_file, "Lua file")
    if not source.strip():
        raise UsageError(f"the Lua file {source_file} is empty")
    body = {"source": source, "enabled": not disabled}
    result = call.api.request("PUT", f"/procedures/{segment(event)}", body=body)
    call.emit(result, lambda p: output.line(f"{_summary(p)} (saved)"))


@command(app, "test")
def dry_run(
    call: Call,
    event: EventName,
    args_file: Annotated[
        str | None,
        typer.Option(
            "--args",
            metavar="ARGS.json",
            help="the event's args as a JSON object; - reads stdin (default: {})",
        ),
    ] = None,
    source_file: Annotated[
        str | None,
        typer.Option(
            "--source", metavar="FILE.lua", help="test this source instead of the stored one"
        ),
    ] = None,
) -> None:
    """Dry-run a procedure with the given args: nothing it does is kept.

    Prints its result, error and logs; exits 1 when the procedure failed.
    """
    if args_file == STDIN and source_file == STDIN:
        raise UsageError("only one of --args and --source can read stdin")
    body: dict[str, Any] = {"args": read_args(args_file) if args_file is not None else {}}
    if source_file is not None:
        body["source"] = read_text(source_file, "Lua file")
    result: dict[str, Any] = call.api.post(f"/procedures/{segment(event)}/test", body)

    def render(data: dict[str, Any]) -> None:
        logs = [[entry] for entry in data.get("logs") or []]
        summary = output.details(
            [
                ("result", json.dumps(data.get("result"), ensure_ascii=False, sort_keys=True)),
                ("error", data.get("error")),
                ("elapsed", f"{data.get('elapsed_ms', 0)} ms"),
                ("logs", len(logs) or "none"),
            ],
            title=f"Test of {event}",
        )
        if logs:
            output.show(summary, output.table(("log",), logs))
        else:
            output.show(summary)

    call.emit(result, render)
    if result.get("error"):
        raise CliError(f"procedure {event} failed: {result['error']}")


def _set_enabled(call: Call, event: str, enabled: bool) -> None:
    action = "enable" if enabled else "disable"
    call.emit(
        call.api.post(f"/procedures/{segment(event)}/{action}"), lambda p: output.line(_summary(p))
    )


@command(app, "enable")
def enable(call: Call, event: EventName) -> None:
    """Enable a procedure: it runs for its events again."""
    _set_enabled(call, event, True)


@command(app, "disable")
def disable(call: Call, event: EventName) -> None:
    """Disable a procedure: it is kept but not run."""
    _set_enabled(call, event, False)


@command(app, "delete")
def delete(
    call: Call,
    event: EventName,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Delete a procedure (its version history stays)."""
    confirm(f"Delete the procedure for {event}?", yes)
    call.api.delete(f"/procedures/{segment(event)}")
    call.emit(
        {"procedure": event, "deleted": True},
        lambda _: output.line(f"procedure {event} deleted"),
    )


@command(app, "versions")
def versions(call: Call, event: EventName) -> None:
    """A procedure's version history, newest first."""

    def render(data: list[dict[str, Any]]) -> None:
        rows = [
            [
                v.get("version"),
                output.when(v.get("created_at")),
                v.get("created_by"),
                _lines(v.get("source")),
            ]
            for v in data
        ]
        caption = f"{len(data)} version(s)" if data else "no versions"
        output.show(output.table(("version", "created", "by", "lines"), rows, caption=caption))

    call.emit(call.api.get(f"/procedures/{segment(event)}/versions"), render)


@command(app, "errors")
def errors(
    call: Call,
    procedure: Annotated[
        str | None, typer.Option(metavar="NAME", help="only this procedure's failures")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
) -> None:
    """Recent procedure failures (errors, budget or memory exceeded), newest first."""

    def render(data: list[dict[str, Any]]) -> None:
        rows = [
            [
                e.get("id"),
                output.when(e.get("at")),
                e.get("procedure"),
                e.get("event_seq"),
                e.get("error"),
            ]
            for e in data
        ]
        columns = ("id", "at", "procedure", "event", "error")
        caption = f"{len(data)} error(s)" if data else "no errors"
        output.show(output.table(columns, rows, caption=caption, no_wrap=("id",)))

    call.emit(call.api.get("/procedures/errors", procedure=procedure, limit=limit), render)
