"""``garrison keys``: enrollment keys (``/admin/v1/enrollment-keys``)."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from garrison.cli import output
from garrison.cli.client import segment
from garrison.cli.command import Call, command

app = typer.Typer(
    help="Enrollment keys: create, list, revoke, install command.", no_args_is_help=True
)

COLUMNS = ("id", "key", "status", "used", "expires", "description", "created by")


def _row(k: dict[str, Any]) -> list[Any]:
    return [
        k.get("id"),
        # The full key only in the answer to its creation: it is stored hashed.
        k.get("key") or f"{k.get('prefix', '')}-…",
        k.get("status"),
        f"{k.get('used', 0)}/{k.get('uses', 0)}",
        output.when(k.get("expires_at")),
        k.get("description"),
        k.get("created_by"),
    ]


def _show_one(k: dict[str, Any]) -> None:
    output.show(output.table(COLUMNS, [_row(k)], no_wrap=("id", "key")))


@command(app, "create")
def create(
    call: Call,
    uses: Annotated[int, typer.Option(min=1, help="how many stations may enroll with it")] = 1,
    expires_in: Annotated[
        int, typer.Option(min=60, metavar="SECONDS", help="lifetime in seconds (default 7 days)")
    ] = 7 * 86400,
    description: Annotated[str, typer.Option(help="a note for other administrators")] = "",
) -> None:
    """Create an enrollment key; give it to the agents (garrison-agent -t Enrollment -k KEY).
    The full key is shown now only: it is stored hashed, and listed by its first group."""
    body = {"uses": uses, "expires_in": expires_in, "description": description}
    call.emit(call.api.post("/enrollment-keys", body), _show_one)


@command(app, "list")
def list_keys(
    call: Call,
    active: Annotated[bool, typer.Option(help="only keys that can still be used")] = False,
) -> None:
    """List enrollment keys, newest first."""
    keys = call.api.get("/enrollment-keys", active=active)

    def render(data: list[dict[str, Any]]) -> None:
        caption = f"{len(data)} key(s)" if data else "no keys"
        rows = [_row(k) for k in data]
        output.show(output.table(COLUMNS, rows, caption=caption, no_wrap=("id", "key")))

    call.emit(keys, render)


@command(app, "revoke")
def revoke(
    call: Call,
    key: Annotated[str, typer.Argument(metavar="KEY_OR_ID", help="the key text or its id")],
) -> None:
    """Revoke a key: no station can enroll with it any more."""
    call.emit(call.api.delete(f"/enrollment-keys/{segment(key.strip())}"), _show_one)


@command(app, "install-command")
def install_command(
    call: Call,
    key: Annotated[
        str, typer.Argument(metavar="KEY_OR_ID", help="the key text (included) or its id")
    ],
) -> None:
    """Print the one-line install for an endpoint (garrison-agent install --server URL
    --ca-sha256 HEX --key KEY), to run there as root.  By id, the key is stored hashed:
    fill in its XXXXX groups, or give the key's text."""
    data = call.api.get(f"/enrollment-keys/{segment(key.strip())}/install-command")

    def render(found: dict[str, Any]) -> None:
        output.line(str(found.get("command", "")))
        if not found.get("key_included"):
            # On stderr: the command alone on stdout, for scripts.
            sys.stderr.write(
                "note: the key is stored hashed: replace its XXXXX groups with the full key\n"
            )

    call.emit(data, render)
