"""Job dispatch latency with N agents holding long-poll Getjobs (``?wait=30``, re-issued as
soon as it returns): the time from ``POST /admin/v1/jobs`` (for one station that is
waiting) to that agent's receipt of the job.

    python -m bench.dispatch [--size tiny|full] [--database-url URL]

Stations are seeded with the server's own enrollment code before the server starts (see
bench/fleet.py for why).  The generator raises its fd limit (one socket per agent; the
server, its child, inherits the limit).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from bench.common import (
    Agent,
    Sampler,
    Server,
    fig,
    on_load_core,
    percentile,
    raise_fd_limit,
    runjobs_body,
    scenario_main,
    seeded_database,
    start_server,
    target,
)
from bench.fleet import _try_uvloop
from bench.rawhttp import Connection

SIZES: dict[str, dict[str, Any]] = {
    "tiny": {
        "agents": 200,
        "jobs": 20,
        "job_every": 0.1,
        "wait": 30,
        "ramp_seconds": 1,
        "max_seconds": 30,
    },
    "full": {
        "agents": 10_000,
        "jobs": 300,
        "job_every": 0.2,
        "wait": 30,
        "ramp_seconds": 30,
        "max_seconds": 180,
    },
}


async def _simulate(server: Server, agents: list[Agent], p: dict[str, Any]) -> dict[str, Any]:
    host, port, wait = "127.0.0.1", server.port, p["wait"]
    rng = random.Random(3)
    holding: dict[int, float] = {}  # agent index -> when its current poll was sent
    posted: dict[int, float] = {}  # station id -> when its job was posted
    latency_ms: list[float] = []
    admin_ms: list[float] = []
    errors: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    stopping = asyncio.Event()
    delivered = asyncio.Event()

    async def agent_loop(index: int, agent: Agent) -> None:
        conn = Connection(host, port)
        path = agent.getjobs_path + f"&wait={wait}"
        while not stopping.is_set():
            holding[index] = time.perf_counter()
            try:
                reply = await asyncio.wait_for(conn.request("GET", path, agent.headers), wait + 30)
            except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                holding.pop(index, None)
                if stopping.is_set():
                    break
                errors[type(exc).__name__] += 1
                conn.close()
                await asyncio.sleep(1)
                continue
            received = time.perf_counter()
            holding.pop(index, None)
            counts["polls"] += 1
            if reply.status != 200:
                errors[f"HTTP {reply.status}"] += 1
                await asyncio.sleep(1)
                continue
            jobs = orjson.loads(reply.body).get("jobs", [])
            if jobs and agent.id in posted:
                latency_ms.append((received - posted.pop(agent.id)) * 1000)
                if not posted and counts["jobs_posted"] >= p["jobs"]:
                    delivered.set()
            for job in jobs:
                counts["jobs_received"] += 1
                body = runjobs_body(agent.id, agent.uuid, job["job_id"])
                try:
                    r = await asyncio.wait_for(
                        conn.request("POST", "/api/jobs", agent.headers, body), 30
                    )
                    if r.status != 200:
                        errors[f"Runjobs HTTP {r.status}"] += 1
                except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                    errors[type(exc).__name__] += 1
                    conn.close()
        conn.close()

    # Ramp up: agents open their long polls at a bounded rate, like a fleet coming online.
    tasks = []
    ramp_started = time.perf_counter()
    for index, agent in enumerate(agents):
        tasks.append(asyncio.create_task(agent_loop(index, agent)))
        if index % 100 == 99:
            await asyncio.sleep(
                max(
                    0.0,
                    ramp_started
                    + (index + 1) / len(agents) * p["ramp_seconds"]
                    - time.perf_counter(),
                )
            )
    # Every agent has sent its poll, and the server has had time to take it in.
    while len(holding) < len(agents) * 0.99 and time.perf_counter() - ramp_started < 300:
        await asyncio.sleep(0.2)
    await asyncio.sleep(2.0)
    ramp_seconds = time.perf_counter() - ramp_started
    holding_at_start = len(holding)

    sampler = Sampler(server.pid).start()
    lag_ms: list[float] = []

    async def lag_monitor() -> None:
        # How late this event loop runs a 10 ms timer: the generator's own delay, which
        # every latency measured here includes.
        while not stopping.is_set():
            t0 = time.perf_counter()
            await asyncio.sleep(0.01)
            lag_ms.append((time.perf_counter() - t0 - 0.01) * 1000)

    monitor = asyncio.create_task(lag_monitor())
    admin = Connection(host, port)
    headers = {**server.admin, "Content-Type": "application/json"}
    by_index = {i: a for i, a in enumerate(agents)}
    run_started = time.perf_counter()
    for _ in range(p["jobs"]):
        if time.perf_counter() - run_started > p["max_seconds"]:
            counts["stopped_at_time_limit"] = 1
            break
        now = time.perf_counter()
        candidates = [
            i for i, since in holding.items() if now - since > 1.0 and by_index[i].id not in posted
        ]
        if candidates:
            agent = by_index[rng.choice(candidates)]
            body = orjson.dumps(
                {
                    "type": "Scan",
                    "station_ids": [agent.id],
                    "priority": 2,
                    "params": {"path": "/tmp/bench"},
                }
            )
            posted[agent.id] = time.perf_counter()
            t0 = time.perf_counter()
            try:
                reply = await asyncio.wait_for(
                    admin.request("POST", "/admin/v1/jobs", headers, body), 30
                )
                if reply.status != 201:
                    errors[f"admin HTTP {reply.status}"] += 1
                    posted.pop(agent.id, None)
            except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                errors[f"admin {type(exc).__name__}"] += 1
                posted.pop(agent.id, None)
                admin.close()
            admin_ms.append((time.perf_counter() - t0) * 1000)
            counts["jobs_posted"] += 1
        else:
            counts["no_candidate"] += 1
        await asyncio.sleep(p["job_every"])
    if posted:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(delivered.wait(), wait + 5)
    run_seconds = time.perf_counter() - run_started
    usage = sampler.stop()
    monitor.cancel()
    counts["undelivered"] = len(posted)
    stopping.set()
    admin.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "latency_ms": latency_ms,
        "admin_ms": admin_ms,
        "errors": dict(errors),
        "counts": dict(counts),
        "ramp_seconds": ramp_seconds,
        "holding_at_start": holding_at_start,
        "run_seconds": run_seconds,
        "lag_ms": lag_ms,
        "usage": usage,
    }


def run(size: str, workdir: Path, database_url: str | None = None) -> dict[str, Any]:
    p = SIZES[size]
    fd_limit = raise_fd_limit()
    if fd_limit < p["agents"] + 1000:
        raise RuntimeError(f"fd limit {fd_limit} is too low for {p['agents']} connections")
    url, agents, seed_seconds = seeded_database(workdir / "dispatch", database_url, p["agents"])
    with start_server(workdir / "dispatch", url) as server, on_load_core():
        _try_uvloop()
        sim = asyncio.run(_simulate(server, agents, p))
        asyncio.set_event_loop_policy(None)
    lat = sim["latency_ms"]
    p99 = percentile(lat, 99)
    errors = sum(sim["errors"].values())
    return {
        "scenario": "dispatch",
        "title": f"Job dispatch to {p['agents']:,} agents holding long polls (wait={p['wait']})",
        "figures": [
            fig("dispatch p50", percentile(lat, 50), "ms", higher_is_better=False),
            fig("dispatch p99", p99, "ms", higher_is_better=False),
            fig("dispatch max", max(lat, default=0.0), "ms", higher_is_better=False),
            fig(
                "POST /admin/v1/jobs p99",
                percentile(sim["admin_ms"], 99),
                "ms",
                higher_is_better=False,
            ),
            fig(
                "server CPU (holding)",
                sim["usage"]["server_cpu_percent"],
                "% of a core",
                higher_is_better=False,
            ),
            fig(
                "server RSS (max)",
                sim["usage"]["server_rss_max_mib"],
                "MiB",
                higher_is_better=False,
            ),
        ],
        "targets": [
            target(
                f"dispatch p99 < 1 s with {p['agents']:,} long-polling agents",
                round(p99, 2),
                1000,
                at_most=True,
                unit="ms",
            ),
        ],
        "details": {
            **p,
            "enrollment": "seeded with garrison.server.stations.service.enroll in one "
            "transaction before the server started",
            "seed_seconds": round(seed_seconds, 2),
            "fd_limit": fd_limit,
            "ramp_measured_seconds": round(sim["ramp_seconds"], 1),
            "generator_lag_p99_ms": round(percentile(sim["lag_ms"], 99), 2),
            "holding_at_start": sim["holding_at_start"],
            "measured_seconds": round(sim["run_seconds"], 1),
            "jobs_measured": len(lat),
            "errors": sim["errors"],
            "error_count": errors,
            "counts": sim["counts"],
            **sim["usage"],
        },
        "notes": [
            "Latency runs from just before the admin POST is sent to the moment the agent "
            "has read the Getjobs answer holding the job; the job goes to a station whose "
            "poll has been held for at least 1 s.",
            "Agents open their polls spread evenly over one wait period (as a fleet with "
            "random phases), so re-issued polls arrive at a steady rate, not in waves. "
            "generator_lag is how late the generator's own event loop ran: it bounds how much "
            "of a measured latency is the generator's.",
        ],
    }


def main() -> None:
    scenario_main(run, list(SIZES), "job dispatch latency to long-polling agents")


if __name__ == "__main__":
    main()
