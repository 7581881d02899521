"""Event ingestion over HTTP, next to the bare database insert of the same rows.

    python -m bench.ingest [--events 20000] [--batch 500] [--database-url URL]
                           [--sustained SECONDS] [--workers 1,2]

Both figures are measured in the same run on the same database kind: the floor writes the
very rows (events + search terms) by the database's fastest native bulk path in one
transaction (PostgreSQL ``COPY`` through psycopg 3, SQLite ``executemany`` through the
driver), so the ratio stays honest whatever the server's write path is; the HTTP
figure starts `garrison serve` in a subprocess (pinned to the server core, see
bench/common.py) and posts the events in batches from
`--clients` concurrent connections.  ``--sustained`` then posts new batches without pause
for that long (300 s for the published figure), once per ``--workers`` count, and samples
every consumer's lag (procedures, each export target).  Prints a table and writes
bench/results/ingest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson

from garrison.common.catalogue import CATALOGUE, search_terms, validate
from garrison.server.store import migrate
from garrison.server.store.base import utcnow
from garrison.server.store.engine import Database

RESULTS = Path(__file__).resolve().parent / "results"


def sample_events(count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": uuid.uuid4().hex,
            "type": "process_started",
            "data": {
                "time": 1_790_000_000 + i,
                "unique_pid": f"{i}",
                "pid": i % 65536,
                "file_path": f"/usr/bin/tool{i % 50}",
                "file_name": f"tool{i % 50}",
                "sha256": f"{i:064x}",
                "md5": f"{i:032x}",
                "user": "alice",
                "host": "ws-01",
                "ip": "10.0.0.5",
                "command_line": f"tool{i % 50} --run {i}",
            },
        }
        for i in range(count)
    ]


def floor_rows(
    events: list[dict[str, Any]],
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The rows the server writes for ``events`` (already validated: no parsing, no
    catalogue checks in the floor), numbered from 1."""
    declared = CATALOGUE["process_started"]
    now = utcnow()
    rows: list[tuple[Any, ...]] = []
    terms: list[tuple[Any, ...]] = []  # (seq, role, value, time): terms carry their time
    for seq, e in enumerate(events, start=1):
        data = validate(declared, e["data"])
        rows.append((seq, e["id"], e["type"], 1, "station", 0, now, now, data))
        terms += [(seq, r, v, now) for r, v in set(search_terms(declared, data))]
    return rows, terms


def floor_insert(url: str, events: list[dict[str, Any]]) -> float:
    """Seconds for the fastest native bulk path of the database to write the same rows
    (events and their search terms) in one transaction: PostgreSQL ``COPY`` (psycopg 3),
    SQLite ``executemany`` of one prepared INSERT per table (the driver itself)."""
    rows, terms = floor_rows(events)
    db = Database(url)
    try:
        with db.engine.connect() as conn:
            raw = conn.connection.driver_connection
            if raw is None:
                raise RuntimeError("no driver connection")
            if db.backend == "postgresql":
                started = time.perf_counter()
                with raw.cursor() as cur:
                    with cur.copy(
                        "COPY events (seq, uid, type, station_id, origin, severity, time,"
                        " received_at, data) FROM STDIN"
                    ) as copy:
                        for row in rows:
                            copy.write_row((*row[:8], orjson.dumps(row[8]).decode()))
                    with cur.copy("COPY event_terms (seq, role, value, time) FROM STDIN") as copy:
                        for term in terms:
                            copy.write_row(term)
                raw.commit()
                return time.perf_counter() - started
            when = "%Y-%m-%d %H:%M:%S.%f"
            started = time.perf_counter()
            raw.execute("BEGIN IMMEDIATE")
            raw.executemany(
                "INSERT INTO events (seq, uid, type, station_id, origin, severity, time,"
                " received_at, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (*r[:6], r[6].strftime(when), r[7].strftime(when), orjson.dumps(r[8]).decode())
                    for r in rows
                ],
            )
            raw.executemany(
                "INSERT INTO event_terms (seq, role, value, time) VALUES (?, ?, ?, ?)",
                [(*t[:3], t[3].strftime(when)) for t in terms],
            )
            raw.execute("COMMIT")
            return time.perf_counter() - started
    finally:
        db.dispose()


