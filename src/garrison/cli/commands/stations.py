"""``garrison stations``: enrolled stations, their state and configuration."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from garrison.cli import output
from garrison.cli.client import UsageError
from garrison.cli.command import Call, command, confirm

app = typer.Typer(
    help="Stations: list, show, locate, delete, allow, state, configuration, process tree.",
    no_args_is_help=True,
)

StationId = Annotated[int, typer.Argument(metavar="ID", help="station id")]
COLUMNS = ("id", "hostname", "uuid", "address", "os", "antivirus", "online", "last seen", "groups")


class ConfigKind(StrEnum):
    avconfig = "avconfig"
    scheduler = "scheduler"


def _groups(st: dict[str, Any]) -> str:
    return ", ".join(str(g.get("name")) for g in st.get("groups") or [])


def _antivirus(st: dict[str, Any]) -> str:
    return f"{st.get('antivirus_name', '')} {st.get('antivirus_version', '')}".strip()


def _row(st: dict[str, Any]) -> list[Any]:
    return [
        st.get("id"),
        st.get("hostname"),
        st.get("uuid"),
        st.get("address"),
        st.get("os_name"),
        _antivirus(st),
        st.get("online"),
        output.when(st.get("last_seen")),
        _groups(st),
    ]


@command(app, "list")
def list_stations(
    call: Call,
    search: Annotated[
        str | None, typer.Option(help="text in the hostname, uuid or address")
    ] = None,
    group: Annotated[str | None, typer.Option(help="only members of this group")] = None,
    online: Annotated[
        bool | None, typer.Option("--online/--offline", help="only online / offline stations")
    ] = None,
    os_name: Annotated[str | None, typer.Option("--os", help="operating system name")] = None,
    antivirus: Annotated[str | None, typer.Option(help="antivirus name")] = None,
    kind: Annotated[str | None, typer.Option(help="agent kind: armadito or garrison")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    offset: Annotated[int, typer.Option(min=0)] = 0,
) -> None:
    """List stations (paged: --limit, --offset)."""
    page = call.api.get(
        "/stations",
        search=search,
        group=group,
        online=online,
        os_name=os_name,
        antivirus=antivirus,
        agent_kind=kind,
        limit=limit,
        offset=offset,
    )

    def render(data: dict[str, Any]) -> None:
        rows = [_row(st) for st in data.get("items", [])]
        caption = output.page_caption(data, "stations")
        output.show(output.table(COLUMNS, rows, caption=caption, no_wrap=("id",)))

    call.emit(page, render)


def _location(st: dict[str, Any]) -> str:
    latitude, longitude = st.get("latitude"), st.get("longitude")
    if latitude is None or longitude is None:
        return "unknown"
    return f"{float(latitude):.6f}, {float(longitude):.6f}"


def _render_station(st: dict[str, Any]) -> None:
    output.show(
        output.details(
            [
                ("id", st.get("id")),
                ("hostname", st.get("hostname")),
                ("uuid", st.get("uuid")),
                ("address", st.get("address")),
                ("mac", st.get("mac")),
                ("os", f"{st.get('os_name', '')} {st.get('os_platform', '')}".strip()),
                ("antivirus", _antivirus(st)),
                ("agent", f"{st.get('agent_kind', '')} {st.get('agent_version', '')}".strip()),
                ("online", st.get("online")),
                ("denied", output.when(st.get("denied_at"))),
                ("enrolled", output.when(st.get("enrolled_at"))),
                ("last seen", output.when(st.get("last_seen"))),
                ("last alert", output.when(st.get("last_alert_at"))),
                ("location", _location(st)),
                ("groups", _groups(st)),
            ],
            title=f"Station {st.get('id')}",
        )
    )


@command(app, "show")
def show(call: Call, station_id: StationId) -> None:
    """Show one station."""
    call.emit(call.api.get(f"/stations/{station_id}"), _render_station)


@command(app, "delete")
def delete(
    call: Call,
    station_id: StationId,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Delete a station and its data; the agent must enroll again."""
    confirm(f"Delete station {station_id} and all its data?", yes)
    call.api.delete(f"/stations/{station_id}")
    call.emit(
        {"station_id": station_id, "deleted": True},
        lambda _: output.line(f"station {station_id} deleted"),
    )


@command(app, "locate")
def locate(
    call: Call,
    station_id: StationId,
    latitude: Annotated[
        float | None,
        typer.Option(help="degrees, -90 to 90, at most 6 decimals (DD.DDDDDD)"),
    ] = None,
    longitude: Annotated[
        float | None,
        typer.Option(help="degrees, -180 to 180, at most 6 decimals (DD.DDDDDD)"),
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="forget the location")] = False,
) -> None:
    """Set a station's location (a change emits station_geolocation_changed)."""
    if clear:
        if latitude is not None or longitude is not None:
            raise UsageError("--clear takes no --latitude or --longitude")
    elif latitude is None or longitude is None:
        raise UsageError("give both --latitude and --longitude (or --clear)")
    body = {"latitude": latitude, "longitude": longitude}
    call.emit(
        call.api.patch(f"/stations/{station_id}", body),
        lambda st: output.line(f"station {st.get('id')} location: {_location(st)}"),
    )


