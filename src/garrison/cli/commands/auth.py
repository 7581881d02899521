"""``garrison login`` (a token for a password) and ``garrison whoami``."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from garrison.cli import output
from garrison.cli.client import TOKEN_FILE, CliError, UsageError, data_dir
from garrison.cli.command import Call, secret


def save_token(path: Path, token: str) -> None:
    """Writes the token readable by its owner only, replacing the file in one step."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(token + "\n")
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def login(
    call: Call,
    username: Annotated[
        str | None, typer.Option("--username", "-u", help="asked for when not given")
    ] = None,
    password: Annotated[
        str | None, typer.Option(help="asked for (hidden) or read from stdin when not given")
    ] = None,
    save: Annotated[
        bool, typer.Option("--save", help="write the token to <data-dir>/admin.token (mode 0600)")
    ] = False,
) -> None:
    """Log in with a password and print the API token (or --save it for later commands)."""
    if username is None:
        if not sys.stdin.isatty():
            raise UsageError("give --username (no terminal to ask on)")
        username = str(typer.prompt("Username"))
    body = {"username": username, "password": secret("Password", password, confirmation=False)}
    with call.anonymous() as api:
        result: dict[str, Any] = api.post("/auth/login", body)
    token = str(result.get("token", ""))
    if not token:
        raise CliError("the server's login answer carries no token")
    if save:
        path = data_dir(call.data_dir) / TOKEN_FILE
        try:
            save_token(path, token)
        except OSError as exc:
            raise CliError(f"cannot save the token to {path}: {exc.strerror or exc}") from None
        expires = output.when(result.get("expires_at"))
        message = f"token for {username} saved to {path} (expires {expires})"
        call.emit(result, lambda _: output.line(message))
    else:
        call.emit(result, lambda _: output.line(token))


def whoami(call: Call) -> None:
    """Show which user the token belongs to."""
    call.emit(
        call.api.get("/auth/me"),
        lambda me: output.line(f"{me.get('username')} ({me.get('role')}) at {call.url}"),
    )
