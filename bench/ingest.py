"""Event ingestion over HTTP, next to the bare database insert of the same rows.

    python -m bench.ingest [--events 20000] [--batch 500] [--database-url URL]

Both figures are measured in the same run on the same database kind: the floor inserts the
very rows (events + search terms) with plain SQLAlchemy Core in one transaction; the HTTP
figure starts `garrison serve` in a subprocess (pinned to the server core, see
bench/common.py) and posts the events in batches from
`--clients` concurrent connections.  Prints a table and writes bench/results/ingest.json.
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
from sqlalchemy import insert

from garrison.common.catalogue import CATALOGUE, search_terms, validate
from garrison.server.events.models import Event, EventTerm
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


def floor_insert(url: str, events: list[dict[str, Any]]) -> float:
    """Seconds to insert the same rows, already validated, in one transaction."""
    declared = CATALOGUE["process_started"]
    now = utcnow()
    rows, terms = [], []
    for seq, e in enumerate(events, start=1):
        data = validate(declared, e["data"])
        rows.append(
            {
                "seq": seq,
                "uid": e["id"],
                "type": e["type"],
                "station_id": 1,
                "origin": "station",
                "severity": 0,
                "time": now,
                "received_at": now,
                "data": data,
            }
        )
        terms += [{"seq": seq, "role": r, "value": v} for r, v in set(search_terms(declared, data))]
    db = Database(url)
    try:
        started = time.perf_counter()
        with db.engine.begin() as conn:
            conn.execute(insert(Event), rows)
            conn.execute(insert(EventTerm), terms)
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


def run(events_count: int, batch: int, clients: int, database_url: str | None) -> dict[str, Any]:
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
    result = {
        "scenario": "ingestion",
        "events": events_count,
        "batch": batch,
        "clients": clients,
        "database": "postgresql" if database_url else "sqlite",
        "floor_events_per_second": round(events_count / floor, 1),
        "http_events_per_second": round(events_count / http, 1),
        "ratio": round(floor / http, 3),
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument(
        "--database-url",
        default=None,
        help="a PostgreSQL database to empty and use (default: SQLite)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "ingest.json")
    args = parser.parse_args()
    result = run(args.events, args.batch, args.clients, args.database_url)
    print(f"{'scenario':<12}{'db':<12}{'events':>8}{'floor ev/s':>14}{'http ev/s':>12}{'ratio':>8}")
    print(
        f"{'ingestion':<12}{result['database']:<12}{result['events']:>8}"
        f"{result['floor_events_per_second']:>14}{result['http_events_per_second']:>12}"
        f"{result['ratio']:>8}"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
