"""A fleet at its check-in interval: N simulated agents, each running Getjobs every
``interval`` seconds (random phase), with jobs flowing: an administrator creates a Scan job
for a few random stations every few seconds, and an agent that receives a job reports its
Runjobs result; a share of the agents (``telemetry_share``, 10 %) also sends a batch of
sensor events every ``telemetry_every`` seconds (10 s).  Sustained for ``duration`` seconds,
measured from the agents' side (latency, errors) and the server's (CPU and RSS from /proc,
summed over the supervisor and its ``--workers``).

    python -m bench.fleet [--size tiny|full|100k] [--database-url URL]

``100k`` is issue 20's fleet: 100,000 agents at 60 s, with ``workers`` server processes
(every core); it needs a quiet machine for about eight minutes (docs/BENCHMARKS.md).

The N stations are seeded with the server's own enrollment code
(``garrison.server.stations.service.enroll``, one transaction) before the server starts:
through the API, enrollment runs at about 50/s on this machine kind, so 10,000 agents would
take minutes; the API enrollment rate is measured on a sample and reported.  Each
check-in opens a new connection, as an agent that sleeps a minute between check-ins does
(uvicorn closes idle keep-alive connections after 5 s).
"""

from __future__ import annotations

import asyncio
import errno
import random
import resource
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from bench.common import (
    Agent,
    Sampler,
    Server,
    enroll_api,
    fig,
    on_load_core,
    percentile,
    process_tree,
    raise_fd_limit,
    runjobs_body,
    scratch_url,
    seeded_database,
    start_server,
    target,
)
from bench.netprobe import NetSampler
from bench.rawhttp import Connection

SIZES: dict[str, dict[str, Any]] = {
    "tiny": {
        "agents": 200,
        "interval": 2.0,
        "duration": 6.0,
        "job_every": 0.5,
        "job_targets": 3,
        "api_enrollments": 30,
        "telemetry_share": 0.1,
        "telemetry_every": 1.0,
        "events_per_batch": 10,
        "workers": 2,
    },
    "full": {
        "agents": 10_000,
        "interval": 60.0,
        "duration": 300.0,
        "job_every": 2.0,
        "job_targets": 20,
        "api_enrollments": 500,
        "telemetry_share": 0.0,
        "telemetry_every": 10.0,
        "events_per_batch": 10,
        "workers": 1,
    },
    "100k": {
        "agents": 100_000,
        "interval": 60.0,
        "duration": 300.0,
        "job_every": 2.0,
        "job_targets": 20,
        "api_enrollments": 500,
        "telemetry_share": 0.1,
        "telemetry_every": 10.0,
        "events_per_batch": 10,
        "workers": 2,
    },
}
TIMEOUT = 30.0
# The generator's source addresses (every 127/8 address is loopback on Linux): one source
# has ~28,000 ephemeral ports toward the server, half of them preferred by connect(), and
# past ~14,000 connections open at once each connect() cost ~2 ms searching for a free one
# (bench/findings.md, issue 20, "the cause found"); real agents come from many addresses.
SOURCES = [f"127.0.0.{i}" for i in range(2, 10)]


def source_of(agent: Agent) -> str | None:
    return SOURCES[agent.id % len(SOURCES)] if sys.platform == "linux" else None


def error_name(exc: BaseException, phase: str) -> str:
    """``TimeoutError (connect)``, ``OSError EMFILE (connect)``: the errno and the phase are
    what tell a full listen queue from a descriptor limit from a slow answer."""
    name = type(exc).__name__
    number = getattr(exc, "errno", None)
    if isinstance(number, int):
        name += f" {errno.errorcode.get(number, str(number))}"
    return f"{name} ({phase})"


def error_code(body: bytes) -> str:
    """The ``code`` of a Garrison error body (``overloaded``, ``database_unavailable``)."""
    try:
        found = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    return str(found.get("code", "")) if isinstance(found, dict) else ""


