"""``UpgradeAgent``'s params, checked when the job is created: the version (and maybe the
architecture) of an uploaded agent package, resolved to that one package so that every
target installs the same bytes; ``confirm_seconds``, how long the new version has to check
in before the agent rolls back (docs/agent.md "Self-update")."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from garrison.common import agent_package
from garrison.server.content import packages
from garrison.server.errors import InvalidInputError

DEFAULT_CONFIRM_SECONDS = 300
MIN_CONFIRM_SECONDS = 5
MAX_CONFIRM_SECONDS = 3600


def check(session: Session, params: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(params) - {"version", "architecture", "confirm_seconds"})
    if unknown:
        raise InvalidInputError(
            f"params.{unknown[0]} is not a parameter of UpgradeAgent "
            "(known: version, architecture, confirm_seconds)",
            field=f"params.{unknown[0]}",
        )
    try:
        version = agent_package.check_version(params.get("version"))
        architecture = params.get("architecture")
        if architecture is not None:
            architecture = agent_package.check_architecture(architecture)
    except agent_package.PackageError as exc:
        field = "params.version" if "version" in str(exc)[:8] else "params.architecture"
        raise InvalidInputError(str(exc), field=field) from None
    confirm = params.get("confirm_seconds", DEFAULT_CONFIRM_SECONDS)
    if (
        isinstance(confirm, bool)
        or not isinstance(confirm, int)
        or not MIN_CONFIRM_SECONDS <= confirm <= MAX_CONFIRM_SECONDS
    ):
        raise InvalidInputError(
            f"params.confirm_seconds must be an integer from {MIN_CONFIRM_SECONDS} to "
            f"{MAX_CONFIRM_SECONDS}",
            field="params.confirm_seconds",
        )
    row = packages.resolve(session, version, architecture)
    return {
        "version": row.version,
        "architecture": row.architecture,
        "package_id": row.id,
        "sha256": row.sha256,
        "size": row.size,
        "confirm_seconds": confirm,
    }
