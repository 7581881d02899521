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
    "errors; procedure sets (sets).",
    no_args_is_help=True,
)
sets_app = typer.Typer(
    help="Procedure sets: list, show, set, enable, disable, delete.  Each event runs the "
    "procedures of the enabled sets in set order.",
    no_args_is_help=True,
)
app.add_typer(sets_app, name="sets")

EventName = Annotated[
    str, typer.Argument(metavar="EVENT", help="the procedure's event, e.g. threat_detected")
]
SetOption = Annotated[
    str | None,
    typer.Option("--set", metavar="SET", help="the procedure set (default: the default set)"),
]
SetName = Annotated[str, typer.Argument(metavar="SET", help="the procedure set's name")]
COLUMNS = ("procedure", "set", "order", "enabled", "version", "updated", "by", "lines")
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
        p.get("set"),
        p.get("order"),
        bool(p.get("enabled")) and bool(p.get("set_enabled", True)),
        p.get("version"),
        output.when(p.get("updated_at")),
        p.get("updated_by"),
        _lines(p.get("source")),
    ]


def _summary(p: dict[str, Any]) -> str:
    state = "enabled" if p.get("enabled") else "disabled"
    where = f" in set {p.get('set')}" if p.get("set") not in (None, "default") else ""
    return f"procedure {p.get('name')}{where}: version {p.get('version')}, {state}"


@command(app, "list")
def list_procedures(call: Call) -> None:
    """List the stored procedures."""

    def render(data: list[dict[str, Any]]) -> None:
        caption = f"{len(data)} procedure(s)" if data else "no procedures"
        output.show(output.table(COLUMNS, [_row(p) for p in data], caption=caption))

    call.emit(call.api.get("/procedures"), render)


