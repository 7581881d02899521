"""Engine and session setup for SQLite (WAL, the embedded default) and PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from garrison.server.store.effects import CommitHooks


def _json_dumps(value: object) -> str:
    return orjson.dumps(value).decode("utf-8")


def _json_loads(value: object) -> object:
    # SQLite hands back a JSON scalar (a number) already decoded.
    if isinstance(value, str | bytes | bytearray | memoryview):
        return orjson.loads(value)
    return value


# orjson for JSON columns: event data is the bulk of what ingestion writes.
_JSON: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": _json_loads}
READ_ONLY = "garrison_read_only"


class UnsupportedDatabaseError(ValueError):
    pass


class DatabaseUnreachableError(RuntimeError):
    """The database refused or did not answer (down, wrong host, wrong password); the message
    is the driver's first line, which names the cause.  A request meeting it is answered
    ``503 database_unavailable`` with ``Retry-After`` (``errors_http``)."""


class DatabaseBusyError(DatabaseUnreachableError):
    """No pooled connection freed up within the pool timeout: the node has more work than
    its database connections carry (answered 503 like an unreachable database)."""


# How long a new PostgreSQL connection may take: a database that does not answer fails the
# request after this, not after the kernel's TCP timeout.
CONNECT_TIMEOUT_SECONDS = 5


@contextmanager
def reporting_unreachable() -> Iterator[None]:
    """Turn SQLAlchemy's OperationalError into :class:`DatabaseUnreachableError`, so that a
    caller outside the store (the CLI) can report it without importing SQLAlchemy."""
    try:
        yield
    except OperationalError as exc:
        reason = str(exc.orig).strip() or type(exc.orig).__name__
        raise DatabaseUnreachableError(reason.splitlines()[0]) from exc
    except PoolTimeoutError as exc:
        raise DatabaseBusyError("no database connection free in time") from exc


def normalize_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here, not SQLAlchemy's default psycopg2."""
    try:
        parsed = make_url(url)
    except Exception:
        raise UnsupportedDatabaseError(f"not a database URL: {url!r}") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise UnsupportedDatabaseError(
            f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql"
        )
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


# SQLite's ``synchronous`` in WAL mode: FULL syncs the WAL at every commit, so an answered
# (committed) request survives a power loss; NORMAL syncs only at checkpoints, and the last
# commits before a power cut can be lost (never corrupted).  See docs/security.md.
SQLITE_SYNCHRONOUS = ("full", "normal")


def _sqlite_pragmas(synchronous: str) -> Any:
    if synchronous not in SQLITE_SYNCHRONOUS:
        raise UnsupportedDatabaseError(
            f"sqlite synchronous must be one of {', '.join(SQLITE_SYNCHRONOUS)}"
        )
    statement = f"PRAGMA synchronous={synchronous.upper()}"

    def pragmas(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(statement)
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.close()

    return pragmas


def make_engine(url: str, sqlite_synchronous: str = "full", pool_timeout: float = 30.0) -> Engine:
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        connect_args = {"check_same_thread": False, "timeout": 15}
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(
                url,
                connect_args=connect_args,
                pool_size=8,
                max_overflow=8,
                pool_timeout=pool_timeout,
                **_JSON,
            )
        else:
            # One in-memory database must be one connection, shared.
            engine = create_engine(url, connect_args=connect_args, poolclass=StaticPool, **_JSON)
        event.listen(engine, "connect", _sqlite_pragmas(sqlite_synchronous))

        # pysqlite's own transaction handling defers BEGIN until the first write and cannot
        # upgrade a reader to a writer without SQLITE_BUSY; BEGIN IMMEDIATE up front makes
        # concurrent writers queue on busy_timeout instead of failing.
        @event.listens_for(engine, "connect")
        def _no_autobegin(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
            dbapi_connection.isolation_level = None

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            if conn.get_execution_options().get(READ_ONLY):
                conn.exec_driver_sql("BEGIN")
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(
        url,
        pool_size=10,
        max_overflow=20,
        pool_pre_ping=True,
        pool_timeout=pool_timeout,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
        **_JSON,
    )


class Database:
    """Owns the engine; hands out one transaction per unit of work."""

    def __init__(
        self, url: str, sqlite_synchronous: str = "full", pool_timeout: float = 30.0
    ) -> None:
        self.url = normalize_url(url)
        try:
            self.engine = make_engine(self.url, sqlite_synchronous, pool_timeout)
        except SQLAlchemyError as exc:  # e.g. a driver name SQLAlchemy does not know
            raise UnsupportedDatabaseError(str(exc)) from exc
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        # What each after-commit signal does on this node (see store.effects).
        self.hooks = CommitHooks()
        self._read_sessions = sessionmaker(
            self.engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False
        )

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Commit on success, roll back everything on any error: no half-written request.
        A database that cannot be reached raises :class:`DatabaseUnreachableError`."""
        with reporting_unreachable(), self.sessions() as session:
            try:
                with session.begin():
                    yield session
            except BaseException:
                self.hooks.discard(session)
                raise
            self.hooks.run(session)

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A transaction that only reads: on SQLite it does not queue behind writers."""
        with reporting_unreachable(), self._read_sessions() as session, session.begin():
            yield session

    def ping(self) -> None:
        """One round trip: raises if the database cannot be reached."""
        with self.reading() as session:
            session.execute(select(1))

    def dispose(self) -> None:
        self.engine.dispose()
