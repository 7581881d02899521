"""Stations (enrolled agents) and their groups."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace

import structlog
from sqlalchemy import ColumnElement, Select, and_, bindparam, case, func, not_, or_, select
from sqlalchemy.orm import Session

from garrison.common import geolocation
from garrison.common.tokens import new_token, token_hash
from garrison.common.vocabulary import AgentKind
from garrison.server.audit import service as audit
from garrison.server.audit.actor import Actor
from garrison.server.errors import ConflictError, InvalidInputError, NotFoundError
from garrison.server.events import emitters
from garrison.server.options import service as options
from garrison.server.stations.models import Group, Station, station_groups
from garrison.server.store.base import column_length, utcnow
from garrison.server.store.effects import Signal, signal

log = structlog.get_logger("garrison.stations")


@dataclass(frozen=True)
class Identity:
    """What an agent says about itself in the request envelope."""

    uuid: str
    agent_version: str = ""
    antivirus_name: str = ""
    antivirus_version: str = ""
    os_name: str = ""
    os_platform: str = ""
    hostname: str = ""
    mac: str = ""
    address: str = ""
    agent_kind: str = AgentKind.ARMADITO

    def cleaned(self) -> Identity:
        """As stored: NUL characters removed (PostgreSQL refuses them in text, and an agent
        must still be able to enroll and be recorded when refused) and each value cut to
        its column (:data:`IDENTITY_LENGTHS`)."""
        values = {
            name: getattr(self, name).replace("\x00", "")[:length]
            for name, length in IDENTITY_LENGTHS.items()
        }
        return replace(self, **values)


# The identity a station reports, each value with the length of its column: the one source
# of the limits the agent API applies to them.
IDENTITY_LENGTHS: dict[str, int] = {
    name: column_length(getattr(Station, name))
    for name in (
        "agent_version",
        "antivirus_name",
        "antivirus_version",
        "os_name",
        "os_platform",
        "hostname",
        "mac",
        "address",
    )
}


def enroll(
    session: Session, identity: Identity, enrollment_key_id: int | None
) -> tuple[Station, str, bool]:
    """Create the station, or re-enroll a known uuid keeping its id; issues a new agent token.

    Returns (station, token, created).
    """
    station = session.scalar(select(Station).where(Station.uuid == identity.uuid))
    created = station is None
    if station is None:
        station = Station(uuid=identity.uuid, enrolled_at=utcnow())
        session.add(station)
    else:
        # The new token replaces the old one: no node may keep trusting the old one.
        credentials_revoked(session, (station.id,))
    token = new_token("gst")
    station.token_hash = token_hash(token)
    station.enrollment_key_id = enrollment_key_id
    station.agent_kind = identity.agent_kind
    station.last_seen = utcnow()
    clean = identity.cleaned()
    for name in IDENTITY_LENGTHS:
        value = getattr(clean, name)
        if value:
            setattr(station, name, value)
    session.flush()
    return station, token, created


def get(session: Session, station_id: int) -> Station:
    station = session.get(Station, station_id)
    if station is None:
        raise NotFoundError(f"no station {station_id}")
    return station


def by_uuid(session: Session, uuid: str) -> Station | None:
    return session.scalar(select(Station).where(Station.uuid == uuid))


# The station (id, uuid, 1 when denied else 0) holding an agent token, by the token's hash
# (bind ``digest``).  The denial is an integer: the read returns driver values undecoded.
BY_TOKEN_HASH = select(
    Station.id, Station.uuid, case((Station.denied_at.is_(None), 0), else_=1).label("denied")
).where(Station.token_hash == bindparam("digest", type_=Station.token_hash.type))


# Every allowed station's token, for the token cache's bulk load (credentials.py): the
# stations seen last first, so a capped load keeps the active part of the fleet.
ALLOWED_TOKENS = (
    select(Station.token_hash, Station.id, Station.uuid)
    .where(Station.denied_at.is_(None), Station.token_hash.is_not(None))
    .order_by(Station.last_seen.desc())
)


def allowed_tokens(session: Session, limit: int) -> list[tuple[str, int, str]]:
    """(token hash, station id, uuid) of up to ``limit`` allowed stations."""
    rows = session.execute(ALLOWED_TOKENS.limit(limit))
    return [(str(h), int(i), str(u)) for h, i, u in rows]


def is_online(station: Station, offline_after: int, seen: dt.datetime | None = None) -> bool:
    """Connected (neither timed out nor shut down) and seen within the timeout.  ``seen``: a
    check-in this node has noted but not yet written (see PresenceTracker); one after the
    stored ``last_seen`` is a return, even before the flush marks the station connected."""
    back = seen is not None and seen > station.last_seen
    last_seen = seen if back and seen is not None else station.last_seen
    cutoff = utcnow() - dt.timedelta(seconds=offline_after)
    return (station.connected or back) and last_seen >= cutoff


def _online(offline_after: int) -> ColumnElement[bool]:
    """The SQL form of :func:`is_online` for stored check-ins."""
    cutoff = utcnow() - dt.timedelta(seconds=offline_after)
    return and_(Station.connected.is_(True), Station.last_seen >= cutoff)


def counts(session: Session, offline_after: int) -> tuple[int, int]:
    """How many stations are enrolled, and how many of them are online."""
    total = session.scalar(select(func.count(Station.id))) or 0
    online = session.scalar(select(func.count(Station.id)).where(_online(offline_after))) or 0
    return int(total), int(online)


@dataclass(frozen=True)
class StationFilter:
    search: str | None = None
    group: str | None = None
    online: bool | None = None
    os_name: str | None = None
    antivirus: str | None = None
    agent_kind: str | None = None


def _filtered(query: Select[Station], f: StationFilter, offline_after: int) -> Select[Station]:
    if f.search:
        query = query.where(
            or_(
                Station.hostname.icontains(f.search, autoescape=True),
                Station.uuid.icontains(f.search, autoescape=True),
                Station.address.icontains(f.search, autoescape=True),
            )
        )
    if f.group:
        query = query.where(
            Station.id.in_(
                select(station_groups.c.station_id)
                .join(Group, Group.id == station_groups.c.group_id)
                .where(Group.name == f.group)
            )
        )
    if f.online is not None:
        online = _online(offline_after)
        query = query.where(online if f.online else not_(online))
    if f.os_name:
        query = query.where(Station.os_name == f.os_name)
    if f.antivirus:
        query = query.where(Station.antivirus_name == f.antivirus)
    if f.agent_kind:
        query = query.where(Station.agent_kind == f.agent_kind)
    return query


# The orders a list may take; each column is indexed, so that a page of 100,000 stations
# is read from the index, not sorted (the id breaks ties between equal values).
SORTS = {"id": Station.id, "hostname": Station.hostname, "last_seen": Station.last_seen}


def search(
    session: Session,
    f: StationFilter,
    offline_after: int,
    limit: int,
    offset: int,
    sort: str = "id",
    descending: bool = False,
) -> tuple[list[Station], int]:
    column = SORTS.get(sort)
    if column is None:
        raise InvalidInputError(f"sort must be one of {', '.join(SORTS)}", field="sort")
    order = [column.desc(), Station.id.desc()] if descending else [column, Station.id]
    total = session.scalar(
        _filtered(select(Station), f, offline_after).with_only_columns(func.count(Station.id))
    )
    rows = session.scalars(
        _filtered(select(Station), f, offline_after).order_by(*order).limit(limit).offset(offset)
    )
    return list(rows), int(total or 0)


def delete(session: Session, actor: Actor, station_id: int) -> None:
    station = get(session, station_id)
    audit.record(session, actor, "station.delete", str(station_id), uuid=station.uuid)
    emitters.station_deleted(session, station_id, actor.username)
    remove(session, station)


def allow(session: Session, actor: Actor, station_id: int) -> bool:
    """Lift the station's denial (see ``stations/transitions.py``); returns whether it was
    denied.  Its next return runs the authorization procedure again, as every return does."""
    station = get(session, station_id)
    was_denied = station.denied_at is not None
    audit.record(
        session, actor, "station.allow", str(station_id), uuid=station.uuid, was_denied=was_denied
    )
    station.denied_at = None
    return was_denied


def check_location(latitude: object, longitude: object) -> tuple[float, float] | None:
    """Both coordinates checked (range, at most six decimals: ``DD.DDDDDD``), or None for
    both null; raises InvalidInputError naming the field."""
    try:
        return geolocation.location(latitude, longitude)
    except geolocation.CoordinateError as exc:
        raise InvalidInputError(str(exc), field=exc.field) from None


def set_location(
    session: Session, station: Station, place: tuple[float, float] | None, by: str
) -> bool:
    """Set the station's location (None: unknown); when it changes to a known place,
    ``station_geolocation_changed`` is emitted, in this transaction.  Returns whether it
    changed."""
    before = (
        (station.latitude, station.longitude)
        if station.latitude is not None and station.longitude is not None
        else None
    )
    if place == before:
        return False
    station.latitude, station.longitude = place if place is not None else (None, None)
    if place is not None:
        emitters.station_geolocation_changed(session, station, *place)
    log_place = [geolocation.formatted(v) for v in place] if place else None
    log.info("station location changed", station_id=station.id, location=log_place, by=by)
    return True


def locate(
    session: Session, actor: Actor, station_id: int, latitude: object, longitude: object
) -> bool:
    """An administrator sets (or, with both null, clears) a station's location; audited
    (``station.location``) whether or not it changed."""
    place = check_location(latitude, longitude)
    station = get(session, station_id)
    changed = set_location(session, station, place, actor.username)
    audit.record(
        session,
        actor,
        "station.location",
        str(station_id),
        latitude=place[0] if place else None,
        longitude=place[1] if place else None,
        changed=changed,
    )
    return changed


def remove(session: Session, station: Station) -> None:
    """Delete a station (its rows go with it); at commit its cached tokens stop holding on
    this process, and on the others within ``token_watch_seconds``."""
    session.delete(station)
    credentials_revoked(session, (station.id,))


CREDENTIALS_MARKER = "credentials"


def credentials_revoked(session: Session, station_ids: Iterable[int]) -> None:
    """These stations' tokens stop holding once this commits: at once in this process
    (``Signal.STATION_CREDENTIALS_REVOKED``), and in every other worker and node when its
    watcher sees the ``credentials`` marker move (``credentials.AgentAuthenticator``)."""
    signal(session, Signal.STATION_CREDENTIALS_REVOKED, tuple(station_ids))
    options.touch_marker(session, CREDENTIALS_MARKER)


def credentials_marker(session: Session) -> str | None:
    return options.read_markers(session, (CREDENTIALS_MARKER,)).get(CREDENTIALS_MARKER)


# Groups ------------------------------------------------------------------------------------


def list_groups(session: Session) -> list[tuple[Group, int]]:
    counts = (
        select(station_groups.c.group_id, func.count().label("n"))
        .group_by(station_groups.c.group_id)
        .subquery()
    )
    rows = session.execute(
        select(Group, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.group_id == Group.id)
        .order_by(Group.name)
    )
    return [(group, int(n)) for group, n in rows]


def group_by_name(session: Session, name: str) -> Group:
    group = session.scalar(select(Group).where(Group.name == name))
    if group is None:
        raise NotFoundError(f"no group {name!r}")
    return group


def create_group(session: Session, actor: Actor, name: str, description: str = "") -> Group:
    name = name.strip()
    if not 1 <= len(name) <= 128:
        raise InvalidInputError("group name must be 1-128 characters", field="name")
    if session.scalar(select(Group.id).where(Group.name == name)) is not None:
        raise ConflictError(f"group {name!r} already exists", field="name")
    group = Group(name=name, description=description[:255])
    session.add(group)
    session.flush()
    audit.record(session, actor, "group.create", name)
    return group


def delete_group(session: Session, actor: Actor, name: str) -> None:
    # The content slice imports this module: imported here, not at the top.
    from garrison.server.content import service as content

    group = group_by_name(session, name)
    had_content = content.drop_group_assignment(session, group.id)
    members = group_station_ids(session, group.id)
    session.delete(group)
    session.flush()
    audit.record(session, actor, "group.delete", name)
    if had_content:
        content.bump(session, "group-deleted")
    groups_changed(session, members)


GROUPS_MARKER = "groups"


def groups_changed(session: Session, station_ids: Iterable[int]) -> None:
    """These stations' groups changed in this transaction: what other slices derive from
    the groups (the effective sensor policy) is dropped at commit on this node
    (``Signal.GROUPS_CHANGED``) and, through the ``groups`` marker, on the others."""
    options.touch_marker(session, GROUPS_MARKER)
    signal(session, Signal.GROUPS_CHANGED, station_ids)


def group_station_ids(session: Session, group_id: int) -> list[int]:
    return list(
        session.scalars(
            select(station_groups.c.station_id).where(station_groups.c.group_id == group_id)
        )
    )


def set_membership(
    session: Session, actor: Actor, name: str, add: list[int], remove: list[int]
) -> list[int]:
    group = group_by_name(session, name)
    wanted = set(add)
    known = set(session.scalars(select(Station.id).where(Station.id.in_(wanted | set(remove)))))
    missing = sorted((wanted | set(remove)) - known)
    if missing:
        raise NotFoundError(f"no station {', '.join(map(str, missing))}", field="station_ids")
    members = set(group_station_ids(session, group.id))
    to_add = wanted - members
    to_remove = set(remove) & members
    if to_add:
        session.execute(
            station_groups.insert(), [{"station_id": s, "group_id": group.id} for s in to_add]
        )
    if to_remove:
        session.execute(
            station_groups.delete().where(
                station_groups.c.group_id == group.id,
                station_groups.c.station_id.in_(to_remove),
            )
        )
    audit.record(
        session, actor, "group.membership", name, added=sorted(to_add), removed=sorted(to_remove)
    )
    if to_add or to_remove:
        # The content slice imports this module: imported here, not at the top.
        from garrison.server.content import service as content

        content.membership_changed(session, [group.id])
        groups_changed(session, to_add | to_remove)
    session.expire_all()
    return sorted((members | to_add) - to_remove)


@dataclass(frozen=True)
class ExportInfo:
    """What an exported event says of its station."""

    uuid: str
    hostname: str
    address: str
    groups: frozenset[str] = frozenset()
    os_name: str = ""
    group: str = ""  # the first of its groups by name, "" for none
    group_description: str = ""


def export_info(session: Session, ids: Collection[int], with_groups: bool) -> dict[int, ExportInfo]:
    """Stations by id (those still enrolled), with their group names when asked for."""
    if not ids:
        return {}
    groups: dict[int, dict[str, str]] = {}
    if with_groups:
        for sid, name, description in session.execute(
            select(station_groups.c.station_id, Group.name, Group.description)
            .join(Group, Group.id == station_groups.c.group_id)
            .where(station_groups.c.station_id.in_(ids))
        ):
            groups.setdefault(sid, {})[name] = description or ""
    out: dict[int, ExportInfo] = {}
    for sid, uuid, hostname, address, os_name in session.execute(
        select(Station.id, Station.uuid, Station.hostname, Station.address, Station.os_name).where(
            Station.id.in_(ids)
        )
    ):
        mine = groups.get(sid, {})
        first = min(mine, default="")
        out[sid] = ExportInfo(
            uuid, hostname, address, frozenset(mine), os_name or "", first, mine.get(first, "")
        )
    return out


def by_ids(session: Session, ids: Collection[int]) -> list[Station]:
    if not ids:
        return []
    return list(session.scalars(select(Station).where(Station.id.in_(list(ids)))))
