"""What every admin command shares: the connection options, ``--json``, and error handling.

``@command(app, "list")`` registers a function whose first parameter is a :class:`Call`; the
options ``--server``, ``--token``, ``--data-dir`` and ``--json`` are added to the command's
signature, so they go after the command's name (``garrison keys list --json``) on every
command alike, and each command is left with its own options only.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Concatenate, ParamSpec

import typer

from garrison.cli import output
from garrison.cli.client import Api, CliError, UsageError, admin_token, ca_file, server_url

P = ParamSpec("P")
CONNECTION = "Connection"

_COMMON: list[inspect.Parameter] = [
    inspect.Parameter(
        "conn_server",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            str | None,
            typer.Option(
                "--server",
                metavar="URL",
                help="server URL (env GARRISON_SERVER_URL; else the one the local server "
                "recorded in <data-dir>/server.url; else http://127.0.0.1:8080)",
                rich_help_panel=CONNECTION,
            ),
        ],
    ),
    inspect.Parameter(
        "conn_token",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            str | None,
            typer.Option(
                "--token",
                metavar="TOKEN",
                help="admin API token (env GARRISON_TOKEN; else <data-dir>/admin.token)",
                rich_help_panel=CONNECTION,
            ),
        ],
    ),
    inspect.Parameter(
        "conn_data_dir",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            Path | None,
            typer.Option(
                "--data-dir",
                metavar="DIR",
                help="the server's data directory, holding admin.token "
                "(env GARRISON_DATA_DIR; default ./garrison-data)",
                rich_help_panel=CONNECTION,
            ),
        ],
    ),
    inspect.Parameter(
        "json_output",
        inspect.Parameter.KEYWORD_ONLY,
        default=False,
        annotation=Annotated[
            bool,
            typer.Option("--json", help="print the API's JSON (for scripts) instead of tables"),
        ],
    ),
]


@dataclass
class Call:
    """One run of a command: how to reach the server and how to print."""

    server: str | None = None
    token: str | None = field(default=None, repr=False)
    data_dir: Path | None = None
    json: bool = False
    _api: Api | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return server_url(self.server, self.data_dir)[0]

    @property
    def api(self) -> Api:
        """The authenticated client; the token is looked up on first use."""
        if self._api is None:
            url, origin = server_url(self.server, self.data_dir)
            token = admin_token(self.token, self.data_dir)
            self._api = Api(url, token, origin=origin, ca=ca_file(self.data_dir))
        return self._api

    def anonymous(self) -> Api:
        """A client without a token (for logging in)."""
        url, origin = server_url(self.server, self.data_dir)
        return Api(url, origin=origin, ca=ca_file(self.data_dir))

    def close(self) -> None:
        if self._api is not None:
            self._api.close()

    def emit(self, data: Any, render: Callable[[Any], None]) -> None:
        """``--json`` prints the data as it came; otherwise ``render`` shows it to a person."""
        if self.json:
            output.print_json(data)
        else:
            render(data)


def confirm(question: str, yes: bool) -> None:
    """Asks before a destructive change, unless ``--yes``; a script must say ``--yes``."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"{question} Give --yes to confirm (no terminal to ask on)")
    if not typer.confirm(question, default=False):
        raise CliError("cancelled, nothing changed")


def secret(prompt: str, given: str | None, *, confirmation: bool = True) -> str:
    """A password from its option, the terminal (hidden), or the first line of stdin."""
    if given is not None:
        return given
    if sys.stdin.isatty():
        value: str = typer.prompt(prompt, hide_input=True, confirmation_prompt=confirmation)
        return value
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise UsageError(f"no {prompt.lower()}: give it as an option or on stdin")
    return line


def command(
    app: typer.Typer, name: str
) -> Callable[[Callable[Concatenate[Call, P], None]], Callable[Concatenate[Call, P], None]]:
    """Registers ``func`` as ``app``'s command ``name`` with the shared options."""

    def decorate(
        func: Callable[Concatenate[Call, P], None],
    ) -> Callable[Concatenate[Call, P], None]:
        @functools.wraps(func)
        def run(
            *args: Any,
            conn_server: str | None = None,
            conn_token: str | None = None,
            conn_data_dir: Path | None = None,
            json_output: bool = False,
            **kwargs: Any,
        ) -> None:
            call = Call(conn_server, conn_token, conn_data_dir, json_output)
            try:
                func(call, *args, **kwargs)
            except CliError as exc:
                output.error(exc.message)
                raise typer.Exit(exc.exit_code) from None
            except BrokenPipeError:
                # The reader (head, less) left: stop quietly, as other command-line tools do.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                raise typer.Exit(1) from None
            except OSError as exc:  # writing the token file
                output.error(str(exc))
                raise typer.Exit(1) from None
            except (AttributeError, KeyError, TypeError, ValueError) as exc:
                # JSON of an unexpected shape (another server, another version): still one line.
                output.error(f"unexpected answer from {call.url}: {type(exc).__name__}: {exc}")
                raise typer.Exit(1) from None
            finally:
                call.close()

        own = list(inspect.signature(func, eval_str=True).parameters.values())[1:]
        signature = inspect.Signature([*own, *_COMMON], return_annotation=None)
        run.__signature__ = signature  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in signature.parameters.values()}
        app.command(name)(run)
        return func

    return decorate
