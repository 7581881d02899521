"""How cost grows with size: check-in rate and latency, and ingestion rate, with 1k, 10k and
100k enrolled stations, then with 1M and 10M stored events (tiny: 1k stations, 10k events).

    python -m bench.growth [--size tiny|full] [--database-url URL]

One database grows level by level.  Between levels the server is stopped and rows are
seeded fast with SQLAlchemy Core executemany of the real tables (stations with token
hashes; events with their search terms, a fleet's mix of repeated and unique values) in big
transactions; the procedure consumer's cursor is moved past the seeded events (they count as
already processed), and every station is marked seen just now (a restarted server must not
sweep 100k stations as silent).  Then the server starts and is measured:
- check-in: wrk cycling through every station's token (with 100k stations the token cache
  hardly ever hits, as in a real fleet checking in once a minute);
- ingestion: process_started batches over HTTP, as bench/ingest.py sends them, in several
  rounds of the same size; the median round is the figure.

On SQLite the growth target is then measured once more in paired rounds: a copy of the
database as it was at the first event level (1M) is kept, and ingestion rounds alternate
between that copy and the full database (10M), a fresh server for each round.  A machine
whose disk or CPU slows down during the hour the seeding takes then slows both sides
alike, so their ratio still holds; the per-level figures, measured tens of minutes apart,
do not have that guarantee.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import sqlite3
import statistics
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, select

from bench import ingest
from bench import seed as bench_seed
from bench.common import (
    Agent,
    Sampler,
    disk_room,
    fig,
    migrate_to_head,
    on_load_core,
    scenario_main,
    seed_stations_bulk,
    sqlite_url,
    start_server,
    target,
    touch_stations,
)
from bench.loadtool import measure

SIZES: dict[str, dict[str, Any]] = {
    "tiny": {
        "station_levels": [1_000],
        "event_levels": [5_000, 10_000],
        "checkin_seconds": 1,
        "warmup": 0,
        "connections": 50,
        "ingest_events": 1_000,
        "batch": 250,
        "clients": 1,
        "ingest_rounds": 2,
    },
    "full": {
        "station_levels": [1_000, 10_000, 100_000],
        # 100M on PostgreSQL (the log partitioned by day), 10M on SQLite (one table).
        "event_levels": [1_000_000, 10_000_000],
        "event_levels_postgresql": [1_000_000, 10_000_000, 100_000_000],
        "checkin_seconds": 15,
        "warmup": 3,
        "connections": 50,
        "ingest_events": 20_000,
        "batch": 500,
        "clients": 2,
        "ingest_rounds": 5,
    },
}
CHUNK = 100_000


def _pools(rng: random.Random) -> dict[str, list[str]]:
    """A fleet's values: the same binaries run everywhere, a few users per station."""
    digest = hashlib.sha256
    return {
        "sha256": [digest(f"bin{i}".encode()).hexdigest() for i in range(50_000)],
        "md5": [hashlib.md5(f"bin{i}".encode()).hexdigest() for i in range(50_000)],
        "tool": [f"tool{i}" for i in range(5_000)],
        "user": [f"user{i}" for i in range(1_000)],
    }


def seed_events(url: str, count: int, stations: list[Agent], seed: int) -> float:
    """``count`` events of the sensor mix with their search terms, appended after the log's
    last position by the bulk seeding tool (bench/seed.py: COPY on PostgreSQL, executemany
    on SQLite), the procedure consumer's cursor moved past them; returns seconds."""
    top = max((agent.id for agent in stations), default=1)
    return bench_seed.seed(url, count, days=20.0, stations=top, seed=seed).seconds


def _cursors_to(conn: Any, position: int) -> None:
    """The seeded events count as processed by the procedure consumer."""
    from garrison.server.events.models import ConsumerCursor
    from garrison.server.store.base import utcnow

    conn.execute(delete(ConsumerCursor).where(ConsumerCursor.name == "procedures"))
    conn.execute(
        insert(ConsumerCursor),
        [{"name": "procedures", "position": position, "updated_at": utcnow()}],
    )


