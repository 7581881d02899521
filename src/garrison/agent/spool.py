"""The durable offline queue: everything the agent sends is committed here first.

SQLite in WAL mode with ``synchronous=FULL``: once :meth:`Spool.enqueue` returns, a kill -9 or
a power cut loses nothing.  Messages leave in order (oldest first); while the server is
unreachable or failing they wait, retried with exponential backoff (with jitter, so a fleet
does not reconnect in step).  They are kept at most ``max_age_days`` (21, as the Kaspersky
seed) and within ``max_bytes``; beyond that the oldest are dropped and counted.

Every message has an id.  For ``/api/events`` it is the event id, which the server uses to
store a retried event once; the other endpoints are idempotent on the server already (Runjobs
updates, scans upsert by job, alerts de-duplicate by checksum, states and configs upsert).
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from garrison.agent.errors import (
    AgentError,
    BusyError,
    LocalError,
    RefusedError,
    ServerError,
    UnreachableError,
)
from garrison.agent.transport import Transport

log = logging.getLogger("garrison.agent.spool")

EVENTS = "events"
BACKOFF_BASE = 2.0
BACKOFF_MAX = 300.0
EVENT_BATCH = 500
# One encoder, not json.dumps(..., separators=...) per event (which builds a new one each
# call); no circular check: event data are plain trees the sensors built.
_ENCODER = json.JSONEncoder(separators=(",", ":"), check_circular=False)


def encode_event(obj: Any) -> str:
    """A sensor event's JSON body.  orjson first: the encoding was a third of the spool
    writer's CPU with the json module (bench/findings.md, the sensors scenario); what it
    refuses (a path with undecodable bytes is a ``str`` with lone surrogates, an integer
    past 64 bits) is encoded by the json module as before."""
    try:
        return orjson.dumps(obj).decode()
    except TypeError:  # orjson.JSONEncodeError is one
        return _ENCODER.encode(obj)


SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  path TEXT NOT NULL,
  task TEXT NOT NULL,
  body TEXT NOT NULL,
  size INTEGER NOT NULL,
  created REAL NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt REAL NOT NULL DEFAULT 0,
  last_error TEXT
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
-- Each sensor batch sums the sizes and expires by age: without these indexes both scan every
-- row, bodies included, and a spool filling while the server is away costs more per event
-- the fuller it gets (bench/findings.md, the sensors scenario).
CREATE INDEX IF NOT EXISTS messages_size ON messages(size);
CREATE INDEX IF NOT EXISTS messages_created ON messages(created);
"""


def backoff_delay(attempts: int, rng: random.Random | None = None) -> float:
    """Seconds to wait after ``attempts`` failed tries: 2, 4, 8… capped at 5 minutes, plus up
    to 25 % jitter."""
    base = min(BACKOFF_BASE * 2.0 ** max(attempts - 1, 0), BACKOFF_MAX)
    jitter: float = (rng or random).random()
    return float(base * (1 + 0.25 * jitter))


def retry_delay(error: AgentError, attempts: int, rng: random.Random | None = None) -> float:
    """How long to wait after ``error``: the server's ``Retry-After`` when it gave one (plus
    up to 25 % jitter, so that a fleet refused together does not come back together), else
    the exponential backoff."""
    if isinstance(error, BusyError) and error.retry_after is not None:
        jitter: float = (rng or random).random()
        return float(max(error.retry_after, 1.0) * (1 + 0.25 * jitter))
    return backoff_delay(attempts, rng)


@dataclass
class Message:
    seq: int
    id: str
    path: str
    task: str
    body: Any
    size: int
    created: float
    attempts: int


@dataclass
class SpoolEvent:
    """A sensor's event on its way into the spool; ``sensor`` is who counts it."""

    sensor: str
    event_type: str
    event_id: str
    when: float
    data: dict[str, Any]


@dataclass
class FlushResult:
    sent: int = 0
    dropped: int = 0
    remaining: int = 0
    error: AgentError | None = None
    problems: list[str] = field(default_factory=list)