async def _simulate(
    server: Server,
    agents: list[Agent],
    interval: float,
    duration: float,
    job_every: float,
    job_targets: int,
    telemetry: tuple[float, float, int] = (0.0, 10.0, 10),
) -> dict[str, Any]:
    host, port = "127.0.0.1", server.port
    share, telemetry_every, per_batch = telemetry
    telemetry_ms: list[float] = []
    rng = random.Random(6)
    checkin_ms: list[float] = []
    runjobs_ms: list[float] = []
    admin_ms: list[float] = []
    lag_ms: list[float] = []
    connect_ms: list[float] = []
    errors: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    start = time.perf_counter() + 0.5
    stop = start + duration
    # The descriptors this process may use for agents' connections: three quarters of its
    # limit.  A closed transport gives its descriptor back on a later turn of the event loop,
    # so a lagging loop holds more than the connections it counts: with a margin of 512,
    # 11,309 connects still failed with EMFILE at 100,000 agents.
    slots = asyncio.Semaphore(max(64, resource.getrlimit(resource.RLIMIT_NOFILE)[0] * 3 // 4))

    async def call(
        conn: Connection,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes = b"",
        keep_alive: bool = True,
    ) -> tuple[int, bytes] | None:
        phase = "connect"
        try:
            async with asyncio.timeout(TIMEOUT):
                if conn.writer is None:
                    t0 = time.perf_counter()
                    await conn.open()
                    connect_ms.append((time.perf_counter() - t0) * 1000)
                phase = "exchange"
                reply = await conn.request(method, path, headers, body, keep_alive)
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
            errors[error_name(exc, phase)] += 1
            conn.close()
            return None
        if reply.status != 200 and reply.status != 201:
            errors[f"HTTP {reply.status} {error_code(reply.body)}".rstrip()] += 1
        return reply.status, reply.body

    async def descriptor() -> None:
        """A slot under this process's descriptor limit: one process plays every agent, so
        past its limit its own connects failed with EMFILE, counted as the server's errors.
        A wait here is the generator's (it shows in its lag), not the server's."""
        if slots.locked():
            counts["waited_for_descriptor"] += 1
        await slots.acquire()

    async def agent_loop(agent: Agent, phase: float) -> None:
        due = start + phase
        while due < stop:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await descriptor()
            try:
                await checkin(agent, due)
            finally:
                slots.release()
            due += interval

    async def checkin(agent: Agent, due: float) -> None:
        now = time.perf_counter()
        lag_ms.append((now - due) * 1000)
        conn = Connection(host, port, source_of(agent))
        t0 = time.perf_counter()
        # Connection: close, so the server closes first (see rawhttp): a Runjobs after
        # it opens a new connection, as an agent would after a minute's sleep anyway.
        got = await call(conn, "GET", agent.getjobs_path, agent.headers, keep_alive=False)
        checkin_ms.append((time.perf_counter() - t0) * 1000)
        counts["checkins"] += 1
        if got is not None and got[0] == 200:
            for job in orjson.loads(got[1]).get("jobs", []):
                counts["jobs_received"] += 1
                body = runjobs_body(agent.id, agent.uuid, job["job_id"])
                t1 = time.perf_counter()
                done = await call(conn, "POST", "/api/jobs", agent.headers, body, keep_alive=False)
                if done is not None:
                    counts["runjobs"] += 1
                runjobs_ms.append((time.perf_counter() - t1) * 1000)
        conn.close()

    async def admin_loop() -> None:
        conn = Connection(host, port)
        headers = {**server.admin, "Content-Type": "application/json"}
        due = start + job_every / 2
        while True:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if time.perf_counter() >= stop - interval:
                break  # jobs created in the last interval could not be delivered in time
            ids = [a.id for a in rng.sample(agents, min(job_targets, len(agents)))]
            body = orjson.dumps(
                {
                    "type": "Scan",
                    "station_ids": ids,
                    "priority": 1,
                    "params": {"path": "/tmp/bench"},
                }
            )
            t0 = time.perf_counter()
            got = await call(conn, "POST", "/admin/v1/jobs", headers, body)
            admin_ms.append((time.perf_counter() - t0) * 1000)
            if got is not None and got[0] == 201:
                counts["jobs_created"] += 1
                counts["job_targets"] += len(ids)
            due += job_every
        conn.close()

    async def telemetry_loop(agent: Agent, phase: float) -> None:
        due, sequence = start + phase, 0
        while due < stop:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            batch = [
                {
                    "id": f"{agent.id}-{sequence}-{i}",
                    "type": "process_started",
                    "data": {
                        "time": int(time.time()),
                        "unique_pid": f"{agent.id}-{sequence}-{i}",
                        "pid": 1000 + i,
                        "file_path": f"/usr/bin/tool{i}",
                        "file_name": f"tool{i}",
                        "sha256": f"{agent.id * 1000 + i:064x}",
                        "user": "alice",
                        "command_line": f"tool{i} --run {sequence}",
                    },
                }
                for i in range(per_batch)
            ]
            sequence += 1
            await descriptor()
            try:
                conn = Connection(host, port, source_of(agent))
                t0 = time.perf_counter()
                got = await call(
                    conn,
                    "POST",
                    "/api/events",
                    agent.headers,
                    orjson.dumps(batch),
                    keep_alive=False,
                )
                telemetry_ms.append((time.perf_counter() - t0) * 1000)
                if got is not None and got[0] == 200:
                    counts["telemetry_batches"] += 1
                    counts["events_stored"] += int(orjson.loads(got[1]).get("stored", 0))
                conn.close()
            finally:
                slots.release()
            due += telemetry_every

    tasks = [agent_loop(a, rng.uniform(0, interval)) for a in agents]
    senders = agents[: int(len(agents) * share)]
    tasks += [telemetry_loop(a, rng.uniform(0, telemetry_every)) for a in senders]
    await asyncio.gather(admin_loop(), *tasks)
    elapsed = time.perf_counter() - start
    total = counts["checkins"] + counts["runjobs"] + counts["jobs_created"] + len(telemetry_ms)
    return {
        "elapsed": elapsed,
        "checkin_ms": checkin_ms,
        "runjobs_ms": runjobs_ms,
        "admin_ms": admin_ms,
        "lag_ms": lag_ms,
        "connect_ms": connect_ms,
        "telemetry_ms": telemetry_ms,
        "errors": dict(errors),
        "counts": dict(counts),
        "requests": total,
    }


def _try_uvloop() -> None:
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass


def run(size: str, workdir: Path, database_url: str | None = None) -> dict[str, Any]:
    p = SIZES[size]
    # 100,000 stations through the enrollment code take over a minute: plain INSERTs of the
    # same rows (seed_stations_bulk) take seconds.
    bulk = p["agents"] > 20_000
    url, agents, seed_seconds = seeded_database(
        workdir / "fleet", database_url, p["agents"], bulk=bulk
    )
    workers = int(p.get("workers", 1))
    # One worker stays on the server's core; several share every core with the generator.
    placement: dict[str, Any] = {} if workers == 1 else {"cpu": None}
    env = {"GARRISON_WORKERS": str(workers)}
    with start_server(workdir / "fleet", url, extra_env=env, **placement) as server:
        sampler = Sampler(server.pid, tree=True).start()
        net = NetSampler(server.port, process_tree(server.pid)).start()
        # The generator's own CPU (this process: its event loop and the sampler thread),
        # reported beside the server's: on a 2-core box they share the cores.
        gen_cpu0, gen_t0 = time.process_time(), time.monotonic()
        with on_load_core():
            _try_uvloop()
            sim = asyncio.run(
                _simulate(
                    server,
                    agents,
                    p["interval"],
                    p["duration"],
                    p["job_every"],
                    p["job_targets"],
                    (p["telemetry_share"], p["telemetry_every"], p["events_per_batch"]),
                )
            )
            asyncio.set_event_loop_policy(None)
        usage = sampler.stop()
        kernel = net.stop()
        # A worker that dies is started again by the supervisor: its CPU time leaves the
        # sampled tree with it, so say how often it happened, and what the log said last.
        log_lines = server.log_tail(1_000_000).splitlines()
        restarts = [line for line in log_lines if "exited with" in line]
        log_tail = log_lines[-40:] if restarts else []
        generator_cpu = 100 * (time.process_time() - gen_cpu0) / (time.monotonic() - gen_t0)
        # The API enrollment rate, on a sample (after the run: it adds stations).
        enrolled, enroll_seconds = enroll_api(server, p["api_enrollments"], concurrency=64)
    errors = sum(sim["errors"].values())
    requests = max(1, sim["requests"])
    p99 = percentile(sim["checkin_ms"], 99)
    rss = usage["server_rss_max_mib"]
    counts = sim["counts"]
    # Issue 20's target for 100,000 agents on every core; the first wave's for 10,000 on one.
    rss_target_mib = 2048 if p["agents"] >= 100_000 else 1024
    return {
        "scenario": "fleet",
        "title": f"{p['agents']:,} agents checking in every {p['interval']:g} s, jobs flowing"
        + (
            f", {p['telemetry_share']:.0%} sending telemetry every {p['telemetry_every']:g} s"
            if p["telemetry_share"]
            else ""
        )
        + f" ({workers} worker{'s' if workers > 1 else ''})",
        "figures": [
            fig("check-ins/s", counts.get("checkins", 0) / p["duration"], "req/s"),
            fig("check-in p50", percentile(sim["checkin_ms"], 50), "ms", higher_is_better=False),
            fig("check-in p99", p99, "ms", higher_is_better=False),
            fig("error rate", 100 * errors / requests, "%", higher_is_better=False),
            fig("server CPU", usage["server_cpu_percent"], "% of a core", higher_is_better=False),
            fig("server RSS (max)", rss, "MiB", higher_is_better=False),
            fig("generator CPU", generator_cpu, "% of a core", higher_is_better=False),
            fig("Runjobs p99", percentile(sim["runjobs_ms"], 99), "ms", higher_is_better=False),
            fig(
                "telemetry batch p99",
                percentile(sim["telemetry_ms"], 99),
                "ms",
                higher_is_better=False,
            ),
            fig("events stored/s", counts.get("events_stored", 0) / p["duration"], "events/s"),
            fig(
                "POST /admin/v1/jobs p99",
                percentile(sim["admin_ms"], 99),
                "ms",
                higher_is_better=False,
            ),
            fig("enrollments/s (API)", len(enrolled) / enroll_seconds, "req/s"),
        ],
        "targets": [
            target(
                f"{p['agents']:,} agents at {p['interval']:g} s: check-in p99 < 100 ms",
                round(p99, 2),
                100,
                at_most=True,
                unit="ms",
            ),
            target(
                f"{p['agents']:,} agents at {p['interval']:g} s: no errors",
                errors,
                0,
                at_most=True,
                unit="errors",
            ),
            target(
                f"server RSS < {rss_target_mib // 1024} GiB with {p['agents']:,} stations",
                rss,
                rss_target_mib,
                at_most=True,
                unit="MiB",
            ),
        ],
        "details": {
            **{k: v for k, v in p.items()},
            "enrollment": (
                "seeded by plain INSERTs of the stations table (bench.common.seed_stations_bulk)"
                if bulk
                else "seeded with garrison.server.stations.service.enroll in one transaction"
            )
            + " before the server started",
            "seed_seconds": round(seed_seconds, 2),
            "api_enrollment": f"{len(enrolled)} agents through POST /api/agents, one "
            f"multi-use key, 64 concurrent, in {enroll_seconds:.2f} s",
            "measured_seconds": round(sim["elapsed"], 1),
            "counts": counts,
            "errors": sim["errors"],
            "requests": sim["requests"],
            "generator_lag_p99_ms": round(percentile(sim["lag_ms"], 99), 2),
            "generator_lag_p50_ms": round(percentile(sim["lag_ms"], 50), 2),
            "generator_cpu_percent": round(generator_cpu, 1),
            "checkin_max_ms": round(max(sim["checkin_ms"], default=0), 2),
            "connect_p50_ms": round(percentile(sim["connect_ms"], 50), 2),
            "connect_p99_ms": round(percentile(sim["connect_ms"], 99), 2),
            "connect_max_ms": round(max(sim["connect_ms"], default=0), 2),
            "generator_fd_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
            "worker_restarts": len(restarts),
            "worker_restart_lines": restarts[:20],
            "server_log_tail": log_tail,
            **kernel,
            **usage,
        },
        "notes": [
            "Each check-in opens a new TCP connection (an agent sleeping 60 s outlives "
            "uvicorn's 5 s keep-alive).",
            "generator_lag is how late the generator sent a check-in after its due time: "
            "near zero means the load was applied as scheduled.",
        ],
    }


def main() -> None:
    """``--set key=value`` overrides one parameter of the size (variants for profiling:
    ``--set telemetry_share=0``, ``--set workers=1``, ``--set duration=60``)."""
    import argparse
    import json
    import tempfile

    parser = argparse.ArgumentParser(description="fleet of agents at their check-in interval")
    parser.add_argument("--size", choices=list(SIZES), default="tiny")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or key not in SIZES[args.size]:
            parser.error(f"--set wants KEY=VALUE with a key of the size, not {item!r}")
        SIZES[args.size][key] = type(SIZES[args.size][key])(float(value))
    raise_fd_limit()
    # A scratch database beside the one named (emptied and migrated), as bench/__main__ does.
    url = scratch_url(args.database_url, "fleet") if args.database_url else None
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(run(args.size, Path(tmp), url), indent=2))


if __name__ == "__main__":
    main()