@command(app, "allow")
def allow(call: Call, station_id: StationId) -> None:
    """Lift the station's denial by the station_authorization_in_progress procedure: its
    requests are served again (a denied station's are refused, 403 station_denied)."""
    call.emit(
        call.api.post(f"/stations/{station_id}/allow"),
        lambda st: output.line(f"station {st.get('id')} allowed"),
    )


@command(app, "state")
def state(call: Call, station_id: StationId) -> None:
    """The antivirus state the station last reported (signature databases, modules)."""

    def render(data: dict[str, Any]) -> None:
        summary = output.details(
            [
                ("station", data.get("station_id")),
                ("status", data.get("global_status")),
                ("databases updated", output.when(data.get("global_update_time"))),
                ("reported", output.when(data.get("updated_at"))),
            ],
            title=f"State of station {data.get('station_id')}",
        )
        modules = [
            [m.get("name"), m.get("mod_status"), output.when(m.get("mod_update_time"))]
            for m in data.get("modules") or []
            if isinstance(m, dict)
        ]
        output.show(summary, output.table(("module", "status", "updated"), modules))

    call.emit(call.api.get(f"/stations/{station_id}/state"), render)


@command(app, "config")
def config(
    call: Call,
    station_id: StationId,
    kind: Annotated[ConfigKind, typer.Argument(help="which configuration")],
) -> None:
    """The station's effective configuration: shared baseline plus its own differences."""

    def render(data: dict[str, Any]) -> None:
        baseline: dict[str, Any] = data.get("baseline") or {}
        differences: dict[str, Any] = data.get("differences") or {}
        effective: dict[str, Any] = data.get("effective") or {}
        names = sorted({*baseline, *differences, *effective})
        rows = [
            [name, effective.get(name), baseline.get(name), name in differences] for name in names
        ]
        reported = data.get("reported_at")
        title = f"{kind.value} of station {station_id}"
        title += f" {data['name']}" if data.get("name") else ""
        title += f", reported {output.when(reported)}" if reported else ", never reported"
        columns = ("attribute", "effective", "baseline", "differs")
        output.show(output.table(columns, rows, title=title))

    call.emit(call.api.get(f"/stations/{station_id}/configs/{kind.value}"), render)


def _process_label(node: dict[str, Any]) -> str:
    """One line of the tree: pid, image, command line, user, times, exit."""
    parts = [f"[{node.get('pid', '?')}]", str(node.get("path") or "?")]
    command_line = node.get("command_line")
    if command_line:
        parts.append(f"`{command_line}`")
    if node.get("user"):
        parts.append(f"user={node['user']}")
    parts.append(f"start={output.when(node.get('start_time'))}")
    if node.get("end_time"):
        parts.append(f"end={output.when(node.get('end_time'))}")
        if node.get("exit_code") is not None:
            parts.append(f"exit={node['exit_code']}")
        if node.get("exit_signal") is not None:
            parts.append(f"signal={node['exit_signal']}")
    else:
        parts.append("running")
    parts.append(f"upid={node.get('unique_pid')}")
    return " ".join(parts)


def tree_lines(data: dict[str, Any]) -> list[str]:
    """The tree indented two spaces a level (iteratively: the answer is bounded in depth,
    but a walk needs no recursion)."""
    lines: list[str] = []
    stack: list[tuple[dict[str, Any], int]] = [
        (node, 0) for node in reversed(data.get("roots") or [])
    ]
    while stack:
        node, depth = stack.pop()
        lines.append("  " * depth + _process_label(node))
        stack.extend((child, depth + 1) for child in reversed(node.get("children") or []))
    return lines


@command(app, "tree")
def tree(
    call: Call,
    station_id: StationId,
    root: Annotated[
        str | None,
        typer.Option(metavar="UPID", help="start from this process (its UniquePID)"),
    ] = None,
    since: Annotated[
        str | None, typer.Option(metavar="TIME", help="events at or after (ISO 8601, UTC)")
    ] = None,
    until: Annotated[
        str | None, typer.Option(metavar="TIME", help="events before (ISO 8601, UTC)")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="at most this many")] = 1000,
) -> None:
    """The station's process tree from its process events: each process under its parent
    (by UniquePID), with its times and exit code; a process whose parent was not seen is a
    root."""
    data = call.api.get(
        f"/stations/{station_id}/process-tree", root=root, since=since, until=until, limit=limit
    )

    def render(answer: dict[str, Any]) -> None:
        lines = tree_lines(answer)
        for text in lines:
            output.line(text)
        summary = f"{answer.get('nodes', 0)} process(es) on station {station_id}"
        if answer.get("truncated"):
            summary += f"; cut: {answer.get('reason')}"
        output.line(summary if lines else f"no processes; {summary}")

    call.emit(data, render)
