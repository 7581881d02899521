"""Storing procedures: set (a new version), read, enable/disable, history, delete."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from garrison.common.catalogue import PROCEDURES
from garrison.server.audit import service as audit
from garrison.server.audit.actor import Actor
from garrison.server.errors import InvalidInputError, NotFoundError
from garrison.server.procedures.models import Procedure, ProcedureError, ProcedureVersion
from garrison.server.procedures.sandbox import check_syntax
from garrison.server.store.base import utcnow

MAX_SOURCE = 256 * 1024


def check_name(name: str) -> str:
    if name not in PROCEDURES:
        raise NotFoundError(
            f"no event procedure {name!r}; known: {', '.join(sorted(PROCEDURES))}",
            field="event",
        )
    return name


def put(session: Session, actor: Actor, name: str, source: str, enabled: bool = True) -> Procedure:
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
    current = session.get(Procedure, name, with_for_update=True)
    version = next_version(session, name, current)
    if current is None:
        current = Procedure(name=name, source=source, enabled=enabled, version=version)
        session.add(current)
    current.source = source
    current.enabled = enabled
    current.version = version
    current.updated_at = utcnow()
    current.updated_by = actor.username
    session.add(
        ProcedureVersion(name=name, version=version, source=source, created_by=actor.username)
    )
    session.flush()
    audit.record(session, actor, "procedure.set", name, version=version, enabled=enabled)
    return current


def next_version(session: Session, name: str, current: Procedure | None) -> int:
    """One more than any version the procedure has had: a deleted procedure keeps its
    history, so the numbers go on rising after a delete rather than restarting at 1 and
    colliding with the versions kept."""
    kept = session.scalar(
        select(func.max(ProcedureVersion.version)).where(ProcedureVersion.name == name)
    )
    return max(current.version if current else 0, kept or 0) + 1


def get(session: Session, name: str) -> Procedure:
    check_name(name)
    procedure = session.get(Procedure, name)
    if procedure is None:
        raise NotFoundError(f"no procedure is set for {name}")
    return procedure


def list_all(session: Session) -> list[Procedure]:
    return list(session.scalars(select(Procedure).order_by(Procedure.name)))


def set_enabled(session: Session, actor: Actor, name: str, enabled: bool) -> Procedure:
    procedure = get(session, name)
    procedure.enabled = enabled
    procedure.updated_at = utcnow()
    procedure.updated_by = actor.username
    audit.record(session, actor, "procedure.enable" if enabled else "procedure.disable", name)
    return procedure


def delete(session: Session, actor: Actor, name: str) -> None:
    session.delete(get(session, name))
    audit.record(session, actor, "procedure.delete", name)


def history(session: Session, name: str) -> list[ProcedureVersion]:
    check_name(name)
    return list(
        session.scalars(
            select(ProcedureVersion)
            .where(ProcedureVersion.name == name)
            .order_by(ProcedureVersion.version.desc())
        )
    )


def enabled_names(session: Session) -> set[str]:
    return set(session.scalars(select(Procedure.name).where(Procedure.enabled.is_(True))))


def enabled_sources(session: Session, names: set[str]) -> dict[str, str]:
    rows = session.execute(
        select(Procedure.name, Procedure.source).where(
            Procedure.name.in_(names), Procedure.enabled.is_(True)
        )
    )
    return {name: source for name, source in rows}


def enabled_versions(session: Session, names: set[str]) -> dict[str, tuple[str, int]]:
    """The enabled procedures among ``names``: their source and version."""
    rows = session.execute(
        select(Procedure.name, Procedure.source, Procedure.version).where(
            Procedure.name.in_(names), Procedure.enabled.is_(True)
        )
    )
    return {name: (source, version) for name, source, version in rows}


def recent_errors(session: Session, procedure: str | None, limit: int) -> list[ProcedureError]:
    """The newest failures first, of one procedure or of all."""
    query = select(ProcedureError).order_by(ProcedureError.id.desc()).limit(limit)
    if procedure:
        query = query.where(ProcedureError.procedure == procedure)
    return list(session.scalars(query))
