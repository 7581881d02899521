"""Sensor policies: the default and each group's, and the effective one of a station.

Precedence, per key (each policy sets only some keys):

1. the policies of the station's groups, the highest ``priority`` first and, between equal
   priorities, the group name in alphabetical order: the first that sets the key wins;
2. the default policy;
3. neither sets it: the key is absent, and the agent keeps its own ``[sensors]`` value from
   agent.toml (and that file's built-in default).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from garrison.common import sensor_policy as rules
from garrison.server.audit import service as audit
from garrison.server.audit.actor import Actor
from garrison.server.errors import InvalidInputError, NotFoundError
from garrison.server.options import service as options
from garrison.server.sensors.models import DEFAULT_SCOPE, SensorPolicy
from garrison.server.stations import service as stations
from garrison.server.stations.models import Group, station_groups
from garrison.server.store.base import utcnow
from garrison.server.store.effects import Signal, signal
from garrison.server.store.upsert import upsert

MIN_PRIORITY, MAX_PRIORITY = -1_000_000, 1_000_000
DEFAULT_SOURCE = "default"
POLICY_MARKER = "sensor_policy"
# What a station's effective policy depends on besides the station: every node watches these
# markers (see garrison.server.sensors.cache).
MARKERS = (POLICY_MARKER, stations.GROUPS_MARKER)


@dataclass(frozen=True)
class Layer:
    """One policy a station's effective policy is made from: ``source`` is "default" or
    "group:NAME"."""

    source: str
    priority: int
    settings: dict[str, Any]


@dataclass(frozen=True)
class Effective:
    settings: dict[str, Any]
    sources: dict[str, str]  # key -> the layer's source
    version: str
    layers: list[str]  # the sources considered, winner first


def checked(settings: Any) -> dict[str, Any]:
    """The settings, validated; a broken one is an InvalidInputError naming the key."""
    try:
        return rules.validate(settings)
    except rules.PolicyError as exc:
        field = "settings" if exc.key == "policy" else f"settings.{exc.key}"
        raise InvalidInputError(f"{field}: {exc.message}", field=field) from None


def _priority(priority: int) -> int:
    if isinstance(priority, bool) or not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise InvalidInputError(
            f"priority must be between {MIN_PRIORITY} and {MAX_PRIORITY}", field="priority"
        )
    return priority


def group_scope(group_id: int) -> str:
    return f"group:{group_id}"


def merge(default: Layer | None, groups: Sequence[Layer]) -> Effective:
    """The effective policy of a station from its layers (see the module's precedence)."""
    ordered = sorted(groups, key=lambda layer: (-layer.priority, layer.source))
    if default is not None:
        ordered.append(default)
    settings: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for layer in ordered:
        for key, value in layer.settings.items():
            if key not in settings:
                settings[key] = value
                sources[key] = layer.source
    settings = {key: settings[key] for key in rules.KEYS if key in settings}
    sources = {key: sources[key] for key in settings}
    return Effective(settings, sources, rules.version(settings), [x.source for x in ordered])


# -- reads -----------------------------------------------------------------------------------


def default_policy(session: Session) -> SensorPolicy | None:
    return session.get(SensorPolicy, DEFAULT_SCOPE)


def group_policy(session: Session, name: str) -> tuple[Group, SensorPolicy | None]:
    group = stations.group_by_name(session, name)
    return group, session.get(SensorPolicy, group_scope(group.id))


def effective(session: Session, station_id: int) -> Effective:
    """One read for the station's group policies, one for the default."""
    rows = session.execute(
        select(Group.name, SensorPolicy.priority, SensorPolicy.settings)
        .join(station_groups, station_groups.c.group_id == Group.id)
        .join(SensorPolicy, SensorPolicy.group_id == Group.id)
        .where(station_groups.c.station_id == station_id)
    ).all()
    groups = [Layer(f"group:{name}", priority, dict(s)) for name, priority, s in rows]
    found = default_policy(session)
    default = Layer(DEFAULT_SOURCE, 0, dict(found.settings)) if found else None
    return merge(default, groups)


def station_effective(session: Session, station_id: int) -> Effective:
    stations.get(session, station_id)  # NotFoundError for an unknown station
    return effective(session, station_id)


def markers(session: Session) -> dict[str, str]:
    return options.read_markers(session, MARKERS)


# -- writes ----------------------------------------------------------------------------------


def _store(
    session: Session,
    actor: Actor,
    scope: str,
    group_id: int | None,
    priority: int,
    settings: dict[str, Any],
) -> SensorPolicy:
    upsert(
        session,
        SensorPolicy.__table__,  # type: ignore[arg-type]
        {
            "scope": scope,
            "group_id": group_id,
            "priority": priority,
            "settings": settings,
            "updated_at": utcnow(),
            "updated_by": actor.username[:64],
        },
        keys=["scope"],
        update=["priority", "settings", "updated_at", "updated_by"],
    )
    stored = session.get(SensorPolicy, scope, populate_existing=True)
    if stored is None:  # the upsert above wrote it in this transaction
        raise NotFoundError(f"sensor policy {scope} vanished")
    _changed(session)
    return stored


def _changed(session: Session) -> None:
    """A policy changed: every node drops its cached effective policies once this commits
    (this one by the signal, the others by the marker)."""
    options.touch_marker(session, POLICY_MARKER)
    signal(session, Signal.SENSOR_POLICY_CHANGED)


def set_default(session: Session, actor: Actor, settings: Any) -> SensorPolicy:
    values = checked(settings)
    stored = _store(session, actor, DEFAULT_SCOPE, None, 0, values)
    audit.record(session, actor, "sensor_policy.set", DEFAULT_SCOPE, keys=sorted(values))
    return stored


def set_group(
    session: Session, actor: Actor, name: str, settings: Any, priority: int = 0
) -> tuple[Group, SensorPolicy]:
    values = checked(settings)
    group = stations.group_by_name(session, name)
    stored = _store(session, actor, group_scope(group.id), group.id, _priority(priority), values)
    audit.record(
        session,
        actor,
        "sensor_policy.set",
        f"group:{group.name}",
        keys=sorted(values),
        priority=priority,
    )
    return group, stored


def unset_group(session: Session, actor: Actor, name: str) -> None:
    group = stations.group_by_name(session, name)
    removed = session.execute(
        delete(SensorPolicy).where(SensorPolicy.scope == group_scope(group.id))
    )
    if not removed.rowcount:  # type: ignore[attr-defined]
        raise NotFoundError(f"group {name!r} has no sensor policy")
    _changed(session)
    audit.record(session, actor, "sensor_policy.unset", f"group:{group.name}")
