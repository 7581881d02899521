"""Lua procedure cost per event, as the server runs them: through a warm worker process of
``garrison.server.procedures.workers.WorkerPool`` (the round trip over its pipes included),
a realistic ``threat_detected`` procedure (one host read, ``garrison.station``, answered by
this process, and two collected writes) beside the empty call (``return nil`` through the
same path: checkout, the pipe both ways, a fresh environment, the budget hook, the
collection after the run) — the floor of any procedure.  A second line shows what the
isolation costs: the empty call beside a bare lupa call of an empty function in a state
that already exists, in this process.  The batched lines run the same procedures as the
procedure consumer does, 64 events' runs to a worker message (``WorkerPool.run_many``).

    python -m bench.lua [--size tiny|full]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from garrison.common.catalogue import CATALOGUE, validate
from garrison.server.procedures.sandbox import Limits, cap_args
from garrison.server.procedures.workers import Run, WorkerPool

SIZES: dict[str, dict[str, Any]] = {"tiny": {"calls": 200}, "full": {"calls": 5000}}

EMPTY = "return nil"

# What an administrator writes for threat_detected: quiet the test signature, escalate
# executables and threats on servers (a host call, table walking, string matching).
REALISTIC = r"""
local args = ...
if args.virus == nil then return nil end
local name = string.lower(args.virus)
if string.find(name, "eicar", 1, true) then
  garrison.log("test signature on " .. tostring(args.station) .. ": " .. tostring(args.object))
  return nil
end
local critical = false
local st = garrison.station(args.id)
if st ~= nil then
  for _, g in ipairs(st.groups) do
    if g == "servers" or g == "domain-controllers" then critical = true end
  end
end
local path = args.object or ""
local ext = string.lower(string.match(path, "%.(%w+)$") or "")
if critical or ext == "exe" or ext == "dll" or ext == "scr" then
  garrison.audit("escalate", tostring(args.id), args.virus .. " at " .. path)
  garrison.log(string.format("escalated %s on %s", args.virus, tostring(args.station)))
