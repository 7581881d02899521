"""The content repository: rule sets and versions, assignments, the serial and its
snapshots, keys, and the manifests built from them (docs/content.md).

The serial: every change that can alter a station's bundle (a new version, an assignment,
a group's membership or deletion, a key rotation) bumps the server-wide ``serial`` in its
own transaction (``bump``) and stores a *snapshot*: for every scope (the default, each
group with an assignment) the files it resolves to at that serial.  A station's manifest
at a serial is its scope's entry of that snapshot, so manifests never change under an
agent, and a station may still fetch the files of the last few serials' manifests.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session, defer

from garrison.common.vocabulary import AgentKind
from garrison.server.audit import service as audit
from garrison.server.audit.actor import Actor
from garrison.server.content import formats
from garrison.server.content.models import (
    DEFAULT_SCOPE,
    SERVER_ROW,
    ContentAssignment,
    ContentKey,
    ContentSerial,
    ContentServer,
    RuleSet,
    RuleVersion,
)
from garrison.server.errors import ConflictError, InvalidInputError, NotFoundError
from garrison.server.states.models import StationState
from garrison.server.stations import service as stations
from garrison.server.stations.models import Group, Station, station_groups
from garrison.server.store.base import utcnow
from garrison.server.store.effects import Signal, signal
from garrison.server.store.upsert import insert_ignore, upsert

log = structlog.get_logger("garrison.content")

# Snapshots kept: the current serial and the ones a station may still fetch files of.
PREVIOUS_SERIALS = 8
KEEP_SERIALS = PREVIOUS_SERIALS + 1
MAX_COMMENT = 1024
# Rule sets every scope gets whatever its assignment lists (the fleet block list, which
# garrison blocklist / POST /admin/v1/blocklist write: content/blocklist.py; the device
# rules of /admin/v1/device-rules: content/devicerules.py).
FLEET_RULESETS = ("blocklist", "device-rules")
MIN_PRIORITY, MAX_PRIORITY = -1_000_000, 1_000_000
MAX_ASSIGNED = 1000
MIN_OVERLAP_HOURS, MAX_OVERLAP_HOURS = 0, 24 * 366
UNSIGNED_WARNING = (
    "stations of this scope accept unsigned or plain-HTTP UpdateSignatures sources: "
    "content that no key signed can reach them"
)


def rfc3339(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def group_scope(group_id: int) -> str:
    return f"group:{group_id}"


# -- the server row and keys -----------------------------------------------------------------


def server_row(session: Session) -> ContentServer:
    row = session.get(ContentServer, SERVER_ROW)
    if row is None:
        raise NotFoundError("the content state is not initialised (run the server once)")
    return row


def ensure_initialised(session: Session, public_key_b64: str, key_id: str) -> bool:
    """The server row (a new ``server_id``, serial 1), this node's key as the first one,
    and serial 1's snapshot, each unless already there; True when anything was written."""
    wrote = insert_ignore(
        session,
        ContentServer.__table__,  # type: ignore[arg-type]
        {"id": SERVER_ROW, "server_id": str(uuid.uuid4()), "serial": 1, "serial_at": utcnow()},
    )
    if session.scalar(select(func.count()).select_from(ContentKey)) == 0:
        wrote += insert_ignore(
            session,
            ContentKey.__table__,  # type: ignore[arg-type]
            {"key_id": key_id, "public_key": public_key_b64, "created_at": utcnow()},
        )
    row = server_row(session)
    if session.get(ContentSerial, row.serial) is None:
        wrote += insert_ignore(
            session,
            ContentSerial.__table__,  # type: ignore[arg-type]
            {
                "serial": row.serial,
                "issued": row.serial_at,
                "reason": "initial",
                "key_id": current_key(session).key_id,
                "snapshot": compute_snapshot(session),
            },
        )
    return bool(wrote)


def current_key(session: Session) -> ContentKey:
    key = session.scalar(
        select(ContentKey).where(ContentKey.retired_at.is_(None)).order_by(ContentKey.created_at)
    )
    if key is None:
        raise NotFoundError("no content key yet (run the server once)")
    return key


