"""``garrison users``: console and API accounts and their roles."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from garrison.cli import output
from garrison.cli.client import segment
from garrison.cli.command import Call, command, confirm, secret
from garrison.common.vocabulary import Role

app = typer.Typer(
    help="Users: list, create, set-role, disable, enable, delete, passwd.", no_args_is_help=True
)

Username = Annotated[str, typer.Argument(metavar="USERNAME")]
Password = Annotated[
    str | None,
    typer.Option(help="the password (else asked for, or read from stdin); 10 characters or more"),
]
COLUMNS = ("id", "username", "role", "disabled", "created")


def _row(u: dict[str, Any]) -> list[Any]:
    return [
        u.get("id"),
        u.get("username"),
        u.get("role"),
        u.get("disabled"),
        output.when(u.get("created_at")),
    ]


def _show_one(u: dict[str, Any]) -> None:
    output.show(output.table(COLUMNS, [_row(u)]))


def _patch(call: Call, username: str, **changes: Any) -> None:
    call.emit(call.api.patch(f"/users/{segment(username)}", changes), _show_one)


@command(app, "list")
def list_users(call: Call) -> None:
    """List users."""

    def render(data: list[dict[str, Any]]) -> None:
        output.show(output.table(COLUMNS, [_row(u) for u in data], caption=f"{len(data)} user(s)"))

    call.emit(call.api.get("/users"), render)


@command(app, "create")
def create(
    call: Call,
    username: Username,
    role: Annotated[Role, typer.Option(help="what the user may do")],
    password: Password = None,
) -> None:
    """Create a user: viewers read, operators also run jobs, admins also manage users."""
    body = {"username": username, "password": secret("Password", password), "role": role.value}
    call.emit(call.api.post("/users", body), _show_one)


@command(app, "set-role")
def set_role(call: Call, username: Username, role: Annotated[Role, typer.Argument()]) -> None:
    """Change a user's role (this ends the user's existing sessions: tokens stop working)."""
    _patch(call, username, role=role.value)


@command(app, "disable")
def disable(call: Call, username: Username) -> None:
    """Disable a user: their tokens stop working until enabled again."""
    _patch(call, username, disabled=True)


@command(app, "enable")
def enable(call: Call, username: Username) -> None:
    """Enable a disabled user."""
    _patch(call, username, disabled=False)


@command(app, "passwd")
def passwd(call: Call, username: Username, password: Password = None) -> None:
    """Set a user's password (this ends the user's existing sessions: tokens stop working)."""
    _patch(call, username, password=secret("New password", password))


@command(app, "delete")
def delete(
    call: Call,
    username: Username,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Delete a user."""
    confirm(f"Delete user {username}?", yes)
    call.api.delete(f"/users/{segment(username)}")
    call.emit(
        {"username": username, "deleted": True}, lambda _: output.line(f"user {username} deleted")
    )
