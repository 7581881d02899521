"""Node-wide exclusive locks that hold no transaction open."""

from __future__ import annotations

import fcntl
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from garrison.server.store.engine import Database

# The first key of every named lock (the two-key space of PostgreSQL's advisory locks does not
# overlap the one-key space that log appends and migrations lock in).
NAMED_LOCKS = 0x6A1775


@contextmanager
def exclusive(db: Database, name: str) -> Iterator[bool]:
    """Whether this node holds ``name`` for the block; another node holding it makes this
    one's attempt fail at once (no waiting).

    On PostgreSQL: a session-level advisory lock, on a connection of its own with no
    transaction open, so the work done under it may take long (a network send) without
    keeping a snapshot or a row lock.  A connection lost meanwhile releases it.

    On SQLite: an ``flock`` on a file beside the database, so that the worker processes of
    one node (``garrison serve --workers``) take turns as nodes do; a process that dies
    releases it.  An in-memory database is one process: always held."""
    if db.backend != "postgresql":
        with _file_lock(db, name) as held:
            yield held
        return
    key = {"space": NAMED_LOCKS, "key": zlib.crc32(name.encode("utf-8")) - (1 << 31)}
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        held = bool(conn.scalar(text("SELECT pg_try_advisory_lock(:space, :key)"), key))
        try:
            yield held
        finally:
            if held:
                conn.execute(text("SELECT pg_advisory_unlock(:space, :key)"), key)


@contextmanager
def _file_lock(db: Database, name: str) -> Iterator[bool]:
    database = make_url(db.url).database
    if not database or database == ":memory:":
        yield True
        return
    path = Path(f"{database}-locks") / f"{zlib.crc32(name.encode('utf-8')):08x}.lock"
    path.parent.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True  # closing the descriptor releases the lock
    finally:
        os.close(fd)
