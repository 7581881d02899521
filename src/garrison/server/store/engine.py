"""Engine and session setup for SQLite (WAL, the embedded default) and PostgreSQL."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
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
    engine = create_engine(
        url,
        pool_size=10,
        max_overflow=20,
        pool_pre_ping=True,
        pool_timeout=pool_timeout,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS},
        **_JSON,
    )
    event.listen(engine, "connect", _postgresql_session)
    return engine


def _postgresql_session(dbapi_connection: Any, _record: Any) -> None:
    """Every connection's settings.  JIT off: Garrison's queries are short, and a search whose
    estimated cost passes ``jit_above_cost`` (a sweep or a count over a large log) spent
    longer compiling than running (2.2 s of JIT for an IOC sweep that runs in 40 ms:
    bench/findings.md).  A SET rather than a startup option, which poolers such as PgBouncer
    refuse."""
    autocommit = dbapi_connection.autocommit
    dbapi_connection.autocommit = True
    try:
        cursor = dbapi_connection.cursor()
        cursor.execute("SET jit = off")
        cursor.close()
    finally:
        dbapi_connection.autocommit = autocommit


# As SQLite's busy_timeout: a write transaction that waited this long for its turn fails.
WRITE_WAIT_SECONDS = 15.0


class FairWriteLock:
    """The turn of a process's SQLite write transactions, first come first served, and
    re-entrant in a thread (a write inside a write of the same thread waits for nothing).

    SQLite has one writer, and its busy handler serves no queue: a writer that finds the
    database locked sleeps (1, 2, 5 … up to 100 ms) and tries again, while the thread that
    just committed begins its next transaction at once.  Under sustained ingestion the events
    writer then took nearly every turn and the consumers' short transactions (a cursor moved)
    waited seconds for one: their lag grew with the load (bench/findings.md).  Taking turns
    here first makes each wait for the writers ahead of it only.  Other processes (other
    workers of a node) still meet SQLite's own lock and busy handler."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._queue: deque[object] = deque()
        self._owner: int | None = None
        self._depth = 0

    def acquire(self, timeout: float) -> bool:
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._depth += 1
                return True
            ticket = object()
            self._queue.append(ticket)
            end = time.monotonic() + timeout
            while self._owner is not None or self._queue[0] is not ticket:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    self._queue.remove(ticket)
                    self._cond.notify_all()
                    return False
                self._cond.wait(remaining)
            self._queue.popleft()
            self._owner, self._depth = me, 1
            return True

    def release(self) -> None:
        with self._cond:
            if self._owner != threading.get_ident():
                raise RuntimeError("the write turn is released by a thread that does not hold it")
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._cond.notify_all()

    @contextmanager
    def held(self, timeout: float = WRITE_WAIT_SECONDS) -> Iterator[None]:
        if not self.acquire(timeout):
            raise DatabaseBusyError(f"no turn to write within {timeout:g} s: the database is busy")
        try:
            yield
        finally:
            self.release()


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
        # SQLite's write transactions take turns in this process (see FairWriteLock).
        self._write_turn = FairWriteLock() if self.backend == "sqlite" else None

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Commit on success, roll back everything on any error: no half-written request.
        A database that cannot be reached raises :class:`DatabaseUnreachableError`."""
        turn = self._write_turn.held() if self._write_turn is not None else nullcontext()
        with turn, reporting_unreachable(), self.sessions() as session:
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
