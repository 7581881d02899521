"""A read compiled once and run on a pooled DB-API connection.

A check-in whose token is not cached (a restarted node, or a fleet larger than the token cache
holds) reads one row.  Through a Session or even a Core ``Connection`` that read costs
hundreds of microseconds of SQLAlchemy bookkeeping around a statement SQLite answers in
about ten; with 100,000 stations checking in after a restart those reads are the node's
whole CPU.  Here the statement is compiled once for the engine's dialect and each call is
one pool checkout, one ``cursor.execute`` and the pool's rollback on return.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Engine, Select

from garrison.server.store.engine import DatabaseUnreachableError, reporting_unreachable


class PreparedSelect:
    """``first(**params)`` returns the statement's first row as a tuple, or None.

    Only for single-statement reads: the pool rolls the connection back on return, so
    nothing here may write.  The statement sees committed data only (on SQLite one
    statement is its own read transaction; on PostgreSQL the pool's rollback ends it).
    """

    def __init__(self, engine: Engine, statement: Select[*tuple[Any, ...]]) -> None:
        self.engine = engine
        dialect = engine.dialect
        compiled = statement.compile(dialect=dialect)
        self._compiled = compiled
        self._sql = str(compiled)
        self._order: tuple[str, ...] | None = (
            tuple(compiled.positiontup or ()) if compiled.positional else None
        )
        # The dialect's own form of each type (a TypeDecorator's impl included), as
        # SQLAlchemy itself converts binds and rows.
        self._processors: dict[str, Callable[[Any], Any]] = {}
        for name, bind in compiled.binds.items():
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                self._processors[name] = process
        for column in statement.selected_columns:
            # Rows come back as the driver gives them: only columns it already decodes.
            if column.type.dialect_impl(dialect).result_processor(dialect, None) is not None:
                raise ValueError(f"column {column.key!r} needs decoding; select it elsewhere")

    def first(self, **params: Any) -> tuple[Any, ...] | None:
        values = self._compiled.construct_params(params)
        for key, process in self._processors.items():
            values[key] = process(values[key])
        args: Mapping[str, Any] | tuple[Any, ...] = (
            tuple(values[key] for key in self._order) if self._order is not None else values
        )
        dbapi_error = self.engine.dialect.loaded_dbapi.OperationalError
        try:
            with reporting_unreachable():
                # The pool hands the driver's own error through when it cannot connect.
                connection = self.engine.raw_connection()
        except dbapi_error as exc:
            raise DatabaseUnreachableError(str(exc).strip().splitlines()[0]) from exc
        try:
            cursor = connection.cursor()
            try:
                cursor.execute(self._sql, args)
                row = cursor.fetchone()
            finally:
                cursor.close()
        except dbapi_error as exc:
            # The connection broke under the statement: not back into the pool.
            connection.invalidate(exc)
            raise DatabaseUnreachableError(str(exc).strip().splitlines()[0]) from exc
        finally:
            connection.close()
        return tuple(row) if row is not None else None
