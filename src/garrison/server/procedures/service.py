"""Storing procedures and procedure sets.

A procedure is one event's Lua source in one set (set a new version, read, enable/disable,
history, delete); a set is a name, an order and an enabled flag.  The chain of an event is
its enabled procedures in the enabled sets, in set order (:func:`enabled_chains`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import delete as sql_delete
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from garrison.common.catalogue import PROCEDURES
from garrison.server.audit import service as audit
from garrison.server.audit.actor import Actor
from garrison.server.errors import ConflictError, InvalidInputError, NotFoundError
from garrison.server.procedures.models import (
    DEFAULT_SET,
    Procedure,
    ProcedureError,
    ProcedureSet,
    ProcedureVersion,
)
from garrison.server.procedures.sandbox import check_syntax
from garrison.server.store.base import utcnow

MAX_SOURCE = 256 * 1024
SET_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
# Set orders: wide enough for any scheme of gaps, small enough for every integer column.
MAX_ORDER = 1_000_000


@dataclass(frozen=True)
class Link:
    """One enabled procedure of an event's chain, as it is when read."""

    set_name: str
    order: int
    source: str
    version: int


def check_name(name: str) -> str:
    if name not in PROCEDURES:
        raise NotFoundError(
            f"no event procedure {name!r}; known: {', '.join(sorted(PROCEDURES))}",
            field="event",
        )
    return name


def check_set_name(name: str) -> str:
    if not SET_NAME.fullmatch(name):
        raise InvalidInputError(
            f"invalid procedure set name {name[:80]!r}: 1 to 64 of a-z 0-9 _ . -, "
            "starting with a letter or digit",
            field="set",
        )
    return name


# -- sets -----------------------------------------------------------------------------------


def list_sets(session: Session) -> list[ProcedureSet]:
    return list(session.scalars(select(ProcedureSet).order_by(ProcedureSet.position)))


def get_set(session: Session, name: str, lock: bool = False) -> ProcedureSet:
    check_set_name(name)
    found = session.get(ProcedureSet, name, with_for_update=lock)
    if found is None:
        raise NotFoundError(f"no procedure set {name!r}", field="set")
    return found


def ensure_default(session: Session) -> ProcedureSet:
    """The ``default`` set, created (order 0, or just before the first set when 0 is
    taken) if it is missing: migration 0011 creates it, but a database emptied by hand (or
    built from the models) has none, and ``PUT /procedures/{event}`` must still work."""
    found = session.get(ProcedureSet, DEFAULT_SET, with_for_update=True)
    if found is not None:
        return found
    first = session.scalar(select(func.min(ProcedureSet.position)))
    taken = session.scalar(select(ProcedureSet.name).where(ProcedureSet.position == 0))
    position = 0 if taken is None else max(int(first or 0) - 1, -MAX_ORDER)
    found = ProcedureSet(name=DEFAULT_SET, position=position, enabled=True, updated_by="system")
    session.add(found)
    session.flush()
    return found


def procedure_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(Procedure.set_name, func.count()).group_by(Procedure.set_name))
    return {name: count for name, count in rows}


def _check_order(order: object) -> int:
    if isinstance(order, bool) or not isinstance(order, int):
        raise InvalidInputError("order must be an integer", field="order")
    if abs(order) > MAX_ORDER:
        raise InvalidInputError(
            f"order must be between {-MAX_ORDER} and {MAX_ORDER}", field="order"
        )
    return order


