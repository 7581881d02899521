"""The admin commands of ``garrison``: they drive a server's admin API over HTTP.

``garrison keys|stations|groups|jobs|alerts|scans|users|settings|audit|procedures|events|
export|sensors|rules …``, ``garrison login`` and ``garrison whoami``.  Each command takes
``--server``, ``--token``, ``--data-dir`` and ``--json`` (see :mod:`garrison.cli.command`).
"""

from __future__ import annotations

import typer

from garrison.cli.command import command
from garrison.cli.commands import (
    alerts,
    auth,
    blocklist,
    events,
    export,
    files,
    groups,
    hunts,
    jobs,
    keys,
    procedures,
    rules,
    scans,
    sensors,
    settings,
    stations,
    users,
)

ADMIN = "Administration (through the admin API)"


def register(app: typer.Typer) -> None:
    """Adds the admin command groups to ``app``."""
    for name, group in (
        ("keys", keys.app),
        ("stations", stations.app),
        ("groups", groups.app),
        ("jobs", jobs.app),
        ("alerts", alerts.app),
        ("scans", scans.app),
        ("users", users.app),
        ("settings", settings.settings_app),
        ("audit", settings.audit_app),
        ("procedures", procedures.app),
        ("events", events.app),
        ("export", export.app),
        ("sensors", sensors.app),
        ("rules", rules.app),
        ("files", files.app),
        ("hunts", hunts.app),
        ("blocklist", blocklist.app),
    ):
        app.add_typer(group, name=name, rich_help_panel=ADMIN)
    command(app, "login")(auth.login)
    command(app, "whoami")(auth.whoami)
