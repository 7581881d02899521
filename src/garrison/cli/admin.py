"""Admin CLI commands (keys, stations, jobs, alerts, users) — being written."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Adds the admin command groups to ``app``."""
