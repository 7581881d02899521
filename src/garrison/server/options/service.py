"""Run-time settings an administrator changes through the admin API."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from garrison.server.errors import InvalidInputError
from garrison.server.options.models import Option
from garrison.server.store.base import utcnow
from garrison.server.store.upsert import upsert


@dataclass(frozen=True)
class IntOption:
    default: int
    minimum: int
    maximum: int
    help: str


OPTIONS: dict[str, IntOption] = {
    "getjobs_limit": IntOption(10, 1, 100, "most queued jobs one Getjobs request returns"),
    "datetime_valid_delta_seconds": IntOption(
        300, 1, 86400, "a station clock off by more than this raises station_datetime_error"
    ),
    "offline_after_seconds": IntOption(
        300, 30, 7 * 86400, "a station that has not checked in for this long is offline"
    ),
    # Collected files (garrison.server.files).
    "file_max_bytes": IntOption(
        100 << 20, 1, 4 << 30, "the largest file an agent may upload (GetFile, samples)"
    ),
    "file_quota_bytes": IntOption(
        1 << 30, 0, 1 << 40, "the most bytes of stored files one station's uploads may hold"
    ),
    "file_retention_days": IntOption(
        90, 1, 3650, "collected files are deleted this many days after their last upload"
    ),
    "upload_samples": IntOption(
        0, 0, 1, "1: agents may upload the sample of a threat_detected alert (PUT /api/files)"
    ),
}


def validate(key: str, value: Any) -> int:
    spec = OPTIONS.get(key)
    if spec is None:
        raise InvalidInputError(f"unknown setting {key!r}", field=key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{key} must be an integer", field=key)
    if not spec.minimum <= value <= spec.maximum:
        raise InvalidInputError(
            f"{key} must be between {spec.minimum} and {spec.maximum}", field=key
        )
    return value


def get_all(session: Session) -> dict[str, int]:
    values = {key: spec.default for key, spec in OPTIONS.items()}
    for option in session.scalars(select(Option)):
        if option.key in values and isinstance(option.value, int):
            values[option.key] = option.value
    return values


def get(session: Session, key: str) -> int:
    spec = OPTIONS[key]
    value = session.scalar(select(Option.value).where(Option.key == key))
    return value if isinstance(value, int) else spec.default


def set_many(session: Session, changes: dict[str, Any]) -> dict[str, int]:
    checked = {key: validate(key, value) for key, value in changes.items()}
    for key, value in checked.items():
        upsert(
            session,
            Option.__table__,  # type: ignore[arg-type]
            {"key": key, "value": value, "updated_at": utcnow()},
            keys=["key"],
            update=["value", "updated_at"],
        )
    return get_all(session)


# -- change markers --------------------------------------------------------------------------
# A row that a change writes, in its own transaction, with a fresh random value, so that every
# node can learn it happened by reading one small row (a node's cache of what changed is then
# dropped): not a setting, get_all never shows it.
MARKER_PREFIX = "marker:"


def touch_marker(session: Session, name: str) -> None:
    upsert(
        session,
        Option.__table__,  # type: ignore[arg-type]
        {"key": MARKER_PREFIX + name, "value": secrets.token_hex(8), "updated_at": utcnow()},
        keys=["key"],
        update=["value", "updated_at"],
    )


def read_markers(session: Session, names: Iterable[str]) -> dict[str, str]:
    """The markers' values (a marker never written is absent)."""
    keys = [MARKER_PREFIX + name for name in names]
    rows = session.execute(select(Option.key, Option.value).where(Option.key.in_(keys)))
    return {key.removeprefix(MARKER_PREFIX): str(value) for key, value in rows}