def put_set(
    session: Session,
    actor: Actor,
    name: str,
    order: int | None,
    enabled: bool | None,
) -> tuple[ProcedureSet, bool]:
    """Create the set ``name`` (``order`` required) or change its order and/or enabled flag;
    returns it and whether it was created.  An order another set has is a conflict: two
    sets never tie."""
    check_set_name(name)
    if name == DEFAULT_SET:
        ensure_default(session)
    if order is not None:
        _check_order(order)
    if enabled is not None and not isinstance(enabled, bool):
        raise InvalidInputError("enabled must be a boolean", field="enabled")
    current = session.get(ProcedureSet, name, with_for_update=True)
    if current is None and order is None:
        raise InvalidInputError("a new procedure set needs an order", field="order")
    if order is not None:
        holder = session.scalar(select(ProcedureSet.name).where(ProcedureSet.position == order))
        if holder is not None and holder != name:
            raise ConflictError(
                f"procedure set {holder!r} already has order {order}; each set needs its own",
                field="order",
            )
    created = current is None
    if current is None:
        current = ProcedureSet(name=name, position=order, enabled=True)
        session.add(current)
    changes: dict[str, object] = {}
    if order is not None and (created or current.position != order):
        changes["order"] = order
        current.position = order
    if enabled is not None and (created or current.enabled != enabled):
        changes["enabled"] = enabled
        current.enabled = enabled
    current.updated_at = utcnow()
    current.updated_by = actor.username
    # The unique order is checked above; a concurrent set taking it fails here, whole.
    session.flush()
    audit.record(
        session,
        actor,
        "procedure_set.create" if created else "procedure_set.change",
        name,
        order=current.position,
        enabled=current.enabled,
        changed=sorted(changes),
    )
    return current, created


def delete_set(session: Session, actor: Actor, name: str) -> list[str]:
    """Delete a set and its procedures (their version history stays); the ``default`` set
    cannot be deleted.  Returns the events whose procedures went with it."""
    if name == DEFAULT_SET:
        raise ConflictError(
            "the default procedure set cannot be deleted (disable it instead)", field="set"
        )
    found = get_set(session, name, lock=True)
    events = list(
        session.scalars(
            select(Procedure.name).where(Procedure.set_name == name).order_by(Procedure.name)
        )
    )
    session.execute(sql_delete(Procedure).where(Procedure.set_name == name))
    session.delete(found)
    session.flush()
    audit.record(session, actor, "procedure_set.delete", name, procedures=events)
    return events


# -- procedures -----------------------------------------------------------------------------


def put(
    session: Session,
    actor: Actor,
    name: str,
    source: str,
    enabled: bool = True,
    set_name: str = DEFAULT_SET,
) -> Procedure:
    check_name(name)
    if len(source.encode("utf-8")) > MAX_SOURCE:
        raise InvalidInputError(
            f"procedure source is larger than {MAX_SOURCE} bytes", field="source"
        )
    problem = check_syntax(source, name)
    if problem:
        raise InvalidInputError(problem, field="source")
    if "\x00" in source:
        # Lua would run it, but PostgreSQL text cannot store it (nor the event log).
        raise InvalidInputError("procedure source must not contain NUL characters", field="source")
    # Locked: a set being deleted meanwhile either goes first (then this is a 404) or
    # waits for this to commit (then it takes this procedure with it).
    if set_name == DEFAULT_SET:
        ensure_default(session)
    else:
        get_set(session, set_name, lock=True)
    current = session.get(Procedure, (set_name, name), with_for_update=True)
    version = next_version(session, set_name, name, current)
    if current is None:
        current = Procedure(
            set_name=set_name, name=name, source=source, enabled=enabled, version=version
        )
        session.add(current)
    current.source = source
    current.enabled = enabled
    current.version = version
    current.updated_at = utcnow()
    current.updated_by = actor.username
    session.add(
        ProcedureVersion(
            set_name=set_name,
            name=name,
            version=version,
            source=source,
            created_by=actor.username,
        )
    )
    session.flush()
    audit.record(
        session, actor, "procedure.set", name, version=version, enabled=enabled, set=set_name
    )
    return current


def next_version(session: Session, set_name: str, name: str, current: Procedure | None) -> int:
    """One more than any version the procedure has had in its set: a deleted procedure
    keeps its history, so the numbers go on rising after a delete rather than restarting
    at 1 and colliding with the versions kept."""
    kept = session.scalar(
        select(func.max(ProcedureVersion.version)).where(
            ProcedureVersion.set_name == set_name, ProcedureVersion.name == name
        )
    )
    return max(current.version if current else 0, kept or 0) + 1


def get(session: Session, name: str, set_name: str = DEFAULT_SET) -> Procedure:
    check_name(name)
    if set_name != DEFAULT_SET:  # the default set may be missing: see ensure_default
        get_set(session, set_name)
    procedure = session.get(Procedure, (set_name, name))
    if procedure is None:
        if set_name == DEFAULT_SET:
            raise NotFoundError(f"no procedure is set for {name}")
        raise NotFoundError(f"no procedure is set for {name} in set {set_name!r}")
    return procedure


