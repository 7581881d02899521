"""Bulk seeding of the event log, outside the API: for benchmarks and capacity tests only.

    python -m bench.seed --events N --database-url URL [--days D] [--stations S] [--seed K]

Writes ``N`` events of the sensor mix (process starts and stops, files, modules, listening
ports, OS log lines) with their search terms straight into the tables of a migrated
database: PostgreSQL ``COPY`` (the day partitions they fall in are made first), SQLite
``executemany`` in big transactions.  The events are spread evenly over the last ``D``
days (inside telemetry's 30-day retention), arrive in time order, and hold a fleet's values:
the same 50,000 binaries everywhere, a few users per station, one host name and address per
station.  No validation per event: each type's data comes from templates validated once,
with the time, pid and unique pid put in the very form validation gives them.  Positions
follow the log's last; the procedure consumer's cursor is moved past the seeded events
(they count as already processed).  It is not how events are meant to enter a server:
nothing is audited, no consumer sees them, no duplicate is looked for.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import hashlib
import os
import queue
import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

# The sensor mix: how often each type occurs among a Linux server's telemetry.
MIX = (
    ("process_started", 30),
    ("process_stopped", 30),
    ("file_created", 15),
    ("module_loaded", 10),
    ("port_listening", 5),
    ("os_log_event", 10),
)
BINARIES = 50_000
TOOLS = 5_000  # names among the binaries (several builds of one tool)
USERS_PER_STATION = 4
CHUNK = 50_000


@dataclass(frozen=True)
class Seeded:
    events: int
    terms: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


# The fields a station's events share (its users, its name, its address) and their roles.
PER_STATION = {"user": "user", "host": "host", "ip": "ip"}


def _station_values(station: int, user: int) -> dict[str, str]:
    return {
        "user": f"user{station % 1000}-{user}",
        "host": f"ws-{station:07d}",
        "ip": f"10.{station >> 16 & 255}.{station >> 8 & 255}.{station & 255}",
    }


@functools.lru_cache(maxsize=BINARIES)
def _hashes(binary: int) -> dict[str, str]:
    """A binary's hashes (cached: the same 50,000 binaries recur; callers only read it)."""
    md5 = hashlib.md5(f"bin{binary}".encode()).hexdigest()
    return {
        "sha256": hashlib.sha256(f"bin{binary}".encode()).hexdigest(),
        "md5": md5,
        "process_md5": md5,
    }


def _values(binary: int, station: int, user: int) -> dict[str, Any]:
    tool = f"tool{binary % TOOLS}"
    return {
        **_station_values(station, user),
        "file_name": tool,
        "process_name": tool,
        "file_path": f"/usr/bin/{tool}",
        "full_name": f"/var/lib/{tool}/state{binary % 97}",
        "dll_name": f"lib{tool}.so",
        "unique_pid": f"{station}-0",
        **_hashes(binary),
        "command_line": f"{tool} --serve",
        "port": 1024 + binary % 5000,
        "protocol": "tcp",
        "message": f"{tool}: started",
    }


def generate(count: int, first_seq: int, days: float, stations: int, seed: int) -> Iterator[Any]:
    """``(seq, uid, type, station_id, time, data, terms)`` for each event, in time order."""
    from garrison.common.catalogue import CATALOGUE, format_timestamp, search_terms, validate

    rng = random.Random(seed)
    kinds = [name for name, weight in MIX for _ in range(weight)]
    now = dt.datetime.now(dt.UTC)
    start = now - dt.timedelta(days=days)
    step = dt.timedelta(days=days) / max(count, 1)
    templates: dict[tuple[str, int], tuple[dict[str, Any], list[tuple[str, str]]]] = {}
    for i in range(count):
        kind = kinds[rng.randrange(len(kinds))]
        station = rng.randrange(1, stations + 1)
        binary = rng.randrange(BINARIES)
        cached = templates.get((kind, binary % TOOLS))
        if cached is None:
            declared = CATALOGUE[kind]
            raw = {k: v for k, v in _values(binary, 0, 0).items() if declared.field(k)}
            raw["time"] = now.timestamp()
            data = validate(declared, raw)
            found = set(search_terms(declared, data))
            cached = (
                data,
                [t for t in found if t[0] not in ("user", "host", "ip", "hash", "upid")],
            )
            templates[(kind, binary % TOOLS)] = cached
        when = start + step * i
        data = dict(cached[0])
        data["time"] = format_timestamp(when)
        seq = first_seq + i
        terms = list(cached[1])
        # The station's own values: canonical already (lower-case names, dotted addresses),
        # so set as validation would leave them.
        mine = _station_values(station, rng.randrange(USERS_PER_STATION))
        for name, role in PER_STATION.items():
            if name in data:
                data[name] = mine[name]
                terms.append((role, mine[name]))
        for name, value in _hashes(binary).items():
            if name in data:
                data[name] = value
                terms.append(("hash", value))
        if "unique_pid" in data:
            data["pid"] = seq % 4_000_000
            data["unique_pid"] = f"{station}-{seq}"
            terms.append(("upid", data["unique_pid"]))
        yield seq, os.urandom(16).hex(), kind, station, when, data, set(terms)


