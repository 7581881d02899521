"""Alert ingestion with de-duplication: alerts/s through ``POST /api/alerts`` (Armadito
Alerts task, batches) when no alert is a repeat, and when 90% of them were already stored
(the checksum de-duplication path), beside the floor: the raw insert of the same alert rows,
checksums already computed, in one transaction.

    python -m bench.alerts [--size tiny|full] [--database-url URL]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
from sqlalchemy import insert

from bench.common import (
    Agent,
    enroll_api,
    envelope,
    fig,
    migrate_to_head,
    on_load_core,
    seed_stations_service,
    sqlite_url,
    start_server,
)

SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"alerts": 400, "batch": 50, "clients": 1},
    "full": {"alerts": 20_000, "batch": 100, "clients": 2},
}
THREATS = [
    "Eicar-Test-Signature",
    "Win.Trojan.Agent-123",
    "Unix.Malware.Mirai-7",
    "Doc.Dropper.Emotet-9",
    "Js.Coinminer.Generic-4",
]


def sample_alerts(count: int, seed: int, start: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "name": rng.choice(THREATS),
            "filepath": f"/home/user{i % 40}/Downloads/file-{seed}-{i}.bin",
            "action": "quarantine",
            "module_name": "clamav",
            "detection_time": 1_790_000_000 + i,
        }
        for i in range(start, start + count)
    ]


def with_duplicates(
    stored: list[dict[str, Any]], count: int, ratio: float, seed: int
) -> list[dict[str, Any]]:
    """``count`` alerts, ``ratio`` of them repeats of ``stored``, in random order."""
    rng = random.Random(seed)
    repeats = rng.sample(stored, round(count * ratio))
    fresh = sample_alerts(count - len(repeats), seed, start=10_000_000)
    mixed = repeats + fresh
    rng.shuffle(mixed)
    return mixed


def post_all(
    url: str, agents: list[Agent], per_agent: list[list[dict[str, Any]]], batch: int
) -> tuple[float, int, int]:
    """Each agent posts its alerts in batches from its own thread; (seconds, stored, dups)."""
    errors: list[str] = []
    totals = {"stored": 0, "duplicates": 0}
    lock = threading.Lock()

    def worker(agent: Agent, alerts: list[dict[str, Any]]) -> None:
        bodies = [
            orjson.dumps(
                envelope(agent.id, agent.uuid, "Alerts", {"alerts": alerts[i : i + batch]})
            )
            for i in range(0, len(alerts), batch)
        ]
        with httpx.Client(base_url=url, timeout=120) as client:
            for body in bodies:
                r = client.post("/api/alerts", content=body, headers=agent.headers)
                if r.status_code != 200:
                    errors.append(r.text[:300])
                    return
                with lock:
                    totals["stored"] += r.json()["stored"]
                    totals["duplicates"] += r.json()["duplicates"]

    threads = [
        threading.Thread(target=worker, args=(a, part))
        for a, part in zip(agents, per_agent, strict=True)
    ]
    started = time.perf_counter()
    with on_load_core():
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"alert ingestion failed: {errors[0]}")
    return elapsed, totals["stored"], totals["duplicates"]


def floor_insert(url: str, per_agent: list[list[dict[str, Any]]]) -> float:
    """Seconds to insert the same alert rows (checksums computed) in one transaction."""
    from garrison.server.alerts.models import Alert
    from garrison.server.alerts.service import checksum
    from garrison.server.store.base import utcnow
    from garrison.server.store.engine import Database

    stations, _ = seed_stations_service(url, len(per_agent))
    now = utcnow()
    rows = []
    for station, alerts in zip(stations, per_agent, strict=True):
        for a in alerts:
            detected = dt.datetime.fromtimestamp(a["detection_time"], dt.UTC)
            rows.append(
                {
                    "station_id": station.id,
                    "job_id": None,
                    "threat_name": a["name"],
                    "filepath": a["filepath"],
                    "action": a["action"],
                    "module_name": a["module_name"],
                    "antivirus": "Armadito",
                    "detection_time": detected,
                    "received_at": now,
                    "checksum": checksum(
                        a["name"], a["filepath"], detected, station.id, "Armadito"
                    ),
                    "info": {},
                }
            )
    db = Database(url)
    try:
        started = time.perf_counter()
        with db.engine.begin() as conn:
            conn.execute(insert(Alert), rows)
        return time.perf_counter() - started
    finally:
        db.dispose()


def run(
    size: str, workdir: Path, database_url: str | None = None, floor_url: str | None = None
) -> dict[str, Any]:
    """``database_url``/``floor_url``: two reset PostgreSQL scratch databases, or None for
    SQLite files in ``workdir``."""
    p = SIZES[size]
    n, batch, clients = p["alerts"], p["batch"], p["clients"]
    per_client = n // clients
    first = [sample_alerts(per_client, seed=c) for c in range(clients)]
    if floor_url is None:
        (workdir / "alerts-floor").mkdir(parents=True, exist_ok=True)
        floor_url = sqlite_url(workdir / "alerts-floor")
        migrate_to_head(floor_url)
    floor = floor_insert(floor_url, first)
    with start_server(workdir / "alerts", database_url) as server:
        agents, _ = enroll_api(server, clients, concurrency=clients)
        fresh_s, fresh_stored, _ = post_all(server.url, agents, first, batch)
        second = [with_duplicates(first[c], per_client, 0.9, seed=100 + c) for c in range(clients)]
        dup_s, dup_stored, dup_dups = post_all(server.url, agents, second, batch)
    total = per_client * clients
    floor_rate = total / floor
    fresh_rate = total / fresh_s
    dup_rate = total / dup_s
    return {
        "scenario": "alerts",
        "title": "Alert ingestion with de-duplication (POST /api/alerts)",
        "figures": [
            fig(
                "alerts/s, 0% duplicates",
                fresh_rate,
                "alerts/s",
                floor=floor_rate,
                floor_name="raw insert",
            ),
            fig(
                "alerts/s, 90% duplicates",
                dup_rate,
                "alerts/s",
                floor=floor_rate,
                floor_name="raw insert",
            ),
        ],
        "targets": [],
        "details": {
            **p,
            "database": "postgresql" if database_url else "sqlite",
            "stored_first_run": fresh_stored,
            "stored_second_run": dup_stored,
            "duplicates_second_run": dup_dups,
            "floor_seconds": round(floor, 3),
            "fresh_seconds": round(fresh_s, 3),
            "duplicates_seconds": round(dup_s, 3),
        },
        "notes": [
            "Each new alert also appends a threat_detected event to the log (and the station's "
            "last_alert_at moves on every request); the floor inserts only the alert rows.",
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="alert ingestion with de-duplication")
    parser.add_argument("--size", choices=list(SIZES), default="tiny")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(run(args.size, Path(tmp)), indent=2))


if __name__ == "__main__":
    main()