class Spool:
    def __init__(
        self,
        path: Path,
        max_age_days: float = 21,
        max_bytes: int = 64 * 1024 * 1024,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.max_age = max_age_days * 86400
        self.max_bytes = max_bytes
        self.clock = clock
        self._lock = threading.RLock()
        # SUM(size), kept as it changes: each sensor batch asked for it, and even through
        # an index the sum reads every row, so a spool filling while the server is away
        # cost more per event the fuller it got (bench/findings.md, the sensors scenario).
        # Trusted while ``PRAGMA data_version`` says no other connection has committed
        # (another process on the same file: the sum is read again); None: read it again.
        self._bytes: int | None = None
        self._bytes_version = -1
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.db = sqlite3.connect(
                str(path), isolation_level=None, check_same_thread=False, timeout=30
            )
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
            path.chmod(0o600)
        except sqlite3.Error as exc:
            raise LocalError(f"cannot open spool {path}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self.db.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self._bytes = None  # what the transaction added to it is undone
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")

    def _total_bytes(self, db: sqlite3.Connection) -> int:
        """SUM(size) of every message (inside a transaction)."""
        version = int(db.execute("PRAGMA data_version").fetchone()[0])
        if self._bytes is None or version != self._bytes_version:
            row = db.execute("SELECT COALESCE(SUM(size), 0) FROM messages").fetchone()
            self._bytes = int(row[0])
            self._bytes_version = version
        return self._bytes

    def _added(self, size: int) -> None:
        if self._bytes is not None:
            self._bytes += size

    def _count(self, db: sqlite3.Connection, name: str, n: int) -> None:
        if n:
            db.execute(
                "INSERT INTO counters(name, value) VALUES (?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                (name, n),
            )

    # -- writing ----------------------------------------------------------------------------

    def enqueue(self, path: str, task: str, obj: Any, message_id: str | None = None) -> str:
        """Queue an Armadito task body for ``POST /api/<path>``; durable on return."""
        mid = message_id or uuid.uuid4().hex
        body = json.dumps(obj, separators=(",", ":"))
        now = self.clock()
        try:
            with self._tx() as db:
                self._expire(db, now)
                self._make_room(db, len(body))
                added = db.execute(
                    "INSERT OR IGNORE INTO messages(id, path, task, body, size, created) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (mid, path, task, body, len(body), now),
                ).rowcount
                if added:
                    self._added(len(body))
        except sqlite3.Error as exc:
            # A full disk, a read-only file system: say so; the caller decides what to do.
            raise LocalError(f"spool: cannot queue a {task} message: {exc}") from None
        return mid

    def enqueue_event(
        self,
        event_type: str,
        data: dict[str, Any],
        when: float | None = None,
        event_id: str | None = None,
    ) -> str:
        """Queue an event for ``POST /api/events``; its spool id is its event id.

        ``event_id``: a producer's stable id (a sensor derives it from what it saw), so the
        same event queued twice is stored once, here and on the server."""
        mid = event_id or uuid.uuid4().hex
        event = {"id": mid, "type": event_type, "time": int(when or self.clock()), "data": data}
        return self.enqueue(EVENTS, "Events", event, message_id=mid)

    def enqueue_telemetry(
        self, events: list[SpoolEvent], ceiling: int
    ) -> tuple[list[SpoolEvent], list[SpoolEvent]]:
        """Queue sensor events in one transaction without evicting anything: an event that
        would take the spool past ``ceiling`` bytes is refused instead, so telemetry never
        pushes out alerts, scan results or job answers.  Returns (queued, refused); the
        caller counts the refused ones.  An event whose id is already queued counts as
        queued (it is there)."""
        queued: list[SpoolEvent] = []
        refused: list[SpoolEvent] = []
        now = self.clock()
        try:
            with self._tx() as db:
                self._expire(db, now)
                total = self._total_bytes(db)
                limit = min(ceiling, self.max_bytes)
                encode = encode_event
                rows: list[tuple[str, str, str, str, int, float]] = []
                for item in events:
                    body = encode(
                        {
                            "id": item.event_id,
                            "type": item.event_type,
                            "time": int(item.when),
                            "data": item.data,
                        }
                    )
                    if total + len(body) > limit:
                        refused.append(item)
                        continue
                    rows.append((item.event_id, EVENTS, "Events", body, len(body), now))
                    total += len(body)
                    queued.append(item)
                # One statement for the batch; an id already queued is ignored (it is
                # there), so the running total is the table's, counted after the insert.
                before = db.total_changes
                db.executemany(
                    "INSERT OR IGNORE INTO messages(id, path, task, body, size, created) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
                if db.total_changes - before == len(rows):
                    self._added(sum(row[4] for row in rows))
                else:
                    self._bytes = None
                self._count(db, "dropped_telemetry_full", len(refused))
        except sqlite3.Error as exc:
            raise LocalError(f"spool: cannot queue {len(events)} sensor event(s): {exc}") from None
        return queued, refused

    def _expire(self, db: sqlite3.Connection, now: float) -> None:
        cutoff = now - self.max_age
        gone = db.execute("DELETE FROM messages WHERE created < ?", (cutoff,)).rowcount
        if gone:
            log.warning(
                "spool: dropped %d message(s) older than %.0f days", gone, self.max_age / 86400
            )
            self._count(db, "dropped_expired", gone)
            self._bytes = None

    def _make_room(self, db: sqlite3.Connection, incoming: int) -> None:
        total = self._total_bytes(db)
        dropped = 0
        while total + incoming > self.max_bytes:
            row = db.execute("SELECT seq, size FROM messages ORDER BY seq LIMIT 1").fetchone()
            if row is None:
                break
            db.execute("DELETE FROM messages WHERE seq = ?", (row[0],))
            total -= int(row[1])
            self._added(-int(row[1]))
            dropped += 1
        if dropped:
            log.warning(
                "spool: over its %d-byte cap, dropped the %d oldest message(s)",
                self.max_bytes,
                dropped,
            )
            self._count(db, "dropped_cap", dropped)

    def expire(self) -> None:
        with self._tx() as db:
            self._expire(db, self.clock())

    # -- reading ------------------------------------------------------------------------------

    def pending(self, limit: int = 1_000_000) -> list[Message]:
        with self._lock:
            rows = self.db.execute(
                "SELECT seq, id, path, task, body, size, created, attempts FROM messages "
                "ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        return [Message(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6], r[7]) for r in rows]

    def stats(self) -> dict[str, Any]:
        with self._lock:
            count, size, oldest, next_at = self.db.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0), MIN(created), MIN(next_attempt) "
                "FROM messages"
            ).fetchone()
            counters = dict(self.db.execute("SELECT name, value FROM counters").fetchall())
        return {
            "messages": count,
            "bytes": size,
            "oldest": oldest,
            "next_attempt": next_at,
            **{
                k: counters.get(k, 0)
                for k in (
                    "dropped_expired",
                    "dropped_cap",
                    "dropped_refused",
                    "dropped_telemetry_full",
                )
            },
        }

    def next_attempt(self) -> float | None:
        with self._lock:
            row = self.db.execute(
                "SELECT next_attempt FROM messages ORDER BY seq LIMIT 1"
            ).fetchone()
        return float(row[0]) if row else None

    # -- sending -------------------------------------------------------------------------------

    def _delete(self, ids: list[str]) -> None:
        with self._tx() as db:
            db.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in ids])
            self._bytes = None

    def _drop_refused(self, ids: list[str], reason: str) -> None:
        log.warning("spool: the server refused %d message(s), dropped: %s", len(ids), reason)
        with self._tx() as db:
            db.executemany("DELETE FROM messages WHERE id = ?", [(i,) for i in ids])
            self._bytes = None
            self._count(db, "dropped_refused", len(ids))

    def _postpone(self, head: Message, error: AgentError) -> None:
        attempts = head.attempts + 1
        with self._tx() as db:
            db.execute(
                "UPDATE messages SET attempts = ?, next_attempt = ?, last_error = ? WHERE seq = ?",
                (
                    attempts,
                    self.clock() + retry_delay(error, attempts),
                    error.message[:500],
                    head.seq,
                ),
            )

    def flush(
        self, transport: Transport, force: bool = False, limit: int | None = None
    ) -> FlushResult:
        """Send queued messages in order until the queue is empty or the server fails.

        ``force`` ignores the backoff (a task run by hand tries at once)."""
        result = FlushResult()
        with self._tx() as db:
            self._expire(db, self.clock())
        while limit is None or result.sent < limit:
            batch = self.pending(EVENT_BATCH)
            if not batch:
                break
            head = batch[0]
            due = self.next_attempt()
            now = self.clock()
            if not force and due is not None and due > now:
                result.error = UnreachableError(
                    f"server unavailable, next try in {due - now:.0f} s"
                )
                break
            try:
                if head.path == EVENTS:
                    events = []
                    for message in batch:
                        if message.path != EVENTS:
                            break
                        events.append(message)
                    self._send_events(transport, events, result)
                else:
                    transport.post_task(head.path, head.task, head.body)
                    self._delete([head.id])
                    result.sent += 1
            except RefusedError as exc:
                if exc.status == 401:
                    # Credentials problem: keep everything until the agent enrolls again.
                    self._postpone(head, exc)
                    result.error = exc
                    break
                self._drop_refused([head.id], exc.message)
                result.dropped += 1
                result.problems.append(exc.message)
            except (UnreachableError, ServerError) as exc:
                self._postpone(head, exc)
                result.error = exc
                break
        result.remaining = int(self.stats()["messages"])
        return result

    def _send_events(
        self, transport: Transport, events: list[Message], result: FlushResult
    ) -> None:
        answer = transport.request("POST", EVENTS, json_body=[m.body for m in events])
        refused: list[str] = []
        items = answer.get("results") if isinstance(answer, dict) else None
        if isinstance(items, list):
            for item in items:
                if isinstance(item, dict) and item.get("status") == "refused":
                    index = item.get("index")
                    if isinstance(index, int) and 0 <= index < len(events):
                        refused.append(events[index].id)
                        result.problems.append(
                            f"event {events[index].body.get('type')}: {item.get('error')}"
                        )
        if refused:
            self._drop_refused(refused, "; ".join(result.problems[-len(refused) :]))
            result.dropped += len(refused)
        self._delete([m.id for m in events if m.id not in refused])
        result.sent += len(events) - len(refused)