def chain(session: Session, name: str) -> list[tuple[Procedure, ProcedureSet]]:
    """Every procedure of the event, enabled or not, with its set, in set order."""
    check_name(name)
    rows = session.execute(
        select(Procedure, ProcedureSet)
        .join(ProcedureSet, ProcedureSet.name == Procedure.set_name)
        .where(Procedure.name == name)
        .order_by(ProcedureSet.position)
    )
    return [(p, s) for p, s in rows]


def list_all(session: Session) -> list[tuple[Procedure, ProcedureSet]]:
    """Every procedure with its set, by event, then in set order."""
    rows = session.execute(
        select(Procedure, ProcedureSet)
        .join(ProcedureSet, ProcedureSet.name == Procedure.set_name)
        .order_by(Procedure.name, ProcedureSet.position)
    )
    return [(p, s) for p, s in rows]


def set_enabled(
    session: Session, actor: Actor, name: str, enabled: bool, set_name: str = DEFAULT_SET
) -> Procedure:
    procedure = get(session, name, set_name)
    procedure.enabled = enabled
    procedure.updated_at = utcnow()
    procedure.updated_by = actor.username
    audit.record(
        session,
        actor,
        "procedure.enable" if enabled else "procedure.disable",
        name,
        set=set_name,
    )
    return procedure


def delete(session: Session, actor: Actor, name: str, set_name: str = DEFAULT_SET) -> None:
    session.delete(get(session, name, set_name))
    audit.record(session, actor, "procedure.delete", name, set=set_name)


def history(session: Session, name: str, set_name: str = DEFAULT_SET) -> list[ProcedureVersion]:
    check_name(name)
    check_set_name(set_name)
    return list(
        session.scalars(
            select(ProcedureVersion)
            .where(ProcedureVersion.set_name == set_name, ProcedureVersion.name == name)
            .order_by(ProcedureVersion.version.desc())
        )
    )


def _enabled() -> tuple[object, ...]:
    return (Procedure.enabled.is_(True), ProcedureSet.enabled.is_(True))


def enabled_names(session: Session) -> set[str]:
    """The events with at least one enabled procedure in an enabled set."""
    return set(
        session.scalars(
            select(Procedure.name)
            .join(ProcedureSet, ProcedureSet.name == Procedure.set_name)
            .where(*_enabled())  # type: ignore[arg-type]
        )
    )


def enabled_chains(session: Session, names: set[str]) -> dict[str, list[Link]]:
    """The chains of the events ``names``: each one's enabled procedures in the enabled
    sets, in set order (events with none are left out)."""
    rows = session.execute(
        select(
            Procedure.name,
            Procedure.set_name,
            ProcedureSet.position,
            Procedure.source,
            Procedure.version,
        )
        .join(ProcedureSet, ProcedureSet.name == Procedure.set_name)
        .where(Procedure.name.in_(names), *_enabled())  # type: ignore[arg-type]
        .order_by(Procedure.name, ProcedureSet.position)
    )
    chains: dict[str, list[Link]] = {}
    for name, set_name, position, source, version in rows:
        chains.setdefault(name, []).append(Link(set_name, position, source, version))
    return chains


def still_current(session: Session, name: str, link: Link, lock: bool = False) -> Procedure | None:
    """In a write transaction: the procedure ``link`` was read from (locked with ``lock``)
    if it is still the same version, enabled, in its set, and that set still exists and is
    enabled; None when any of that changed while it ran (its outcome is then dropped)."""
    found = session.get(ProcedureSet, link.set_name, with_for_update=lock)
    if found is None or not found.enabled:
        return None
    current = session.get(Procedure, (link.set_name, name), with_for_update=lock)
    if current is None or not current.enabled or current.version != link.version:
        return None
    return current


def recent_errors(
    session: Session, procedure: str | None, limit: int, set_name: str | None = None
) -> list[ProcedureError]:
    """The newest failures first, of one procedure or of all (of one set or of all)."""
    query = select(ProcedureError).order_by(ProcedureError.id.desc()).limit(limit)
    if procedure:
        query = query.where(ProcedureError.procedure == procedure)
    if set_name:
        query = query.where(ProcedureError.set_name == set_name)
    return list(session.scalars(query))
