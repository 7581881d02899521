"""``garrison``: run the server, manage its database, and administer it through the admin API."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from garrison import __version__
from garrison.cli import admin, server
from garrison.common.cli_help import hide_flag_types

hide_flag_types()
app = typer.Typer(
    name="garrison",
    help="Garrison: central management server for endpoint-security agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"garrison {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="print the version"),
    ] = False,
) -> None:
    """Garrison: central management server for endpoint-security agents."""


server.register(app)
admin.register(app)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
