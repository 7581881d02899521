"""Searches over a large event log: hash, process, host and time-range searches and an IOC
sweep, p50/p99 (tiny: 20k events; full: 100M on PostgreSQL, 10M on SQLite).

    python -m bench.search [--size tiny|full] [--database-url URL]

The log is filled by the bulk seeding tool (bench/seed.py: the sensor mix over the last 20
days, 10,000 stations, 50,000 binaries), then each kind of search runs ``rounds`` times
with values drawn at random from what was seeded, through the server's own search code
(:func:`garrison.server.events.service.search` and ``ioc_sweep``, a page of 100, with the
count), in a session of its own: the database's time, without HTTP in front.  The
time-range searches ask for one hour somewhere in the 20 days (on PostgreSQL: one day's
partitions).  There is no floor: the target (p99 under 200 ms at 100M events) is absolute.
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import seed as bench_seed
from bench.common import disk_room, fig, migrate_to_head, scenario_main, sqlite_url, target

SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"events": 20_000, "events_postgresql": 20_000, "rounds": 20},
    "full": {"events": 10_000_000, "events_postgresql": 100_000_000, "rounds": 200},
}
PAGE = 100
DAYS = 20.0
STATIONS = 10_000


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def searches(rng: random.Random, now: dt.datetime) -> dict[str, Callable[[Any], Any]]:
    """Each kind of search, as a function of a session (its values drawn at each call)."""
    from garrison.server.events.service import EventQuery, ioc_sweep, search

    def hour() -> tuple[dt.datetime, dt.datetime]:
        start = now - dt.timedelta(hours=rng.randrange(1, int(DAYS * 24)))
        return start, start + dt.timedelta(hours=1)

    def sha() -> str:
        return bench_seed._hashes(rng.randrange(bench_seed.BINARIES))["sha256"]

    def by(q: EventQuery) -> Callable[[Any], Any]:
        return lambda session: search(session, q, PAGE, 0)

    return {
        "hash": lambda s: by(EventQuery(hash=sha()))(s),
        "process": lambda s: by(EventQuery(process=f"tool{rng.randrange(bench_seed.TOOLS)}"))(s),
        "host": lambda s: by(EventQuery(host=f"ws-{rng.randrange(1, STATIONS + 1):07d}"))(s),
        "time range (1 h)": lambda s: by(EventQuery(since=(h := hour())[0], until=h[1]))(s),
        "hash in a time range (1 h)": lambda s: by(
            EventQuery(hash=sha(), since=(h := hour())[0], until=h[1])
        )(s),
        "IOC sweep (20 hashes)": lambda s: ioc_sweep(s, [sha() for _ in range(20)], PAGE),
    }


def run(size: str, workdir: Path, database_url: str | None = None) -> dict[str, Any]:
    p = SIZES[size]
    url = database_url or sqlite_url(workdir, "search.db")
    migrate_to_head(url)
    planned = p["events_postgresql"] if database_url else p["events"]
    # The log the disk can hold: the planned size, else the largest tenth of it that fits.
    # The planned size's targets are then reported as not measured, with the room it needs.
    count, not_run = planned, []
    while not (room := disk_room(url, 0, count)).fits and count >= 10_000:
        not_run.append({"events": count, "reason": room.reason(count)})
        count //= 10
    if not_run and count < 10_000:
        raise RuntimeError(f"search: the disk holds none of its levels ({not_run[0]['reason']})")
    seeded = bench_seed.seed(url, count, days=DAYS, stations=STATIONS, seed=7)
    figures, targets, details = measure(url, count, p["rounds"])
    for skipped in not_run:
        for name in details:
            targets.append(
                target(
                    f"{name} search p99 under 200 ms at {skipped['events']:,} events "
                    f"(not run: {skipped['reason']})",
                    None,
                    200,
                    at_most=True,
                    unit="ms",
                )
            )
    figures.append(fig("seeding rate (bench.seed)", seeded.events_per_second, "events/s"))
    return {
        "scenario": "search",
        "title": f"Search over {count:,} stored events",
        "figures": figures,
        "targets": targets,
        "details": {
            **p,
            "database": "postgresql" if database_url else "sqlite",
            "stored_events": count,
            "levels_not_run": not_run,
            "stored_terms": seeded.terms,
            "seed_seconds": round(seeded.seconds, 1),
            "searches": details,
        },
        "notes": [
            "The server's search functions in a session each, no HTTP: the database's time.",
            "Events seeded by bench/seed.py (outside the API) over 20 days; a time-range "
            "search asks for one hour of them.",
        ],
    }


def measure(
    url: str, count: int, rounds: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """Each kind of search ``rounds`` times over the log at ``url`` (``count`` events)."""
    from garrison.server.store.engine import Database

    rng = random.Random(11)
    db = Database(url)
    figures, targets, details = [], [], {}
    try:
        for name, query in searches(rng, dt.datetime.now(dt.UTC)).items():
            with db.reading() as session:
                query(session)  # warm: the first run reads the indexes in
            took = []
            for _ in range(rounds):
                with db.reading() as session:
                    started = time.perf_counter()
                    query(session)
                    took.append((time.perf_counter() - started) * 1000)
            p50, p99 = statistics.median(took), _percentile(took, 0.99)
            details[name] = {"p50_ms": round(p50, 2), "p99_ms": round(p99, 2)}
            figures.append(fig(f"{name} search p50", p50, "ms"))
            figures.append(fig(f"{name} search p99", p99, "ms"))
            targets.append(
                target(
                    f"{name} search p99 under 200 ms at {count:,} events",
                    p99,
                    200,
                    at_most=True,
                    unit="ms",
                )
            )
    finally:
        db.dispose()
    return figures, targets, details


def main() -> None:
    scenario_main(run, list(SIZES), __doc__.splitlines()[0])


if __name__ == "__main__":
    main()
