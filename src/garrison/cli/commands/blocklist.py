"""``garrison blocklist``: the fleet block list (hashes no station may execute or open)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from garrison.cli import output
from garrison.cli.client import segment
from garrison.cli.command import Call, command

app = typer.Typer(help="The fleet block list: add, list, remove.", no_args_is_help=True)
Sha256 = Annotated[str, typer.Argument(metavar="SHA256", help="SHA-256 of the file, in hex")]


def _render(data: dict[str, Any]) -> None:
    rows = [
        [e["sha256"], e.get("comment", ""), e.get("added_by", ""), output.when(e.get("added_at"))]
        for e in data.get("entries", [])
    ]
    caption = f"rule set {data.get('ruleset')} version {data.get('version')}"
    output.show(output.table(("sha256", "comment", "by", "added"), rows, caption=caption))


@command(app, "add")
def add(
    call: Call,
    sha256: Sha256,
    comment: Annotated[str, typer.Option("--comment", "-m", help="why it is blocked")] = "",
) -> None:
    """Block a SHA-256 on every station (applied at their next check-in)."""
    found = call.api.post("/blocklist", {"sha256": sha256, "comment": comment})
    call.emit(
        found,
        lambda d: output.line(f"blocked {d['sha256']} (block list version {d['version']})"),
    )


@command(app, "list")
def list_entries(call: Call) -> None:
    """The hashes on the fleet block list."""
    call.emit(call.api.get("/blocklist"), _render)


@command(app, "remove")
def remove(call: Call, sha256: Sha256) -> None:
    """Lift a block."""
    found = call.api.delete(f"/blocklist/{segment(sha256)}")
    call.emit(
        found,
        lambda d: output.line(f"lifted {d['sha256']} (block list version {d['version']})"),
    )