def valid_keys(session: Session, now: dt.datetime | None = None) -> list[ContentKey]:
    """Every key an agent should accept now: the current one and those in their overlap."""
    now = now or utcnow()
    keys = session.scalars(select(ContentKey).order_by(ContentKey.created_at)).all()
    return [k for k in keys if k.valid_until is None or k.valid_until > now]


def all_keys(session: Session) -> list[ContentKey]:
    return list(session.scalars(select(ContentKey).order_by(ContentKey.created_at)))


def rotations(session: Session) -> list[dict[str, Any]]:
    """Every rotation statement issued, oldest first."""
    return [dict(k.statement) for k in all_keys(session) if k.statement is not None]


def rotation_statement(
    old_key_id: str, new_key_id: str, new_public_b64: str, issued: dt.datetime, until: dt.datetime
) -> dict[str, Any]:
    return {
        "type": "key-rotation",
        "old_key_id": old_key_id,
        "new_key_id": new_key_id,
        "new_public_key": new_public_b64,
        "issued": rfc3339(issued),
        "old_key_valid_until": rfc3339(until),
    }


def overlap_hours(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError("overlap_hours must be a whole number", field="overlap_hours")
    if not MIN_OVERLAP_HOURS <= value <= MAX_OVERLAP_HOURS:
        raise InvalidInputError(
            f"overlap_hours must be between {MIN_OVERLAP_HOURS} and {MAX_OVERLAP_HOURS}",
            field="overlap_hours",
        )
    return value


def record_rotation(
    session: Session,
    actor: Actor,
    old_key_id: str,
    new_key_id: str,
    new_public_b64: str,
    signed_statement: dict[str, Any],
    until: dt.datetime,
) -> None:
    old = session.get(ContentKey, old_key_id, with_for_update=True)
    if old is None or old.retired_at is not None:
        raise ConflictError("the content key changed meanwhile (another rotation?)")
    now = utcnow()
    old.retired_at = now
    old.valid_until = until
    session.add(
        ContentKey(
            key_id=new_key_id,
            public_key=new_public_b64,
            created_at=now,
            statement=signed_statement,
        )
    )
    session.flush()
    audit.record(
        session,
        actor,
        "content.key_rotate",
        new_key_id,
        old_key_id=old_key_id,
        old_key_valid_until=rfc3339(until),
    )
    bump(session, "key-rotation")


def expired_key_ids(session: Session, now: dt.datetime | None = None) -> list[str]:
    now = now or utcnow()
    return [
        k.key_id for k in all_keys(session) if k.valid_until is not None and k.valid_until <= now
    ]


# -- the serial and its snapshots ------------------------------------------------------------


def _file_entry(ruleset: RuleSet, found: Any) -> dict[str, Any]:
    return {
        "name": formats.file_name(ruleset.name, found.ext),
        "ruleset": ruleset.name,
        "kind": ruleset.kind,
        "version": int(found.version),
        "sha256": found.sha256,
        "size": int(found.size),
        "records": int(found.records),
    }


def compute_snapshot(session: Session) -> dict[str, Any]:
    """Every scope's resolved files and policy, as of this transaction."""
    rulesets = {r.id: r for r in session.scalars(select(RuleSet)).all() if r.latest > 0}
    by_name = {r.name: r for r in rulesets.values()}
    rows = session.execute(
        select(
            RuleVersion.ruleset_id,
            RuleVersion.version,
            RuleVersion.sha256,
            RuleVersion.size,
            RuleVersion.records,
            RuleVersion.ext,
            RuleVersion.approved_at,
        )
    ).all()
    # A script version enters manifests only once approved (the approved script library):
    # its "latest" is its newest approved version, an unapproved pinned one is left out.
    scripts = {r.id for r in rulesets.values() if r.kind == "script"}
    versions = {
        (row.ruleset_id, row.version): row
        for row in rows
        if row.ruleset_id not in scripts or row.approved_at is not None
    }
    latest_of = {r.id: r.latest for r in rulesets.values() if r.id not in scripts}
    for (ruleset_id, number), _row in versions.items():
        if ruleset_id in scripts:
            latest_of[ruleset_id] = max(latest_of.get(ruleset_id, 0), number)
    assignments = list(session.scalars(select(ContentAssignment)))
    groups = {
        g.id: g.name
        for g in session.scalars(
            select(Group).where(Group.id.in_([a.group_id for a in assignments if a.group_id]))
        )
    }

    def resolve(rules: list[Any] | None) -> list[dict[str, Any]]:
        wanted: list[tuple[RuleSet, int]] = []
        if rules is None:
            wanted = [(r, latest_of.get(r.id, 0)) for r in rulesets.values()]
        else:
            for item in rules:
                ruleset = by_name.get(str(item.get("name")))
                if ruleset is None:
                    continue
                pinned = item.get("version", "latest")
                latest = latest_of.get(ruleset.id, 0)
                wanted.append((ruleset, latest if pinned == "latest" else int(pinned)))
            named = {str(item.get("name")) for item in rules}
            # Fleet-wide rule sets reach every scope, at their latest unless pinned there.
            wanted += [
                (by_name[n], latest_of.get(by_name[n].id, 0))
                for n in FLEET_RULESETS
                if n in by_name and n not in named
            ]
        files = []
        for ruleset, version in wanted:
            found = versions.get((ruleset.id, version))
            if found is not None:
                files.append(_file_entry(ruleset, found))
        return sorted(files, key=lambda f: f["name"])

    scopes: dict[str, Any] = {
        DEFAULT_SCOPE: {"group": None, "priority": 0, "allow_unsigned_sources": False, "files": []}
    }
    default_rules: list[Any] | None = None
    for a in assignments:
        if a.scope == DEFAULT_SCOPE:
            default_rules = a.rules
            scopes[DEFAULT_SCOPE]["allow_unsigned_sources"] = a.allow_unsigned_sources
        elif a.group_id in groups:
            scopes[a.scope] = {
                "group": groups[a.group_id],
                "priority": a.priority,
                "allow_unsigned_sources": a.allow_unsigned_sources,
                "files": resolve(a.rules),
            }
    scopes[DEFAULT_SCOPE]["files"] = resolve(default_rules)
    return {"scopes": scopes}


def bump(session: Session, reason: str) -> int:
    """The next serial, with its snapshot, in this transaction; returns it."""
    now = utcnow()
    serial = session.execute(
        update(ContentServer)
        .where(ContentServer.id == SERVER_ROW)
        .values(serial=ContentServer.serial + 1, serial_at=now)
        .returning(ContentServer.serial)
    ).scalar_one_or_none()
    if serial is None:
        # Not initialised yet: the first start's serial 1 is built from the state then.
        return 0
    session.add(
        ContentSerial(
            serial=serial,
            issued=now,
            reason=reason[:64],
            key_id=current_key(session).key_id,
            snapshot=compute_snapshot(session),
        )
    )
    session.execute(delete(ContentSerial).where(ContentSerial.serial <= serial - KEEP_SERIALS))
    signal(session, Signal.CONTENT_CHANGED)
    return int(serial)


def membership_changed(session: Session, group_ids: Iterable[int]) -> None:
    """Stations joined or left these groups (or the groups went): a new serial when one of
    them has an assignment, since its stations' bundles may change."""
    ids = list(group_ids)
    if not ids:
        return
    assigned = session.scalar(
        select(func.count())
        .select_from(ContentAssignment)
        .where(ContentAssignment.group_id.in_(ids))
    )
    if assigned:
        bump(session, "group-membership")


def drop_group_assignment(session: Session, group_id: int) -> bool:
    """A group is being deleted: its assignment goes with it; True when it had one (the
    caller bumps the serial once the group is gone)."""
    removed = session.execute(
        delete(ContentAssignment).where(ContentAssignment.group_id == group_id)
    )
    return bool(removed.rowcount)  # type: ignore[attr-defined]


def snapshots(session: Session, serials: Sequence[int]) -> dict[int, ContentSerial]:
    rows = session.scalars(select(ContentSerial).where(ContentSerial.serial.in_(list(serials))))
    return {row.serial: row for row in rows}


def latest_snapshots(session: Session, count: int) -> list[ContentSerial]:
    return list(
        session.scalars(select(ContentSerial).order_by(ContentSerial.serial.desc()).limit(count))
    )


# -- manifests -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StationView:
    """What a station's manifest depends on besides the serial: is it a Garrison agent,
    and the (group id, name) pairs it belongs to."""

    garrison: bool
    groups: tuple[tuple[int, str], ...]


def station_view(session: Session, station_id: int) -> StationView | None:
    kind = session.scalar(select(Station.agent_kind).where(Station.id == station_id))
    if kind is None:
        return None
    groups = session.execute(
        select(Group.id, Group.name)
        .join(station_groups, station_groups.c.group_id == Group.id)
        .where(station_groups.c.station_id == station_id)
    ).all()
    return StationView(kind == AgentKind.GARRISON, tuple((int(i), str(n)) for i, n in groups))


def station_kinds(session: Session, limit: int) -> list[tuple[int, bool]]:
    """(station id, is a Garrison agent) of up to ``limit`` stations, seen last first."""
    rows = session.execute(
        select(Station.id, Station.agent_kind).order_by(Station.last_seen.desc()).limit(limit)
    )
    return [(int(sid), kind == AgentKind.GARRISON) for sid, kind in rows]


def groups_of(
    session: Session, station_ids: Sequence[int]
) -> dict[int, tuple[tuple[int, str], ...]]:
    """Each station's (group id, name) pairs, for these stations (in chunks: SQLite's
    bound-parameter limit)."""
    found: dict[int, list[tuple[int, str]]] = {}
    for start in range(0, len(station_ids), 5000):
        chunk = station_ids[start : start + 5000]
        rows = session.execute(
            select(station_groups.c.station_id, Group.id, Group.name)
            .join(Group, station_groups.c.group_id == Group.id)
            .where(station_groups.c.station_id.in_(chunk))
        )
        for sid, gid, name in rows:
            found.setdefault(int(sid), []).append((int(gid), str(name)))
    return {sid: tuple(pairs) for sid, pairs in found.items()}


def scope_of(snapshot: dict[str, Any], groups: Iterable[tuple[int, str]]) -> str:
    """The scope whose bundle a station with these groups gets: its groups' assignments,
    the highest priority first, then the group name; else the default."""
    scopes = snapshot.get("scopes", {})
    candidates = [
        (-int(scopes[group_scope(gid)]["priority"]), name, group_scope(gid))
        for gid, name in groups
        if group_scope(gid) in scopes
    ]
    return min(candidates)[2] if candidates else DEFAULT_SCOPE


def manifest(server_id: str, row: ContentSerial, scope: str) -> dict[str, Any]:
    entry = row.snapshot["scopes"].get(scope) or row.snapshot["scopes"][DEFAULT_SCOPE]
    return {
        "format": 1,
        "server_id": server_id,
        "serial": row.serial,
        "issued": rfc3339(row.issued),
        "station_group": entry["group"],
        "policy": {"allow_unsigned_sources": bool(entry["allow_unsigned_sources"])},
        "files": list(entry["files"]),
    }


# -- rule sets -------------------------------------------------------------------------------


def _name(name: Any) -> str:
    if not isinstance(name, str) or not formats.NAME.match(name):
        raise InvalidInputError("name must be 1-64 characters of A-Z a-z 0-9 . _ -", field="name")
    return name


def _kind(kind: Any) -> str:
    if kind not in formats.KINDS:
        raise InvalidInputError(f"kind must be one of {', '.join(formats.KINDS)}", field="kind")
    return str(kind)


def ruleset_by_name(session: Session, name: str) -> RuleSet:
    found = session.scalar(select(RuleSet).where(RuleSet.name == name))
    if found is None:
        raise NotFoundError(f"no rule set {name!r}")
    return found


def list_rulesets(session: Session, kind: str | None = None) -> list[tuple[RuleSet, RuleVersion]]:
    query = (
        select(RuleSet, RuleVersion)
        .join(
            RuleVersion,
            (RuleVersion.ruleset_id == RuleSet.id) & (RuleVersion.version == RuleSet.latest),
        )
        .options(defer(RuleVersion.content))
        .order_by(RuleSet.name)
    )
    if kind:
        query = query.where(RuleSet.kind == _kind(kind))
    return [(r, v) for r, v in session.execute(query).all()]


def version_of(
    session: Session, name: str, version: int | None = None
) -> tuple[RuleSet, RuleVersion]:
    ruleset = ruleset_by_name(session, name)
    number = ruleset.latest if version is None else version
    found = session.get(RuleVersion, (ruleset.id, number))
    if found is None:
        raise NotFoundError(f"rule set {name!r} has no version {number}", field="version")
    return ruleset, found


def versions(session: Session, name: str) -> tuple[RuleSet, list[RuleVersion]]:
    ruleset = ruleset_by_name(session, name)
    rows = session.scalars(
        select(RuleVersion)
        .options(defer(RuleVersion.content))
        .where(RuleVersion.ruleset_id == ruleset.id)
        .order_by(RuleVersion.version.desc())
    ).all()
    return ruleset, list(rows)


@dataclass(frozen=True)
class Added:
    ruleset: RuleSet
    version: RuleVersion
    created: bool  # False: the content equals the latest version's


def add_version(
    session: Session, actor: Actor, kind: Any, name: Any, content: Any, comment: Any = ""
) -> Added:
    """Validate and store ``content`` as the next version of ``name`` (created if new);
    the same content as the latest version is that version (nothing new)."""
    name = _name(name)
    kind = _kind(kind)
    if not isinstance(content, str):
        raise InvalidInputError("content must be text", field="content")
    if comment is None:
        comment = ""
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT:
        raise InvalidInputError(f"comment must be text of at most {MAX_COMMENT}", field="comment")
    ruleset = session.scalar(select(RuleSet).where(RuleSet.name == name).with_for_update())
    if ruleset is not None and ruleset.kind != kind:
        raise ConflictError(
            f"rule set {name!r} is of kind {ruleset.kind}, not {kind}", field="kind"
        )
    data = content.encode("utf-8")
    digest = sha256_hex(data)
    if ruleset is not None and ruleset.latest:
        latest = session.scalar(
            select(RuleVersion)
            .options(defer(RuleVersion.content))
            .where(RuleVersion.ruleset_id == ruleset.id, RuleVersion.version == ruleset.latest)
        )
        if latest is not None and latest.sha256 == digest:
            return Added(ruleset, latest, False)
    try:
        checked = formats.check(kind, content)
    except formats.FormatError as exc:
        raise InvalidInputError(f"content: {exc.message}", field="content") from None
    if ruleset is None:
        insert_ignore(
            session,
            RuleSet.__table__,  # type: ignore[arg-type]
            {
                "name": name,
                "kind": kind,
                "latest": 0,
                "created_at": utcnow(),
                "created_by": actor.username[:64],
            },
        )
        ruleset = session.scalar(select(RuleSet).where(RuleSet.name == name).with_for_update())
        if ruleset is None or ruleset.kind != kind:
            raise ConflictError(f"rule set {name!r} was just made with another kind", field="kind")
    number = ruleset.latest + 1
    version = RuleVersion(
        ruleset_id=ruleset.id,
        version=number,
        sha256=digest,
        size=len(data),
        records=checked.records,
        ext=checked.ext,
        content=content,
        comment=comment,
        author=actor.username[:64],
        created_at=utcnow(),
        meta=checked.meta,
    )
    session.add(version)
    ruleset.latest = number
    session.flush()
    audit.record(
        session,
        actor,
        "content.rule_add",
        name,
        kind=kind,
        version=number,
        sha256=digest,
        records=checked.records,
    )
    bump(session, "new-version")
    return Added(ruleset, version, True)


def diff(
    session: Session, name: str, old: int, new: int | None = None
) -> tuple[RuleSet, RuleVersion, RuleVersion, list[str]]:
    """A unified diff of two versions' content."""
    ruleset, a = version_of(session, name, old)
    _, b = version_of(session, name, new)
    lines = list(
        difflib.unified_diff(
            a.content.splitlines(),
            b.content.splitlines(),
            fromfile=f"{name}@{a.version}",
            tofile=f"{name}@{b.version}",
            lineterm="",
        )
    )
    return ruleset, a, b, lines


# -- assignments -----------------------------------------------------------------------------


def _rules(session: Session, rules: Any) -> list[dict[str, Any]] | None:
    if rules is None:
        return None
    if not isinstance(rules, list) or len(rules) > MAX_ASSIGNED:
        raise InvalidInputError(
            f"rules must be null (every rule set at latest) or a list of at most {MAX_ASSIGNED}",
            field="rules",
        )
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, item in enumerate(rules):
        field = f"rules.{i}"
        if not isinstance(item, dict):
            raise InvalidInputError(f"{field} must be an object {{name, version}}", field=field)
        name = item.get("name")
        if not isinstance(name, str):
            raise InvalidInputError(f"{field}.name must be a rule set name", field=field)
        if name in seen:
            raise InvalidInputError(f"{field}: rule set {name!r} is given twice", field=field)
        seen.add(name)
        ruleset = session.scalar(select(RuleSet).where(RuleSet.name == name))
        if ruleset is None:
            raise NotFoundError(f"{field}: no rule set {name!r}", field=field)
        version = item.get("version", "latest")
        if version != "latest":
            if isinstance(version, bool) or not isinstance(version, int):
                raise InvalidInputError(
                    f'{field}.version must be "latest" or a version number', field=field
                )
            if session.get(RuleVersion, (ruleset.id, version)) is None:
                raise NotFoundError(
                    f"{field}: rule set {name!r} has no version {version}", field=field
                )
        out.append({"name": name, "version": version})
    return out


def assignment(session: Session, scope: str) -> ContentAssignment | None:
    return session.get(ContentAssignment, scope)


def group_assignment(session: Session, name: str) -> tuple[Group, ContentAssignment | None]:
    group = stations.group_by_name(session, name)
    return group, session.get(ContentAssignment, group_scope(group.id))


def list_assignments(session: Session) -> list[tuple[ContentAssignment, str | None]]:
    rows = session.execute(
        select(ContentAssignment, Group.name)
        .outerjoin(Group, Group.id == ContentAssignment.group_id)
        .order_by(ContentAssignment.scope)
    ).all()
    return [(a, n) for a, n in rows]


def set_assignment(
    session: Session,
    actor: Actor,
    group: str | None,
    rules: Any,
    allow_unsigned_sources: Any = False,
    priority: Any = 0,
) -> ContentAssignment:
    """The default assignment (``group`` None) or a group's; audited, a new serial."""
    if not isinstance(allow_unsigned_sources, bool):
        raise InvalidInputError(
            "allow_unsigned_sources must be true or false", field="allow_unsigned_sources"
        )
    if (
        isinstance(priority, bool)
        or not isinstance(priority, int)
        or not (MIN_PRIORITY <= priority <= MAX_PRIORITY)
    ):
        raise InvalidInputError(
            f"priority must be between {MIN_PRIORITY} and {MAX_PRIORITY}", field="priority"
        )
    checked = _rules(session, rules)
    group_id: int | None = None
    scope, target = DEFAULT_SCOPE, DEFAULT_SCOPE
    if group is not None:
        found = stations.group_by_name(session, group)
        group_id, scope, target = found.id, group_scope(found.id), f"group:{found.name}"
    before = session.get(ContentAssignment, scope)
    was_unsigned = before.allow_unsigned_sources if before is not None else False
    upsert(
        session,
        ContentAssignment.__table__,  # type: ignore[arg-type]
        {
            "scope": scope,
            "group_id": group_id,
            "priority": priority if group is not None else 0,
            "rules": checked,
            "allow_unsigned_sources": allow_unsigned_sources,
            "updated_at": utcnow(),
            "updated_by": actor.username[:64],
        },
        keys=["scope"],
        update=["priority", "rules", "allow_unsigned_sources", "updated_at", "updated_by"],
    )
    stored = session.get(ContentAssignment, scope, populate_existing=True)
    if stored is None:
        raise NotFoundError(f"assignment {scope} vanished")
    audit.record(
        session,
        actor,
        "content.assign",
        target,
        rules=checked if checked is not None else "every rule set at latest",
        allow_unsigned_sources=allow_unsigned_sources,
    )
    if allow_unsigned_sources and not was_unsigned:
        audit.record(
            session, actor, "content.unsigned_sources_allowed", target, warning=UNSIGNED_WARNING
        )
        log.warning("unsigned content sources allowed", scope=target, actor=actor.username)
    bump(session, "assignment")
    return stored


def unset_group_assignment(session: Session, actor: Actor, name: str) -> None:
    group = stations.group_by_name(session, name)
    removed = session.execute(
        delete(ContentAssignment).where(ContentAssignment.scope == group_scope(group.id))
    )
    if not removed.rowcount:  # type: ignore[attr-defined]
        raise NotFoundError(f"group {name!r} has no content assignment")
    audit.record(session, actor, "content.unassign", f"group:{group.name}")
    bump(session, "assignment")


# -- the fleet (from State reports) ------------------------------------------------------------


@dataclass(frozen=True)
class FleetStation:
    station_id: int
    hostname: str
    scope_group: str | None
    content_serial: int | None
    reported_at: dt.datetime | None
    expected: list[dict[str, Any]]  # the files of its current manifest
    running: dict[str, Any]  # rule set name -> the version it reports
    behind: bool


def fleet(session: Session, behind_only: bool = False) -> tuple[int, list[FleetStation]]:
    """Every Garrison station: the serial and versions it reports, against its manifest."""
    row = server_row(session)
    current = session.get(ContentSerial, row.serial)
    snapshot = current.snapshot if current is not None else {"scopes": {}}
    members: dict[int, list[tuple[int, str]]] = {}
    for sid, gid, name in session.execute(
        select(station_groups.c.station_id, Group.id, Group.name).join(
            Group, Group.id == station_groups.c.group_id
        )
    ).all():
        members.setdefault(int(sid), []).append((int(gid), str(name)))
    found = session.execute(
        select(Station.id, Station.hostname, StationState)
        .outerjoin(StationState, StationState.station_id == Station.id)
        .where(Station.agent_kind == AgentKind.GARRISON)
        .order_by(Station.id)
    ).all()
    out: list[FleetStation] = []
    for sid, hostname, state in found:
        scope = scope_of(snapshot, members.get(int(sid), []))
        entry = snapshot.get("scopes", {}).get(scope) or {"group": None, "files": []}
        running: dict[str, Any] = {}
        reported = None
        if state is not None:
            reported = state.content_serial
            for module in state.modules or []:
                if isinstance(module, dict) and "version" in module:
                    running[str(module.get("name"))] = module.get("version")
        files = list(entry.get("files", []))
        behind = (
            reported is None
            or reported < row.serial
            or any(running.get(f["ruleset"]) != f["version"] for f in files)
        )
        if behind_only and not behind:
            continue
        out.append(
            FleetStation(
                station_id=int(sid),
                hostname=str(hostname),
                scope_group=entry.get("group"),
                content_serial=reported,
                reported_at=state.updated_at if state is not None else None,
                expected=files,
                running=running,
                behind=behind,
            )
        )
    return row.serial, out


# -- the approved script library ---------------------------------------------------------------


def require_approved_script(session: Session, name: str, sha256: str) -> RuleVersion:
    """The approved version of ``script`` rule set ``name`` whose bundle is ``sha256``: what a
    RunScript must reference (the agent runs only what its signed manifest holds)."""
    ruleset = session.scalar(select(RuleSet).where(RuleSet.name == name))
    if ruleset is None or ruleset.kind != "script":
        raise InvalidInputError(f"no script {name!r} in the script library", field="params.script")
    found = session.scalar(
        select(RuleVersion)
        .options(defer(RuleVersion.content))
        .where(RuleVersion.ruleset_id == ruleset.id, RuleVersion.sha256 == sha256.lower())
    )
    if found is None:
        raise InvalidInputError(
            f"script {name!r} has no version with sha256 {sha256}", field="params.sha256"
        )
    if found.approved_at is None:
        raise InvalidInputError(
            f"version {found.version} of script {name!r} is not approved by an administrator",
            field="params.sha256",
        )
    return found


def set_approval(
    session: Session, actor: Actor, name: str, version: int, approved: bool
) -> RuleVersion:
    """Approve (or withdraw the approval of) a ``script`` version: only approved versions
    enter manifests, so only they can run on agents.  Audited; the serial moves."""
    ruleset, found = version_of(session, name, version)
    if ruleset.kind != "script":
        raise InvalidInputError(
            f"rule set {name!r} is of kind {ruleset.kind}: only scripts are approved",
            field="name",
        )
    if approved == (found.approved_at is not None):
        return found
    found.approved_at = utcnow() if approved else None
    found.approved_by = actor.username[:64] if approved else None
    session.flush()
    action = "content.script_approve" if approved else "content.script_unapprove"
    audit.record(session, actor, action, name, version=version, sha256=found.sha256)
    bump(session, "script-approved" if approved else "script-unapproved")
    return found
