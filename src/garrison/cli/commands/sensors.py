"""``garrison sensors``: the sensor policy (default, per group, effective per station) and
each station's sensor status."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from garrison.cli import output
from garrison.cli.client import UsageError, segment
from garrison.cli.command import Call, command
from garrison.cli.commands.jobs import parse_pair

app = typer.Typer(help="Endpoint sensors: policy, status.", no_args_is_help=True)
policy_app = typer.Typer(
    help="The sensor policy: show, set, unset, effective.", no_args_is_help=True
)
app.add_typer(policy_app, name="policy")

Group = Annotated[
    str | None,
    typer.Option("--group", metavar="NAME", help="a group's policy (default: the default one)"),
]
StationId = Annotated[int, typer.Argument(metavar="STATION", help="station id")]


def _path(group: str | None) -> str:
    return f"/groups/{segment(group)}/sensor-policy" if group else "/sensor-policy"


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "(empty)"
    return str(value)


def _render_policy(data: dict[str, Any]) -> None:
    settings = data.get("settings") or {}
    title = f"group {data.get('group')}" if data.get("scope") == "group" else "default"
    caption = f"version {data.get('version')}"
    if data.get("scope") == "group":
        caption += f", priority {data.get('priority')}"
    if data.get("updated_by"):
        caption += f", by {data.get('updated_by')} at {output.when(data.get('updated_at'))}"
    rows = [[key, _value(value)] for key, value in settings.items()]
    if not rows:
        caption += "; sets nothing (agents keep their agent.toml [sensors])"
    output.show(output.table(("key", "value"), rows, title=title, caption=caption))


def _put(call: Call, group: str | None, settings: dict[str, Any], priority: int | None) -> Any:
    body: dict[str, Any] = {"settings": settings}
    if group:
        body["priority"] = priority if priority is not None else 0
    elif priority is not None:
        raise UsageError("--priority is for a group's policy (give --group)")
    return call.api.put(_path(group), body)


@command(policy_app, "show")
def show(call: Call, group: Group = None) -> None:
    """Show the default sensor policy, or a group's."""
    call.emit(call.api.get(_path(group)), _render_policy)


@command(policy_app, "set")
def set_policy(
    call: Call,
    pairs: Annotated[
        list[str],
        typer.Argument(metavar="KEY=VALUE...", help="e.g. ports=false file_paths='[\"/srv\"]'"),
    ],
    group: Group = None,
    priority: Annotated[
        int | None,
        typer.Option(help="a group's priority: the higher wins a key two groups set"),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="drop the keys not given (default: keep them)")
    ] = False,
) -> None:
    """Set keys of the default sensor policy, or a group's (values read as JSON)."""
    changes = dict(parse_pair(p, "a policy key") for p in pairs)
    if not changes:
        raise UsageError("give at least one KEY=VALUE")
    current = {} if replace else dict(call.api.get(_path(group)).get("settings") or {})
    if group and priority is None and not replace:
        priority = int(call.api.get(_path(group)).get("priority") or 0)
    call.emit(_put(call, group, {**current, **changes}, priority), _render_policy)


@command(policy_app, "unset")
def unset(
    call: Call,
    keys: Annotated[
        list[str] | None,
        typer.Argument(metavar="[KEY...]", help="the keys to drop (none: the whole policy)"),
    ] = None,
    group: Group = None,
) -> None:
    """Drop keys of the default policy or a group's; without keys, the whole policy."""
    if not keys:
        if group:
            call.api.delete(_path(group))
            call.emit(
                {"group": group, "deleted": True},
                lambda _: output.line(f"group {group}: sensor policy removed"),
            )
        else:
            call.emit(_put(call, None, {}, None), _render_policy)
        return
    found = call.api.get(_path(group))
    settings = {k: v for k, v in (found.get("settings") or {}).items() if k not in keys}
    priority = int(found.get("priority") or 0) if group else None
    call.emit(_put(call, group, settings, priority), _render_policy)


@command(policy_app, "effective")
def effective(call: Call, station_id: StationId) -> None:
    """The policy a station's agent gets, and where each key comes from."""

    def render(data: dict[str, Any]) -> None:
        sources = data.get("sources") or {}
        rows = [
            [key, _value(value), sources.get(key, "")]
            for key, value in (data.get("settings") or {}).items()
        ]
        caption = f"version {data.get('version')}"
        if not rows:
            caption += "; no policy: the agent runs its agent.toml [sensors]"
        else:
            caption += "; keys not listed: the agent's agent.toml [sensors]"
        title = f"station {data.get('station_id')}"
        output.show(output.table(("key", "value", "from"), rows, title=title, caption=caption))

    call.emit(call.api.get(f"/stations/{station_id}/sensor-policy"), render)


@command(app, "status")
def status(call: Call, station_id: StationId) -> None:
    """A station's sensors, from its latest sensor_health report."""

    def render(data: dict[str, Any]) -> None:
        rows = [
            [
                item.get("sensor"),
                item.get("state"),
                item.get("reason") or "",
                item.get("produced"),
                item.get("dropped"),
                output.counts(
                    {
                        "rate": item.get("dropped_rate_limit"),
                        "queue": item.get("dropped_queue"),
                        "spool": item.get("dropped_spool"),
                    }
                ),
                item.get("overflows"),
                item.get("excluded"),
            ]
            for item in data.get("sensors") or []
        ]
        if data.get("reported_at") is None:
            caption = "no sensor_health report from this station yet"
        else:
            caption = f"reported {output.when(data.get('reported_at'))}"
            if data.get("policy_version"):
                caption += f", policy {data.get('policy_version')}"
        if data.get("policy_error"):
            caption += f"; POLICY REFUSED: {data.get('policy_error')}"
        columns = (
            "sensor",
            "state",
            "reason",
            "produced",
            "dropped",
            "drops by cause",
            "overflows",
            "excluded",
        )
        title = f"station {data.get('station_id')}"
        output.show(output.table(columns, rows, title=title, caption=caption))

    call.emit(call.api.get(f"/stations/{station_id}/sensors"), render)
