"""AVConfig and Scheduler configurations, stored as differences from a shared baseline.

Per attribute, the first value any station reports becomes the baseline.  A station whose
value equals it stores nothing; one that differs stores only its differing attributes; one
that lacks a baseline attribute stores a NULL difference.  1,000 stations with the same
configuration cost one copy.  A station's effective configuration is baseline + differences.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from garrison.server.audit import service as audit
from garrison.server.audit.actor import Actor
from garrison.server.configs.models import (
    CONFIG_KINDS,
    ConfigBaseline,
    ConfigDesired,
    ConfigDifference,
    ConfigReport,
)
from garrison.server.errors import InvalidInputError, NotFoundError
from garrison.server.store.base import column_length, utcnow
from garrison.server.store.upsert import insert_ignore, upsert

Pairs = Sequence[tuple[str, str]]
MAX_ATTRS = 5000
# From the columns: the longest attribute name and scheduler name stored.
ATTR_LENGTH = column_length(ConfigBaseline.attr)
NAME_LENGTH = column_length(ConfigReport.name)


def check_kind(kind: str) -> str:
    if kind not in CONFIG_KINDS:
        raise InvalidInputError(f"kind must be one of {', '.join(CONFIG_KINDS)}", field="kind")
    return kind


def _dedupe(pairs: Pairs) -> dict[str, str]:
    if len(pairs) > MAX_ATTRS:
        raise InvalidInputError(f"at most {MAX_ATTRS} attributes", field="attr")
    merged: dict[str, str] = {}
    for attr, value in pairs:
        if not attr or len(attr) > ATTR_LENGTH:
            raise InvalidInputError(f"attr must be 1-{ATTR_LENGTH} characters", field="attr")
        merged[attr] = value  # the last one reported wins
    return merged


def baseline(session: Session, kind: str, created_by: dt.datetime | None = None) -> dict[str, str]:
    """The baseline; with ``created_by``, only attributes that existed at that time."""
    query = select(ConfigBaseline.attr, ConfigBaseline.value).where(ConfigBaseline.kind == kind)
    if created_by is not None:
        query = query.where(ConfigBaseline.created_at <= created_by)
    return {attr: value for attr, value in session.execute(query)}


def report(session: Session, station_id: int, kind: str, pairs: Pairs, name: str = "") -> int:
    """Store a station's reported configuration; returns how many differences it now has."""
    check_kind(kind)
    reported = _dedupe(pairs)
    base = baseline(session, kind)
    for attr in reported.keys() - base.keys():
        insert_ignore(
            session,
            ConfigBaseline.__table__,  # type: ignore[arg-type]
            {"kind": kind, "attr": attr, "value": reported[attr], "created_at": utcnow()},
        )
    if reported.keys() - base.keys():
        base = baseline(session, kind)  # another station may have won the race
    wanted: dict[str, str | None] = {
        attr: value for attr, value in reported.items() if base.get(attr) != value
    }
    for attr in base.keys() - reported.keys():
        wanted[attr] = None
    current: dict[str, str | None] = {
        attr: value
        for attr, value in session.execute(
            select(ConfigDifference.attr, ConfigDifference.value).where(
                ConfigDifference.station_id == station_id, ConfigDifference.kind == kind
            )
        )
    }
    stale = [attr for attr in current if attr not in wanted]
    if stale:
        session.execute(
            delete(ConfigDifference).where(
                ConfigDifference.station_id == station_id,
                ConfigDifference.kind == kind,
                ConfigDifference.attr.in_(stale),
            )
        )
    now = utcnow()
    for attr, value in wanted.items():
        if attr in current and current[attr] == value:
            continue
        upsert(
            session,
            ConfigDifference.__table__,  # type: ignore[arg-type]
            {
                "station_id": station_id,
                "kind": kind,
                "attr": attr,
                "value": value,
                "updated_at": now,
            },
            keys=["station_id", "kind", "attr"],
            update=["value", "updated_at"],
        )
    upsert(
        session,
        ConfigReport.__table__,  # type: ignore[arg-type]
        {"station_id": station_id, "kind": kind, "name": name[:64], "reported_at": now},
        keys=["station_id", "kind"],
        update=["name", "reported_at"],
    )
    return len(wanted)


def differences(session: Session, station_id: int, kind: str) -> dict[str, str | None]:
    check_kind(kind)
    rows = session.execute(
        select(ConfigDifference.attr, ConfigDifference.value).where(
            ConfigDifference.station_id == station_id, ConfigDifference.kind == kind
        )
    )
    return {attr: value for attr, value in rows}


def last_report(session: Session, station_id: int, kind: str) -> ConfigReport | None:
    return session.get(ConfigReport, (station_id, kind))


def effective(session: Session, station_id: int, kind: str) -> dict[str, str]:
    check_kind(kind)
    report = last_report(session, station_id, kind)
    if report is None:
        raise NotFoundError(f"station {station_id} has not reported its {kind} yet")
    # Attributes another station added to the baseline after this station's last report are
    # not this station's.
    merged: dict[str, str | None] = {
        **baseline(session, kind, created_by=report.reported_at),
        **differences(session, station_id, kind),
    }
    return {attr: value for attr, value in sorted(merged.items()) if value is not None}


def desired(session: Session, kind: str) -> dict[str, str]:
    check_kind(kind)
    rows = session.execute(
        select(ConfigDesired.attr, ConfigDesired.value).where(ConfigDesired.kind == kind)
    )
    return {attr: value for attr, value in rows}


def set_desired(session: Session, actor: Actor, kind: str, pairs: Pairs) -> dict[str, str]:
    """Replace the configuration pushed to agents (they fetch it with GET)."""
    check_kind(kind)
    wanted = _dedupe(pairs)
    session.execute(delete(ConfigDesired).where(ConfigDesired.kind == kind))
    now = utcnow()
    for attr, value in wanted.items():
        session.add(ConfigDesired(kind=kind, attr=attr, value=value, updated_at=now))
    audit.record(session, actor, "config.desired", kind, attrs=len(wanted))
    return wanted
