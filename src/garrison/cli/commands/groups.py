"""``garrison groups``: named sets of stations that jobs can target."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from garrison.cli import output
from garrison.cli.client import segment
from garrison.cli.command import Call, command

app = typer.Typer(help="Station groups: list, create, delete, add, remove.", no_args_is_help=True)

GroupName = Annotated[str, typer.Argument(metavar="NAME", help="group name")]
StationIds = Annotated[list[int], typer.Argument(metavar="ID...", help="station ids")]


@command(app, "list")
def list_groups(call: Call) -> None:
    """List groups and how many stations each holds."""

    def render(data: list[dict[str, Any]]) -> None:
        rows = [[g.get("id"), g.get("name"), g.get("stations"), g.get("description")] for g in data]
        caption = f"{len(data)} group(s)" if data else "no groups"
        output.show(output.table(("id", "name", "stations", "description"), rows, caption=caption))

    call.emit(call.api.get("/groups"), render)


@command(app, "create")
def create(
    call: Call,
    name: GroupName,
    description: Annotated[str, typer.Option(help="what the group is for")] = "",
) -> None:
    """Create an empty group."""
    group = call.api.post("/groups", {"name": name, "description": description})
    call.emit(group, lambda g: output.line(f"group {g.get('name')} created (id {g.get('id')})"))


@command(app, "delete")
def delete(call: Call, name: GroupName) -> None:
    """Delete a group (its stations stay enrolled)."""
    call.api.delete(f"/groups/{segment(name)}")
    call.emit({"group": name, "deleted": True}, lambda _: output.line(f"group {name} deleted"))


def _change(call: Call, name: str, add: list[int], remove: list[int]) -> None:
    result = call.api.post(f"/groups/{segment(name)}/stations", {"add": add, "remove": remove})

    def render(data: dict[str, Any]) -> None:
        members = data.get("station_ids") or []
        listed = ", ".join(str(i) for i in members) or "none"
        output.line(f"group {data.get('group')}: {len(members)} station(s): {listed}")

    call.emit(result, render)


@command(app, "add")
def add(call: Call, name: GroupName, station_ids: StationIds) -> None:
    """Add stations to a group."""
    _change(call, name, station_ids, [])


@command(app, "remove")
def remove(call: Call, name: GroupName, station_ids: StationIds) -> None:
    """Remove stations from a group."""
    _change(call, name, [], station_ids)