end
return nil
"""


def event_args() -> dict[str, Any]:
    return validate(
        CATALOGUE["threat_detected"],
        {
            "id": 42,
            "station": "ws-042",
            "address": "10.1.2.42",
            "time": "2026-11-20T10:00:00Z",
            "object": r"C:\Users\alice\Downloads\invoice.exe",
            "virus": "Win.Trojan.Agent-123",
            "action": "quarantine",
            "objecttype": 0,
            "infectiontype": "trojan",
            "user": "alice",
            "component": 2,
            "pid": 4242,
        },
    )


def host() -> Callable[[str, list[Any]], Any]:
    """The host reads, answered from memory (not the database reads the server does)."""
    station = {
        "id": 42,
        "uuid": "4C4C4544-0033-4A10-8051-B5C04F4E4E31",
        "hostname": "ws-042",
        "address": "10.1.2.42",
        "os": "windows",
        "groups": ["workstations", "finance"],
        "connected": True,
    }
    return lambda fn, args: station if fn == "station" else None


def per_call(pool: WorkerPool, source: str, calls: int) -> float:
    reads, limits = host(), Limits()
    # As the runner does: the event's data (validated once, at ingestion) capped here, on
    # every call.
    data = event_args()
    args: Callable[[], Any] = lambda: cap_args(dict(data))  # noqa: E731
    for _ in range(3):  # start the worker, warm its caches
        reply = pool.run("threat_detected", source, args(), limits, reads)
        if reply.error is not None:
            raise RuntimeError(reply.error)
    started = time.perf_counter()
    for _ in range(calls):
        pool.run("threat_detected", source, args(), limits, reads)
    return (time.perf_counter() - started) / calls


BATCH = 64  # runs per message: what the procedure consumer hands a worker at a time
# The procedure consumer's batch (ProcedureConsumer.batch_size), and the server's default pool
# (GARRISON_PROCEDURE_WORKERS): a batch that long is shared by both workers at once.
CONSUMER_BATCH = 500
SERVER_WORKERS = 2


def per_event_batched(
    pool: WorkerPool, source: str, calls: int, distinct: bool, size: int = BATCH
) -> float:
    """Per event through ``run_many`` in batches of BATCH, as the procedure consumer runs
    them: one message to the worker per batch, each run with its own environment, limits
    and reply.  ``distinct``: every event of a batch from its own station, so every
    ``garrison.station`` read is a round trip (none is answered again from the batch's
    remembered reads); otherwise all from one station (the reads after the first are)."""
    reads, limits = host(), Limits()
    data = event_args()

    def batch(start: int) -> list[Run]:
        return [
            Run(
                "threat_detected",
                source,
                cap_args({**data, "id": start + i if distinct else data["id"]}),
            )
            for i in range(size)
        ]

    for _ in range(3):
        ran = pool.run_many(batch(0), limits, reads)
        errors = [r.error for r in ran.replies if r.error is not None]
        if errors or len(ran.replies) != size:
            raise RuntimeError(errors[0] if errors else ran.unavailable)
    rounds = max(1, calls // size)
    started = time.perf_counter()
    for n in range(rounds):
        pool.run_many(batch(n * size), limits, reads)
    return (time.perf_counter() - started) / (rounds * size)


def consumer_rate(events: int, batch_size: int | None = None, workers: int = 1) -> float:
    """Events/s of the procedure consumer draining ``events`` threat_detected events from a
    fresh SQLite log with bench/ingest.py's sustained procedure enabled (no host read, a
    log line per event, nothing to apply): reading the log, the runs through one worker in
    batches, the cursor moves.  No ingestion meanwhile (bench/ingest.py --sustained measures
    the lag under load)."""
    import tempfile

    from bench.ingest import PROCEDURE
    from garrison.server.audit.actor import Actor
    from garrison.server.events import consumers
    from garrison.server.events.service import NewEvent, append
    from garrison.server.logs import configure_structlog
    from garrison.server.procedures import service as procedures
    from garrison.server.procedures.dispatcher import ProcedureConsumer
    from garrison.server.procedures.runner import ProcedureRunner
    from garrison.server.store import migrate
    from garrison.server.store.engine import Database

    # As bench/ingest.py's server runs: warnings only (a procedure log line is info).
    configure_structlog("warning", cache=False)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/consumer.db"
        migrate.upgrade(url)
        db = Database(url)
        pool = WorkerPool(workers)
        try:
            with db.transaction() as session:
                procedures.put(
                    session, Actor(username="bench", role="admin"), "threat_detected", PROCEDURE
                )
            data = event_args()
            with db.transaction() as session:
                append(session, [NewEvent("threat_detected", data, None, "bench")] * events)
            consumer = ProcedureConsumer(ProcedureRunner(db, pool, Limits()))
            if batch_size is not None:
                consumer.batch_size = batch_size
            started = time.perf_counter()
            while consumers.run_batch(db, consumer):
                pass
            return events / (time.perf_counter() - started)
        finally:
            pool.close()
            db.dispose()


ECHO = (
    "import os\n"
    "while True:\n"
    "    data = os.read(0, 65536)\n"
    "    if not data: break\n"
    "    os.write(1, data)\n"
)


def pipe_round_trip(calls: int) -> float:
    """The floor of any worker call: a small message to another process and back."""
    child = subprocess.Popen(
        [sys.executable, "-c", ECHO], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0
    )
    if child.stdin is None or child.stdout is None:
        raise RuntimeError("no pipes")
    out, inp = child.stdin.fileno(), child.stdout.fileno()
    message = b"x" * 300
    try:
        for _ in range(10):
            os.write(out, message)
            os.read(inp, 65536)
        started = time.perf_counter()
        for _ in range(calls):
            os.write(out, message)
            os.read(inp, 65536)
        return (time.perf_counter() - started) / calls
    finally:
        child.stdin.close()
        child.wait()
        child.stdout.close()


def bare_call(calls: int) -> float:
    from lupa import lua54

    runtime = lua54.LuaRuntime(register_eval=False, register_builtins=False)
    fn = runtime.eval("function(args) return nil end")
    args = runtime.table_from(event_args())
    started = time.perf_counter()
    for _ in range(calls):
        fn(args)
    return (time.perf_counter() - started) / calls


def run(size: str) -> dict[str, Any]:
    from bench.common import fig, target

    calls = SIZES[size]["calls"]
    pool = WorkerPool(1)
    try:
        empty = per_call(pool, EMPTY, calls)
        realistic = per_call(pool, REALISTIC, calls)
        empty_batched = per_event_batched(pool, EMPTY, calls, distinct=True)
        batched = per_event_batched(pool, REALISTIC, calls, distinct=False)
        batched_distinct = per_event_batched(pool, REALISTIC, calls, distinct=True)
    finally:
        pool.close()
    pool = WorkerPool(SERVER_WORKERS)
    try:
        # What the server runs: the consumer's batches over its pool of two workers.
        pooled = per_event_batched(pool, REALISTIC, calls * 4, distinct=False, size=CONSUMER_BATCH)
    finally:
        pool.close()
    drained = consumer_rate(calls * 4)
    drained_pooled = consumer_rate(calls * 4, workers=SERVER_WORKERS)
    bare = bare_call(calls * 10)
    pipe = pipe_round_trip(calls)
    return {
        "scenario": "lua",
        "title": "Lua procedure cost per event (threat_detected)",
        "figures": [
            fig_rate("realistic procedure", realistic, empty, "empty sandboxed call"),
            fig_rate("empty sandboxed call", empty, pipe, "pipe round trip"),
            fig_rate("empty sandboxed call", empty, bare, "bare lupa call"),
            fig_rate(
                f"realistic procedure, batches of {BATCH}", batched, empty_batched, "empty, batched"
            ),
            fig_rate(
                f"realistic procedure, batches of {BATCH}, a station per event",
                batched_distinct,
                empty_batched,
                "empty, batched",
            ),
            fig_rate(
                f"realistic procedure, batches of {CONSUMER_BATCH} over {SERVER_WORKERS} workers",
                pooled,
                empty_batched,
                "empty, batched, one worker",
            ),
            fig(
                f"procedure consumer draining the log, {SERVER_WORKERS} workers (events/s)",
                drained_pooled,
                "events/s",
                floor=drained,
                floor_name="the same through one worker",
            ),
        ],
        "targets": [
            target(
                f"realistic procedure ≥ 50,000 events/s (batches of {CONSUMER_BATCH}, "
                f"{SERVER_WORKERS} workers, as the server runs them)",
                round(1 / pooled),
                50_000,
                unit="events/s",
            )
        ],
        "details": {
            "calls": calls,
            "realistic_us_per_event": round(realistic * 1e6, 1),
            "empty_us_per_event": round(empty * 1e6, 1),
            "batch": BATCH,
            "consumer_events_per_second": round(drained, 1),
            "consumer_events_per_second_pooled": round(drained_pooled, 1),
            "pooled_realistic_us_per_event": round(pooled * 1e6, 1),
            "batched_empty_us_per_event": round(empty_batched * 1e6, 1),
            "batched_realistic_us_per_event": round(batched * 1e6, 1),
            "batched_realistic_distinct_stations_us_per_event": round(batched_distinct * 1e6, 1),
            "bare_lupa_us_per_call": round(bare * 1e6, 3),
            "pipe_round_trip_us": round(pipe * 1e6, 1),
        },
        "notes": [
            "Each call goes through a warm worker process (one Lua state, the procedure "
            "compiled once, a fresh environment per call) and back; garrison.station() is a "
            "real round trip to this process, answered from memory, not the database read "
            "the server does.  The event's data is validated once (ingestion's cost) and "
            "capped per call, as the runner does.",
            f"Batched: {BATCH} events' runs per run_many (one message to the worker, a done "
            "per run), as the procedure consumer runs them.  Within a batch a host read "
            "asked again is answered from the batch's first answer: with every event from "
            "one station only the first garrison.station() is a round trip; 'a station per "
            "event' makes every one a round trip.",
            f"Over {SERVER_WORKERS} workers: the consumer's batch of {CONSUMER_BATCH} cut in "
            "halves that both workers run at once (the server's default pool); on a 2-core "
            "box the two workers and this process share the cores.",
        ],
    }


def fig_rate(name: str, seconds: float, floor_seconds: float, floor_name: str) -> dict[str, Any]:
    from bench.common import fig

    return fig(
        f"{name} (calls/s)", 1 / seconds, "calls/s", floor=1 / floor_seconds, floor_name=floor_name
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="Lua procedure cost per event")
    parser.add_argument("--size", choices=list(SIZES), default="tiny")
    args = parser.parse_args()
    print(json.dumps(run(args.size), indent=2))


if __name__ == "__main__":
    main()