def post_events(
    server: Any, agent: Any, events: list[dict[str, Any]], batch: int, clients: int
) -> float:
    """Seconds for ``clients`` threads to post ``events`` in batches as ``agent``."""
    headers = {**agent.headers, "Content-Type": "application/json"}
    bodies = [json.dumps(events[i : i + batch]).encode() for i in range(0, len(events), batch)]
    errors: list[str] = []

    def worker(part: list[bytes]) -> None:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            for body in part:
                r = client.post("/api/events", content=body, headers=headers)
                if r.status_code != 200 or r.json()["stored"] == 0:
                    errors.append(r.text[:200])

    threads = [threading.Thread(target=worker, args=(bodies[i::clients],)) for i in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"ingestion failed: {errors[0]}")
    return elapsed


def http_ingest(url: str | None, events: list[dict[str, Any]], batch: int, clients: int) -> float:
    """``garrison serve`` on the server core, the posting threads on the load core."""
    from bench.common import enroll_api, on_load_core, start_server

    with tempfile.TemporaryDirectory() as tmp, start_server(Path(tmp) / "data", url) as server:
        agents, _ = enroll_api(server, 1, concurrency=1)
        with on_load_core():
            return post_events(server, agents[0], events, batch, clients)


def _batch_body(prefix: str, start: int, batch: int, threats: bool = False) -> bytes:
    """One batch of new process_started events (uids unique across the run); with
    ``threats``, one in THREAT_EVERY a threat_detected instead."""
    events = sample_events(batch)
    for offset, event in enumerate(events):
        event["id"] = f"{prefix}{start + offset}"
        if threats and offset % THREAT_EVERY == 0:
            events[offset] = _threat(event["id"], start + offset)
    return orjson.dumps(events)


def _lag(url: str) -> tuple[int, dict[str, int]]:
    """The log's last position and every consumer's cursor (the procedure consumer's,
    ``procedures``, and each export target's, ``export:<id>``)."""
    from sqlalchemy import func, select

    from garrison.server.events.models import ConsumerCursor, Event

    db = Database(url)
    try:
        with db.engine.connect() as conn:
            top = int(conn.scalar(select(func.max(Event.seq))) or 0)
            cursors = {
                str(name): int(position or 0)
                for name, position in conn.execute(
                    select(ConsumerCursor.name, ConsumerCursor.position)
                )
            }
            return top, cursors
    finally:
        db.dispose()


# The procedure the sustained run enables for the threat_detected events it mixes in (bench
# /lua.py's realistic one, without its host read: no station here is in a group).
PROCEDURE = r"""
local args = ...
if args.virus == nil then return nil end
local name = string.lower(args.virus)
if string.find(name, "eicar", 1, true) then return nil end
local path = args.object or ""
local ext = string.lower(string.match(path, "%.(%w+)$") or "")
if ext == "exe" or ext == "dll" or ext == "scr" then
  garrison.log(string.format("escalated %s on %s", args.virus, tostring(args.station)))
end
return nil
"""
# One event in this many of a sustained batch is a threat_detected (the rest telemetry);
# ``--threat-every`` changes it (1: every event runs the procedure).
THREAT_EVERY = 10


def _threat(uid: str, i: int) -> dict[str, Any]:
    return {
        "id": uid,
        "type": "threat_detected",
        "data": {
            "id": 1,
            "station": "ws-01",
            "address": "10.0.0.5",
            "time": 1_790_000_000 + i,
            "object": f"/home/alice/Downloads/file{i}.exe",
            "virus": "Win.Trojan.Agent-123",
            "action": "quarantine",
        },
    }


def _consumers(server: Any, data_dir: Path) -> dict[str, Any]:
    """An export target (eset-json to a file, every event) and the threat_detected
    procedure, set up through the admin API before the sustained run posts."""
    admin = f"{server.url}/admin/v1"
    with httpx.Client(timeout=30, headers=server.admin) as client:
        put = client.put(
            f"{admin}/procedures/threat_detected", json={"source": PROCEDURE, "enabled": True}
        )
        if put.status_code != 200:
            raise RuntimeError(f"could not enable the procedure: {put.text[:200]}")
        target = client.post(
            f"{admin}/export-targets",
            json={
                "name": "bench-file",
                "format": "eset-json",
                "transport": "file",
                "path": str(data_dir / "export" / "bench.ndjson"),
                "options": {
                    "aggregation_window_seconds": 0,
                    "heartbeat_seconds": 0,
                    "profile": "garrison",
                },
            },
        )
        if target.status_code != 201:
            raise RuntimeError(f"could not create the export target: {target.text[:200]}")
        return {"procedure": "threat_detected", "export_target": target.json()["id"]}


