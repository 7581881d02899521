"""Node-wide exclusive locks that hold no transaction open."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text

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
    keeping a snapshot or a row lock.  A connection lost meanwhile releases it.  SQLite is
    one node: always held."""
    if db.backend != "postgresql":
        yield True
        return
    key = {"space": NAMED_LOCKS, "key": zlib.crc32(name.encode("utf-8")) - (1 << 31)}
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        held = bool(conn.scalar(text("SELECT pg_try_advisory_lock(:space, :key)"), key))
        try:
            yield held
        finally:
            if held:
                conn.execute(text("SELECT pg_advisory_unlock(:space, :key)"), key)
