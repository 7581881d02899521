"""INSERT … ON CONFLICT for the two backends Garrison supports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def dialect_insert(session: Session, table: Table) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def insert_ignore(session: Session, table: Table, values: Mapping[str, Any]) -> int:
    """Insert unless a unique key already holds the row; returns the rows inserted (0 or 1)."""
    # rowcount is -1 on PostgreSQL here: count the rows RETURNING gives back instead.
    stmt = (
        dialect_insert(session, table)
        .values(**values)
        .on_conflict_do_nothing()
        .returning(*table.primary_key.columns)
    )
    return len(session.execute(stmt).all())


def insert_ignore_many(
    session: Session, table: Table, rows: Sequence[Mapping[str, Any]], key: ColumnElement[Any]
) -> list[Any]:
    """Insert each row unless a unique key already holds it (or an earlier row of ``rows``
    does); returns the ``key`` values of the rows inserted, in no particular order.

    One statement for the rows (SQLAlchemy's "insertmanyvalues": a multi-row ``INSERT …
    ON CONFLICT DO NOTHING RETURNING`` per page of up to 1,000 rows, within the backend's
    parameter limit), its SQL compiled once and cached: a ``.values(rows)`` statement is
    compiled anew for every batch, which cost more than the insert itself."""
    if not rows:
        return []
    stmt = dialect_insert(session, table).on_conflict_do_nothing().returning(key)
    return list(session.execute(stmt, list(rows)).scalars())


def upsert(
    session: Session,
    table: Table,
    values: Mapping[str, Any],
    keys: Sequence[str],
    update: Sequence[str],
) -> None:
    stmt = dialect_insert(session, table).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys), set_={name: stmt.excluded[name] for name in update}
    )
    session.execute(stmt)