def stored_events(url: str) -> int:
    from garrison.server.events.models import Event
    from garrison.server.store.engine import Database

    db = Database(url)
    try:
        with db.engine.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(Event)) or 0)
    finally:
        db.dispose()


def measure_level(
    url: str, workdir: Path, agents: list[Agent], p: dict[str, Any], label: str
) -> dict[str, Any]:
    touch_stations(url)
    with start_server(workdir / "growth", url) as server:
        sampler = Sampler(server.pid).start()
        checkin = measure(
            server.url,
            workdir / f"wrk-{label}",
            p["checkin_seconds"],
            p["connections"],
            agents=agents,
            warmup=p["warmup"],
        )
        usage = sampler.stop()
        rates = [_ingest_round(server, agents[0], p) for _ in range(p["ingest_rounds"])]
    return {
        "checkin_requests_per_second": checkin["requests_per_second"],
        "checkin_p50_ms": checkin["p50_ms"],
        "checkin_p99_ms": checkin["p99_ms"],
        "checkin_errors": checkin["non_2xx"] + checkin["socket_errors"],
        "checkin_tool": checkin["tool"],
        # One short round swings by a quarter on a 2-core machine: the median of several.
        "ingest_events_per_second": statistics.median(rates),
        "ingest_rounds_events_per_second": rates,
        **usage,
    }


def _ingest_round(server: Any, agent: Agent, p: dict[str, Any]) -> float:
    events = ingest.sample_events(p["ingest_events"])
    with on_load_core():
        seconds = ingest.post_events(server, agent, events, p["batch"], p["clients"])
    return round(len(events) / seconds, 1)


def snapshot_sqlite(directory: Path, name: str) -> str:
    """A copy of the (stopped) server's SQLite database, its WAL folded in first."""
    source = directory / "garrison.db"
    with sqlite3.connect(source) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    copy = directory / name
    shutil.copyfile(source, copy)
    return f"sqlite:///{copy.resolve()}"


def paired_ingest(
    urls: dict[str, str], workdir: Path, agents: list[Agent], p: dict[str, Any]
) -> dict[str, list[float]]:
    """Ingestion rounds alternating between databases, a fresh server per round; one batch
    is posted before the timed round so both sides start equally warm."""
    rates: dict[str, list[float]] = {label: [] for label in urls}
    warm = {**p, "ingest_events": p["batch"]}
    for _ in range(p["ingest_rounds"]):
        for label, url in urls.items():
            touch_stations(url)
            with start_server(workdir / "growth", url) as server:
                _ingest_round(server, agents[0], warm)
                rates[label].append(_ingest_round(server, agents[0], p))
    return rates