def seed(url: str, count: int, days: float = 20.0, stations: int = 10_000, seed: int = 1) -> Seeded:
    from sqlalchemy import func, select, text

    from garrison.server.events import partitions
    from garrison.server.events.models import ConsumerCursor, Event
    from garrison.server.store.base import utcnow
    from garrison.server.store.engine import Database
    from garrison.server.store.upsert import upsert

    db = Database(url)
    started = time.perf_counter()
    terms_written = 0
    try:
        with db.engine.begin() as conn:
            last = int(conn.scalar(select(func.max(Event.seq))) or 0)
        rows = generate(count, last + 1, days, stations, seed)
        # Chunks are made (and, for COPY, written out as text) by a second thread while the
        # first one's COPY runs: the database works on one core, Python on the other.
        postgres = db.backend == "postgresql"
        for chunk, copy_text in _chunks_ahead(rows, _render if postgres else None):
            with db.transaction() as session:
                raw = session.connection().connection.driver_connection
                if raw is None:
                    raise RuntimeError("no driver connection")
                if copy_text is not None:
                    partitions.ensure(session, {partitions.day_of(r[4]) for r in chunk})
                    terms_written += _copy(raw, copy_text)
                else:
                    dialect = session.get_bind().dialect
                    stamp = Event.__table__.c.time.type.dialect_impl(dialect).bind_processor(
                        dialect
                    )
                    if stamp is None:
                        raise RuntimeError("no bind processor for the event time")
                    terms_written += _executemany(raw, chunk, stamp)
        with db.transaction() as session:
            top = int(session.scalar(select(func.max(Event.seq))) or 0)
            if db.backend == "postgresql":
                session.execute(
                    text("SELECT setval(pg_get_serial_sequence('events', 'seq'), :n)"),
                    {"n": max(top, 1)},
                )
                session.execute(text("ANALYZE events"))
                session.execute(text("ANALYZE event_terms"))
            upsert(
                session,
                ConsumerCursor.__table__,  # type: ignore[arg-type]
                {"name": "procedures", "position": top, "updated_at": utcnow()},
                keys=["name"],
                update=["position", "updated_at"],
            )
    finally:
        db.dispose()
    return Seeded(count, terms_written, time.perf_counter() - started)


_DONE = object()


@dataclass(frozen=True)
class CopyText:
    """A chunk in COPY's text format: the events' lines, the terms' lines, the terms."""

    events: str
    terms: str
    term_count: int


def _chunks_ahead(
    rows: Iterator[Any], render: Callable[[list[Any]], CopyText] | None, ahead: int = 2
) -> Iterator[tuple[list[Any], CopyText | None]]:
    """``rows`` in chunks of :data:`CHUNK` (each with its ``render``, if any), built by a
    thread up to ``ahead`` chunks ahead; an error in the thread is raised here."""
    out: queue.Queue[Any] = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def build() -> None:
        try:
            while not stop.is_set():
                chunk = [row for _, row in zip(range(CHUNK), rows, strict=False)]
                if not chunk:
                    break
                out.put((chunk, render(chunk) if render is not None else None))
        except BaseException as exc:  # handed to the consumer, raised there
            out.put(exc)
        out.put(_DONE)

    worker = threading.Thread(target=build, name="seed-rows", daemon=True)
    worker.start()
    try:
        while True:
            item = out.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a put on a full queue
            try:
                out.get_nowait()
            except queue.Empty:
                worker.join(0.05)


# COPY's text format: a backslash, tab, newline or carriage return in a value is escaped.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_COPY_BLOCK = 1 << 20  # characters sent to the server per write


def _escaped(value: str) -> str:
    # Four scans in C are cheaper than one translate for the usual value that needs none.
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_COPY_ESCAPES)
    return value


def _render(chunk: list[Any]) -> CopyText:
    events: list[str] = []
    terms: list[str] = []
    for seq, uid, kind, station, when, data, found in chunk:
        stamp = when.isoformat()
        body = _escaped(orjson.dumps(data).decode())
        events.append(f"{seq}\t{uid}\t{kind}\t{station}\tstation\t0\t{stamp}\t{stamp}\t{body}\n")
        for role, value in found:
            terms.append(f"{seq}\t{role}\t{_escaped(value)}\t{stamp}\n")
    return CopyText("".join(events), "".join(terms), len(terms))


def _copy(raw: Any, rendered: CopyText) -> int:
    """A rendered chunk's events and terms through COPY in text format, written in blocks
    (psycopg's ``write_row`` per row cost more than the rows' generation)."""
    with raw.cursor() as cur:
        for statement, data in (
            (
                "COPY events (seq, uid, type, station_id, origin, severity, time, received_at,"
                " data) FROM STDIN",
                rendered.events,
            ),
            ("COPY event_terms (seq, role, value, time) FROM STDIN", rendered.terms),
        ):
            with cur.copy(statement) as copy:
                for at in range(0, len(data), _COPY_BLOCK):
                    copy.write(data[at : at + _COPY_BLOCK])
    return rendered.term_count


def _executemany(raw: Any, chunk: list[Any], stamp: Any) -> int:
    """``stamp``: the store's own conversion of a time for SQLite (as the append's)."""
    raw.execute("PRAGMA cache_size=-524288")
    raw.executemany(
        "INSERT INTO events (seq, uid, type, station_id, origin, severity, time, received_at,"
        " data) VALUES (?, ?, ?, ?, 'station', 0, ?, ?, ?)",
        [
            (seq, uid, kind, station, stamp(when), stamp(when), orjson.dumps(data).decode())
            for seq, uid, kind, station, when, data, _ in chunk
        ],
    )
    terms = [
        (seq, role, value, stamp(when))
        for seq, _, _, _, when, _, found in chunk
        for role, value in found
    ]
    raw.executemany("INSERT INTO event_terms (seq, role, value, time) VALUES (?, ?, ?, ?)", terms)
    return len(terms)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--days", type=float, default=20.0)
    parser.add_argument("--stations", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    done = seed(args.database_url, args.events, args.days, args.stations, args.seed)
    print(
        f"{done.events:,} events, {done.terms:,} terms in {done.seconds:.1f} s"
        f" ({done.events_per_second:,.0f} events/s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