@command(app, "show")
def show(call: Call, event: EventName, set_name: SetOption = None) -> None:
    """Show a procedure (the default set's, or --set's) and its Lua source, and the event's
    chain: its procedures in every set, in set order."""

    def render(p: dict[str, Any]) -> None:
        chain = p.get("procedures") or []
        if len(chain) > 1:
            output.show(output.table(COLUMNS, [_row(c) for c in chain], caption="chain"))
        output.show(
            output.details(
                [
                    ("procedure", p.get("name")),
                    ("set", p.get("set")),
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

    call.emit(call.api.get(f"/procedures/{segment(event)}", set=set_name), render)


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
    set_name: SetOption = None,
) -> None:
    """Set a procedure's Lua source in a set (a new version; the server checks its
    syntax)."""
    source = read_text(source_file, "Lua file")
    if not source.strip():
        raise UsageError(f"the Lua file {source_file} is empty")
    body = {"source": source, "enabled": not disabled}
    result = call.api.request(
        "PUT", f"/procedures/{segment(event)}", params={"set": set_name}, body=body
    )
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
    set_name: Annotated[
        str | None,
        typer.Option(
            "--set",
            metavar="SET",
            help="test this set's procedure (default: the event's whole chain, set by set)",
        ),
    ] = None,
) -> None:
    """Dry-run a procedure, or the event's whole chain, with the given args: nothing it
    does is kept.

    Prints the result, error and logs (and each set's part of a chain); exits 1 when a
    procedure failed.
    """
    if args_file == STDIN and source_file == STDIN:
        raise UsageError("only one of --args and --source can read stdin")
    body: dict[str, Any] = {"args": read_args(args_file) if args_file is not None else {}}
    if source_file is not None:
        body["source"] = read_text(source_file, "Lua file")
    result: dict[str, Any] = call.api.request(
        "POST", f"/procedures/{segment(event)}/test", params={"set": set_name}, body=body
    )

    def render(data: dict[str, Any]) -> None:
        logs = [[entry] for entry in data.get("logs") or []]
        rows = [
            ("result", json.dumps(data.get("result"), ensure_ascii=False, sort_keys=True)),
            ("error", data.get("error")),
            ("elapsed", f"{data.get('elapsed_ms', 0)} ms"),
            ("logs", len(logs) or "none"),
        ]
        if data.get("answered_by"):
            rows.insert(1, ("answered by", data.get("answered_by")))
        parts = [output.details(rows, title=f"Test of {event}")]
        chain = data.get("chain") or []
        if len(chain) > 1:
            parts.append(
                output.table(
                    ("set", "order", "version", "ran", "result", "error", "ms"),
                    [
                        [
                            step.get("set"),
                            step.get("order"),
                            step.get("version"),
                            "yes" if step.get("called") else f"no ({step.get('skipped')})",
                            json.dumps(step.get("result"), ensure_ascii=False, sort_keys=True),
                            step.get("error"),
                            step.get("elapsed_ms"),
                        ]
                        for step in chain
                    ],
                    caption="chain",
                )
            )
        if logs:
            parts.append(output.table(("log",), logs))
        output.show(*parts)

    call.emit(result, render)
    if result.get("error"):
        raise CliError(f"procedure {event} failed: {result['error']}")


def _set_enabled(call: Call, event: str, enabled: bool, set_name: str | None) -> None:
    action = "enable" if enabled else "disable"
    call.emit(
        call.api.request(
            "POST", f"/procedures/{segment(event)}/{action}", params={"set": set_name}
        ),
        lambda p: output.line(_summary(p)),
    )


@command(app, "enable")
def enable(call: Call, event: EventName, set_name: SetOption = None) -> None:
    """Enable a procedure: it runs for its events again."""
    _set_enabled(call, event, True, set_name)


@command(app, "disable")
def disable(call: Call, event: EventName, set_name: SetOption = None) -> None:
    """Disable a procedure: it is kept but not run."""
    _set_enabled(call, event, False, set_name)


@command(app, "delete")
def delete(
    call: Call,
    event: EventName,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
    set_name: SetOption = None,
) -> None:
    """Delete a procedure (its version history stays)."""
    where = f" in set {set_name}" if set_name else ""
    confirm(f"Delete the procedure for {event}{where}?", yes)
    call.api.request("DELETE", f"/procedures/{segment(event)}", params={"set": set_name})
    call.emit(
        {"procedure": event, "deleted": True},
        lambda _: output.line(f"procedure {event} deleted"),
    )


@command(app, "versions")
def versions(call: Call, event: EventName, set_name: SetOption = None) -> None:
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

    call.emit(call.api.get(f"/procedures/{segment(event)}/versions", set=set_name), render)


@command(app, "errors")
def errors(
    call: Call,
    procedure: Annotated[
        str | None, typer.Option(metavar="NAME", help="only this procedure's failures")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    set_name: Annotated[
        str | None, typer.Option("--set", metavar="SET", help="only this set's failures")
    ] = None,
) -> None:
    """Recent procedure failures (errors, budget or memory exceeded), newest first."""

    def render(data: list[dict[str, Any]]) -> None:
        rows = [
            [
                e.get("id"),
                output.when(e.get("at")),
                e.get("procedure"),
                e.get("set"),
                e.get("event_seq"),
                e.get("error"),
            ]
            for e in data
        ]
        columns = ("id", "at", "procedure", "set", "event", "error")
        caption = f"{len(data)} error(s)" if data else "no errors"
        output.show(output.table(columns, rows, caption=caption, no_wrap=("id",)))

    call.emit(
        call.api.get("/procedures/errors", procedure=procedure, limit=limit, set=set_name),
        render,
    )


# -- procedure sets ---------------------------------------------------------------------------

SET_COLUMNS = ("set", "order", "enabled", "procedures", "updated", "by")


def _set_row(found: dict[str, Any]) -> list[Any]:
    return [
        found.get("name"),
        found.get("order"),
        found.get("enabled"),
        found.get("procedures"),
        output.when(found.get("updated_at")),
        found.get("updated_by"),
    ]


def _set_summary(found: dict[str, Any]) -> str:
    state = "enabled" if found.get("enabled") else "disabled"
    return (
        f"procedure set {found.get('name')}: order {found.get('order')}, {state}, "
        f"{found.get('procedures')} procedure(s)"
    )


@command(sets_app, "list")
def list_sets(call: Call) -> None:
    """List the procedure sets, in the order events run them."""

    def render(data: list[dict[str, Any]]) -> None:
        caption = f"{len(data)} set(s)" if data else "no sets"
        output.show(output.table(SET_COLUMNS, [_set_row(f) for f in data], caption=caption))

    call.emit(call.api.get("/procedure-sets"), render)


@command(sets_app, "show")
def show_set(call: Call, name: SetName) -> None:
    """Show one procedure set."""
    call.emit(
        call.api.get(f"/procedure-sets/{segment(name)}"), lambda f: output.line(_set_summary(f))
    )


@command(sets_app, "set")
def put_set(
    call: Call,
    name: SetName,
    order: Annotated[
        int | None,
        typer.Option(help="where the set runs (lowest first); required for a new set"),
    ] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="create it disabled")] = False,
) -> None:
    """Create a procedure set, or change its order."""
    body: dict[str, Any] = {}
    if order is not None:
        body["order"] = order
    if disabled:
        body["enabled"] = False
    if not body:
        raise UsageError("give --order (and --disabled to create it disabled)")
    result = call.api.put(f"/procedure-sets/{segment(name)}", body)
    call.emit(result, lambda f: output.line(f"{_set_summary(f)} (saved)"))


def _toggle_set(call: Call, name: str, enabled: bool) -> None:
    result = call.api.put(f"/procedure-sets/{segment(name)}", {"enabled": enabled})
    call.emit(result, lambda f: output.line(_set_summary(f)))


@command(sets_app, "enable")
def enable_set(call: Call, name: SetName) -> None:
    """Enable a procedure set: its procedures run again."""
    _toggle_set(call, name, True)


@command(sets_app, "disable")
def disable_set(call: Call, name: SetName) -> None:
    """Disable a procedure set: its procedures are kept but none runs."""
    _toggle_set(call, name, False)


@command(sets_app, "delete")
def delete_set(
    call: Call,
    name: SetName,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Delete a procedure set and its procedures (their version history stays)."""
    confirm(f"Delete the procedure set {name} and its procedures?", yes)
    call.api.delete(f"/procedure-sets/{segment(name)}")
    call.emit(
        {"set": name, "deleted": True},
        lambda _: output.line(f"procedure set {name} deleted"),
    )