def run(size: str, workdir: Path, database_url: str | None = None) -> dict[str, Any]:
    p = SIZES[size]
    (workdir / "growth").mkdir(parents=True, exist_ok=True)
    url = database_url or sqlite_url(workdir / "growth")
    if database_url is None:
        migrate_to_head(url)
    agents: list[Agent] = []
    levels: list[dict[str, Any]] = []
    for n in p["station_levels"]:
        more, seconds = seed_stations_bulk(url, n - len(agents), first=len(agents))
        agents += more
        stored = stored_events(url)
        row = measure_level(url, workdir, agents, p, f"s{n}")
        levels.append(
            {
                "level": f"{n:,} stations",
                "stations": len(agents),
                "events": stored,
                "seed_seconds": round(seconds, 1),
                **row,
            }
        )
    kept: dict[str, str] = {}  # event level -> URL of its database as it was
    sizes = (
        p.get("event_levels_postgresql", p["event_levels"]) if database_url else p["event_levels"]
    )
    not_run: list[dict[str, Any]] = []
    for n in sizes:
        stored = stored_events(url)
        room = disk_room(url, stored, n - stored)
        if not room.fits:
            # A level the disk cannot hold is said, with the figures it would need, rather
            # than filling the disk halfway through the seeding.
            not_run += [
                {"level": f"{m:,} events", "reason": disk_room(url, stored, m - stored).reason(m)}
                for m in sizes[sizes.index(n) :]
            ]
            break
        seconds = seed_events(url, n - stored, agents, seed=n)
        stored = stored_events(url)
        row = measure_level(url, workdir, agents, p, f"e{n}")
        label = f"{n:,} events"
        levels.append(
            {
                "level": label,
                "stations": len(agents),
                "events": stored,
                "seed_seconds": round(seconds, 1),
                **row,
            }
        )
        if database_url is None and not kept:
            kept[label] = snapshot_sqlite(workdir / "growth", f"growth-e{n}.db")
    paired: dict[str, list[float]] = {}
    if kept and len(p["event_levels"]) >= 2:
        kept[levels[-1]["level"]] = url
        paired = paired_ingest(kept, workdir, agents, p)
    first, last = levels[0], levels[-1]
    station_rows = [r for r in levels if r["level"].endswith("stations")]
    event_rows = [r for r in levels if r["level"].endswith("events")]
    figures = []
    for r in levels:
        figures.append(
            fig(
                f"check-in at {r['level']}",
                r["checkin_requests_per_second"],
                "req/s",
                floor=first["checkin_requests_per_second"],
                floor_name=f"at {first['level']}",
            )
        )
        figures.append(
            fig(
                f"check-in p99 at {r['level']}",
                r["checkin_p99_ms"],
                "ms",
                floor=first["checkin_p99_ms"],
                floor_name=f"at {first['level']}",
                higher_is_better=False,
            )
        )
        figures.append(
            fig(
                f"ingestion at {r['level']}",
                r["ingest_events_per_second"],
                "events/s",
                floor=first["ingest_events_per_second"],
                floor_name=f"at {first['level']}",
            )
        )
    targets = []
    paired_median = {label: statistics.median(r) for label, r in paired.items()}
    if paired:
        (small, big) = list(paired_median)
        figures.append(
            fig(
                f"ingestion at {big}, paired rounds",
                paired_median[big],
                "events/s",
                floor=paired_median[small],
                floor_name=f"at {small}, alternating rounds",
            )
        )
        targets.append(
            target(
                f"ingestion at {big} within 20% of {small} (paired rounds)",
                round(paired_median[big] / paired_median[small], 3),
                0.8,
                unit="x rate",
            )
        )
    elif len(event_rows) >= 2:
        a, b = event_rows[0], event_rows[-1]
        ratio = b["ingest_events_per_second"] / a["ingest_events_per_second"]
        targets.append(
            target(
                f"ingestion at {b['level']} within 20% of {a['level']}",
                round(ratio, 3),
                0.8,
                unit="x rate",
            )
        )
    for skipped in not_run:
        targets.append(
            target(
                f"ingestion at {skipped['level']} within 20% of {sizes[0]:,} events "
                f"(not run: {skipped['reason']})",
                None,
                0.8,
                unit="x rate",
            )
        )
    return {
        "scenario": "growth",
        "title": "Growth: check-in and ingestion as stations and stored events grow",
        "figures": figures,
        "targets": targets,
        "details": {
            **p,
            "database": "postgresql" if database_url else "sqlite",
            "levels": levels,
            "checkin_growth": round(
                last["checkin_requests_per_second"] / first["checkin_requests_per_second"], 3
            ),
            "ingest_growth": round(
                last["ingest_events_per_second"] / first["ingest_events_per_second"], 3
            ),
            "paired_ingest_events_per_second": paired,
            "station_levels_measured": len(station_rows),
            "event_levels_measured": len(event_rows),
            "levels_not_run": not_run,
        },
        "notes": [
            "Ratios here are against the first level (the smallest database), not a floor: "
            "1.0 means no slowdown with size.",
            "Check-ins cycle through every station's token, so with many stations most token "
            "checks miss the token cache and read the database.",
            "The growth target is judged on the paired rounds (SQLite): ingestion alternating "
            "between a copy of the database at the first event level and the full one, so "
            "that a machine slowing down over the run weighs on both sides alike.",
        ],
    }


def main() -> None:
    scenario_main(run, list(SIZES), "cost growth with stations and stored events")


if __name__ == "__main__":
    main()