def sustained(
    url: str,
    seconds: float,
    batch: int,
    clients: int,
    workers: int = 1,
    consumers: bool = True,
) -> dict[str, Any]:
    """Post new batches from ``clients`` connections for ``seconds`` without pause; the
    rate per tenth of the run shows whether it holds (no burst into an empty cache), and
    every consumer's lag (the procedure consumer, each export target) is sampled every
    second.  With ``consumers`` the run first enables a threat_detected procedure and an
    export target (eset-json to a file, every event), and one event in THREAT_EVERY is a
    threat_detected: the consumers then have work at the sustained rate.  ``workers`` is
    the server's process count, passed as ``--workers`` once the server has it (1: the
    option is not given, so this runs on a server without it)."""
    from bench.common import (
        _tree_sum,
        cpu_of_named,
        cpu_seconds_with_reaped,
        enroll_api,
        on_load_core,
        start_server,
    )
    from garrison.server.settings import Settings

    if workers > 1 and "workers" not in Settings.model_fields:
        raise RuntimeError("this server has no workers setting: sustained runs at 1 worker only")
    extra = {"GARRISON_WORKERS": str(workers)} if workers > 1 else None
    with (
        tempfile.TemporaryDirectory() as tmp,
        start_server(Path(tmp) / "data", url, extra_env=extra) as server,
    ):
        agents, _ = enroll_api(server, 1, concurrency=1)
        headers = {**agents[0].headers, "Content-Type": "application/json"}
        setup = _consumers(server, server.data_dir) if consumers else {}
        done: list[tuple[float, int]] = []  # (finished at, events stored)
        errors: list[str] = []
        lags: list[tuple[int, dict[str, int]]] = []  # (log's end, each consumer's lag)
        lock = threading.Lock()
        started = time.perf_counter()
        deadline = started + seconds

        def post(client_index: int) -> None:
            sent = 0
            with httpx.Client(base_url=server.url, timeout=120) as client:
                while time.perf_counter() < deadline and not errors:
                    body = _batch_body(f"c{client_index}-", sent, batch, consumers)
                    sent += batch
                    r = client.post("/api/events", content=body, headers=headers)
                    if r.status_code != 200:
                        errors.append(r.text[:200])
                        return
                    with lock:
                        done.append((time.perf_counter() - started, int(r.json()["stored"])))

        # The server's CPU (every worker and procedure worker) and the database's, over the
        # posting: on the 2-core box they share the cores with the load generator.
        server_cpu0 = _tree_sum(cpu_seconds_with_reaped, server.pid)
        database_cpu0 = cpu_of_named("postgres") if not url.startswith("sqlite") else 0.0
        with on_load_core():
            threads = [threading.Thread(target=post, args=(i,)) for i in range(clients)]
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                time.sleep(1.0)
                top, cursors = _lag(url)
                lags.append((top, {name: top - at for name, at in cursors.items()}))
            for t in threads:
                t.join()
        elapsed = time.perf_counter() - started
        server_cpu = _tree_sum(cpu_seconds_with_reaped, server.pid) - server_cpu0
        database_cpu = (
            cpu_of_named("postgres") - database_cpu0 if not url.startswith("sqlite") else None
        )
        # Drained: how long each consumer takes to reach the end once posting stops.
        drain_started = time.perf_counter()
        drains: dict[str, float] = {}
        top, cursors = _lag(url)
        while time.perf_counter() - drain_started < 60:
            for name, position in cursors.items():
                if position >= top and name not in drains:
                    drains[name] = round(time.perf_counter() - drain_started, 2)
            if len(drains) == len(cursors):
                break
            time.sleep(0.2)
            top, cursors = _lag(url)
        drain = time.perf_counter() - drain_started
    if errors:
        raise RuntimeError(f"sustained ingestion failed: {errors[0]}")
    stored = sum(n for _, n in done)
    tenths = [0] * 10
    for at, n in done:
        tenths[min(9, int(at / elapsed * 10))] += n
    rate = stored / elapsed
    names = sorted({name for _, sample in lags for name in sample})
    per_consumer: dict[str, dict[str, Any]] = {}
    for name in names:
        worst = max((sample.get(name, 0) for _, sample in lags), default=0)
        per_consumer[name] = {
            "max_lag_events": worst,
            # Events behind, over the rate they arrive at: how far behind in time.
            "max_lag_seconds": round(worst / rate, 2) if rate else 0.0,
            "drain_seconds": drains.get(name, round(drain, 2)),
            "drained": name in drains,
        }
    max_lag = max((c["max_lag_events"] for c in per_consumer.values()), default=0)
    return {
        "seconds": round(elapsed, 1),
        "workers": workers,
        "stored": stored,
        "events_per_second": round(rate, 1),
        "tenths_events_per_second": [round(n / (elapsed / 10), 1) for n in tenths],
        "consumers": per_consumer,
        "consumer_setup": setup,
        "consumer_max_lag_events": max_lag,
        "consumer_max_lag_seconds": round(max_lag / rate, 2) if rate else 0.0,
        "consumer_drain_seconds": round(drain, 2),
        # Percent of one core over the posting; the database's is None on SQLite (in the
        # server's own processes).
        "server_cpu_percent": round(100 * server_cpu / elapsed, 1),
        "database_cpu_percent": (
            round(100 * database_cpu / elapsed, 1) if database_cpu is not None else None
        ),
        "threat_every": THREAT_EVERY,
    }


