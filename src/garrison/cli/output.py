"""Printing: Rich tables for people, the API's JSON untouched for scripts, one-line errors.

Every value shown in a table comes from the server (host names, file paths, threat names), so
cells are :class:`rich.text.Text`, never markup: a path like ``/tmp/[x]`` prints as it is.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

NONE = "-"
# Piped into grep or a file, a table is easier to use unwrapped than folded into 80 columns.
PIPE_WIDTH = 200
# Timestamps (19 characters) are never folded.
TIME_COLUMNS = frozenset(
    {"at", "created", "detected", "downloaded", "ended", "expires", "last seen", "started"}
    | {"updated", "reported", "time", "received"}
)


def console() -> Console:
    width = None
    if not sys.stdout.isatty() and not os.environ.get("COLUMNS"):
        width = PIPE_WIDTH
    return Console(highlight=False, soft_wrap=False, width=width)


def print_json(data: Any) -> None:
    """Exactly the API's JSON on stdout (and nothing else), for scripts and ``jq``."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def line(text: str) -> None:
    """One plain line on stdout, never wrapped (tokens and keys must stay copyable)."""
    sys.stdout.write(text + "\n")


def error(message: str) -> None:
    sys.stderr.write(f"error: {' '.join(message.split())}\n")
    sys.stderr.flush()


def when(value: Any) -> str:
    """An API timestamp as ``YYYY-MM-DD HH:MM:SS`` in UTC."""
    if not value:
        return NONE
    try:
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def cell(value: Any) -> Text:
    if value is None or value == "":
        return Text(NONE)
    if isinstance(value, bool):
        return Text("yes" if value else "no")
    if isinstance(value, (dict, list)):
        return Text(json.dumps(value, ensure_ascii=False))
    return Text(str(value))


def table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    title: str | None = None,
    caption: str | None = None,
    no_wrap: Sequence[str] = (),
) -> Table:
    """A table; the columns named in ``no_wrap`` (ids, keys, times) are never broken."""
    out = Table(title=title, caption=caption, title_justify="left", caption_justify="left")
    for name in columns:
        out.add_column(name, no_wrap=name in no_wrap or name in TIME_COLUMNS, overflow="fold")
    for row in rows:
        out.add_row(*(cell(v) for v in row))
    return out


def details(pairs: Iterable[tuple[str, Any]], *, title: str | None = None) -> Table:
    """One record as a two-column table of field and value."""
    out = Table(show_header=False, title=title, title_justify="left", box=None, padding=(0, 2))
    out.add_column(style="bold", no_wrap=True)
    out.add_column(overflow="fold")
    for name, value in pairs:
        out.add_row(name, cell(value))
    return out


def show(*renderables: Table) -> None:
    con = console()
    for item in renderables:
        con.print(item)


def page_caption(page: Mapping[str, Any], noun: str) -> str:
    total = int(page.get("total", 0))
    items = page.get("items") or []
    offset = int(page.get("offset", 0))
    if not items:
        return f"no {noun} (total {total})" if total else f"no {noun}"
    return f"{offset + 1}-{offset + len(items)} of {total} {noun}"


def counts(values: Mapping[str, Any]) -> str:
    """``{"queued": 2, "successful": 1}`` as ``queued 2, successful 1`` (zero counts left out)."""
    parts = [f"{name} {n}" for name, n in values.items() if n]
    return ", ".join(parts) or NONE


def progress(description: str, *, transfer: bool = False) -> Progress:
    """A progress bar on stderr (stdout stays the command's output); ``transfer`` shows
    bytes and speed.  Hidden when stderr is not a terminal."""
    columns: list[Any] = [TextColumn("{task.description}"), BarColumn()]
    if transfer:
        columns += [DownloadColumn(), TransferSpeedColumn()]
    else:
        columns += [MofNCompleteColumn()]
    columns.append(TimeElapsedColumn())
    stderr = Console(stderr=True, highlight=False)
    return Progress(*columns, console=stderr, transient=True, disable=not stderr.is_terminal)
