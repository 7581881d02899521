"""``garrison``: run the server, manage its database, and administer it through the admin API."""

from __future__ import annotations

import sys

import typer

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
server.register(app)
admin.register(app)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