def run(
    events_count: int,
    batch: int,
    clients: int,
    database_url: str | None,
    sustained_seconds: float = 0,
    workers: tuple[int, ...] = (1,),
) -> dict[str, Any]:
    events = sample_events(events_count)
    with tempfile.TemporaryDirectory() as tmp:
        floor_url = database_url or f"sqlite:///{tmp}/floor.db"
        if database_url is None:
            migrate.upgrade(floor_url)
        else:
            _reset(floor_url)
        floor = floor_insert(floor_url, events)
        if database_url is not None:
            _reset(database_url)
            http_url: str | None = database_url
        else:
            http_url = f"sqlite:///{tmp}/http.db"
        http = http_ingest(http_url, events, batch, clients)
        held: list[dict[str, Any]] = []
        for n in workers if sustained_seconds > 0 else ():
            if database_url is not None:
                _reset(database_url)
                held_url = database_url
            else:
                held_url = f"sqlite:///{tmp}/sustained-{n}.db"
                migrate.upgrade(held_url)
            held.append(sustained(held_url, sustained_seconds, batch, clients, n))
    result = {
        "scenario": "ingestion",
        "events": events_count,
        "batch": batch,
        "clients": clients,
        "database": "postgresql" if database_url else "sqlite",
        "floor_events_per_second": round(events_count / floor, 1),
        "http_events_per_second": round(events_count / http, 1),
        "ratio": round(floor / http, 3),
        "floor": "COPY" if database_url else "executemany, one transaction",
        "sustained": held,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return result


def _reset(url: str) -> None:
    """An empty, migrated schema in the given PostgreSQL database."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    target = make_url(url)
    server = create_engine(
        target.set(drivername="postgresql+psycopg", database="postgres"),
        isolation_level="AUTOCOMMIT",
    )
    with server.connect() as conn:
        exists = conn.scalar(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database}
        )
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    server.dispose()
    db = Database(url)
    try:
        with db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    finally:
        db.dispose()
    migrate.upgrade(url)


def main() -> None:
    global THREAT_EVERY
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument(
        "--database-url",
        default=None,
        help="a PostgreSQL database to empty and use (default: SQLite)",
    )
    parser.add_argument(
        "--sustained", type=float, default=0, help="also post without pause for this many s"
    )
    parser.add_argument(
        "--workers",
        default="1",
        help="server process counts for the sustained run, comma-separated (e.g. 1,2)",
    )
    parser.add_argument(
        "--threat-every",
        type=int,
        default=THREAT_EVERY,
        help="one sustained event in this many is a threat_detected, run by the procedure",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "ingest.json")
    args = parser.parse_args()
    if args.threat_every < 1:
        parser.error("--threat-every must be at least 1")
    THREAT_EVERY = args.threat_every
    workers = tuple(int(n) for n in args.workers.split(","))
    result = run(args.events, args.batch, args.clients, args.database_url, args.sustained, workers)
    print(f"{'scenario':<12}{'db':<12}{'events':>8}{'floor ev/s':>14}{'http ev/s':>12}{'ratio':>8}")
    print(
        f"{'ingestion':<12}{result['database']:<12}{result['events']:>8}"
        f"{result['floor_events_per_second']:>14}{result['http_events_per_second']:>12}"
        f"{result['ratio']:>8}"
    )
    for held in result["sustained"]:
        print(
            f"{'sustained':<12}{result['database']:<12}{held['stored']:>8}"
            f"{held['events_per_second']:>12} ev/s over {held['seconds']} s, "
            f"{held['workers']} worker(s), consumer lag max {held['consumer_max_lag_seconds']} s"
        )
        for name, lag in held["consumers"].items():
            print(
                f"{'  lag':<12}{name:<24}max {lag['max_lag_events']} events "
                f"({lag['max_lag_seconds']} s), drained in {lag['drain_seconds']} s"
                + ("" if lag["drained"] else " (NOT drained within 60 s)")
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
