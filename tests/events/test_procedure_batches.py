"""Procedures in batches: several events' runs in one message to a worker, each run as a
single run would be (its own globals, limits and outcome, in order), the batch's host reads
answered once per distinct read, and from the event log each event's writes applied in
order, once, after the batch ran (docs/procedures.md, "Batches")."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from garrison.server.audit.actor import Actor
from garrison.server.audit.models import AuditEntry
from garrison.server.events import consumers
from garrison.server.events.service import NewEvent, append
from garrison.server.procedures import protocol
from garrison.server.procedures import service as procedures
from garrison.server.procedures.dispatcher import ProcedureConsumer
from garrison.server.procedures.models import ProcedureError
from garrison.server.procedures.runner import ProcedureRunner
from garrison.server.procedures.sandbox import Limits
from garrison.server.procedures.workers import Reply, Run, WorkerPool
from garrison.server.procedures.workers import _segments as workers_segments
from garrison.server.store.engine import Database
from tests.events.test_procedure_sandbox import CLEAN, LEAVE_BEHIND, LOOK_FOR_IT
from tests.support import SLACK_SECONDS

LIMITS = Limits(instructions=5_000_000, memory_bytes=16 * 1024 * 1024, seconds=0.5)
NAME = "threat_detected"
# Past the budget, the memory cap and the deadline: each ends its own run only.
SLOW = "return string.find(string.rep('a', 60), string.rep('a?', 60)..string.rep('a', 60))"
ENDINGS = {
    "error": ("error('boom')", "runtime error: threat_detected:"),
    "cpu budget": ("while true do end", "cpu budget exceeded"),
    "memory limit": ("local t = {} while true do t[#t + 1] = {} end", "memory limit of"),
    "deadline": (SLOW, f"time limit of {LIMITS.seconds:g} s exceeded"),
}


class Reads:
    """Host reads answered from memory, every one the server is asked for counted."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, list[Any]]] = []

    def __call__(self, fn: str, args: list[Any]) -> Any:
        self.asked.append((fn, args))
        if fn == "station":
            return {"id": args[0], "groups": ["a"], "asked": len(self.asked)}
        return None


@pytest.fixture
def pool() -> Iterator[WorkerPool]:
    made = WorkerPool(1, LIMITS.memory_bytes)
    yield made
    made.close()


def run(
    pool: WorkerPool, sources: list[str], reads: Reads | None = None, limits: Limits = LIMITS
) -> list[Reply]:
    runs = [Run(NAME, source, {"n": n, "virus": "Eicar"}) for n, source in enumerate(sources)]
    ran = pool.run_many(runs, limits, reads or Reads())
    assert ran.unavailable is None, ran.unavailable
    assert len(ran.replies) == len(runs)
    return ran.replies


def values(replies: list[Reply]) -> list[Any]:
    return [r.value if r.error is None else ("error", r.error) for r in replies]


def test_runs_of_a_batch_come_back_in_order_across_messages(pool: WorkerPool) -> None:
    count = protocol.MAX_RUNS * 2 + 5  # three messages
    replies = run(pool, ["local a = ... return a.n * 10"] * count)
    assert values(replies) == [n * 10 for n in range(count)]
    # One worker served them all, as a few messages.
    assert len(pool.live_pids()) == 1


def test_nothing_one_run_leaves_reaches_the_next_in_the_same_batch(pool: WorkerPool) -> None:
    """The sandbox leak test, every other run of one message: each LOOK_FOR_IT right after
    a LEAVE_BEHIND sees a clean state, and the chunks' globals are their own."""
    sources = [LEAVE_BEHIND, LOOK_FOR_IT] * 5 + [
        "counter = (counter or 0) + 1 return counter",
        "counter = (counter or 0) + 1 return counter",
    ]
    got = values(run(pool, sources))
    assert got[0:10] == [[True] * 7, CLEAN] * 5
    assert got[10:] == [1, 1]


@pytest.mark.parametrize("ending", list(ENDINGS), ids=list(ENDINGS))
def test_a_failing_run_fails_alone_and_its_neighbours_run_clean(
    pool: WorkerPool, ending: str
) -> None:
    """A run in the middle of a batch errs, spends its budget, its memory or its deadline
    (then the worker is killed): it alone fails, the runs before it keep their outcome,
    the ones after it run (on a new worker after a kill), each once, clean, in order."""
    source, expected = ENDINGS[ending]
    failing = LEAVE_BEHIND.replace("return refused", source)
    before = pool.live_pids()
    reads = Reads()
    sources = ["local a = ... return garrison.station(a.n).id"] * 3 + [failing]
    sources += ["local a = ... return {garrison.station(a.n).id, leaked == nil}"] * 3
    started = time.monotonic()
    replies = run(pool, [*sources, LOOK_FOR_IT], reads)
    elapsed = time.monotonic() - started
    assert values(replies[:3]) == [0, 1, 2]
    assert replies[3].error is not None, replies[3]
    assert replies[3].error.startswith(expected), replies[3]
    assert values(replies[4:7]) == [[4, True], [5, True], [6, True]]
    assert replies[7].value == CLEAN
    # Each run's one read was asked once, in order (the failing run reads nothing; the
    # last, LOOK_FOR_IT, reads station 3).
    assert [args[0] for _, args in reads.asked] == [0, 1, 2, 4, 5, 6, 3]
    # Only the failing run's own limit is spent waiting.
    assert elapsed < LIMITS.seconds + SLACK_SECONDS, elapsed
    if ending == "deadline":
        assert pool.live_pids() != before
        assert len(pool.live_pids()) == 1


def test_a_deadline_in_the_middle_of_a_batch_is_the_running_runs_only(pool: WorkerPool) -> None:
    """Runs before the one that hangs end normally (their dones are with the server before it
    kills the worker), and each run's deadline is its own: ten quick runs then a hanging one
    fail only the hanging one, after one time limit (not two: it is not run again), however
    long the batch."""
    limits = Limits(LIMITS.instructions, LIMITS.memory_bytes, seconds=1.5)
    quick = "local a = ... local x = 0 for i = 1, 20000 do x = x + i end return a.n"
    run(pool, [quick], limits=limits)  # the worker started
    started = time.monotonic()
    replies = run(pool, [quick] * 10 + [SLOW] + [quick] * 10, limits=limits)
    elapsed = time.monotonic() - started
    assert values(replies[:10]) == list(range(10))
    assert replies[10].error == f"time limit of {limits.seconds:g} s exceeded"
    assert values(replies[11:]) == list(range(11, 21))
    assert limits.seconds <= elapsed < 2 * limits.seconds, elapsed


def test_a_batchs_reads_are_answered_once_per_distinct_read(pool: WorkerPool) -> None:
    """The same read asked by every run of a batch reaches the server once, and every run
    gets the same answer, as a table of its own; another batch asks again."""
    reads = Reads()
    source = (
        "local a = ... local st = garrison.station(7) st.mine = a.n "
        "local again = garrison.station(7) return {st.asked, again.mine == a.n, "
        "garrison.station(a.n % 2).asked ~= nil}"
    )
    replies = run(pool, [source] * (protocol.MAX_RUNS + 6), reads)
    assert {r.error for r in replies} == {None}
    # station(7) answered once for the batch, station(0) and station(1) once each.
    assert sorted(args[0] for _, args in reads.asked) == [0, 1, 7]
    # A run's second read gives a fresh table: what it stored in the first is not there.
    assert {tuple(r.value[:2]) for r in replies} == {(1, False)}
    run(pool, [source], reads)
    assert len(reads.asked) == 5  # station(7) and station(0), asked anew


def test_a_refused_read_is_refused_for_every_run_of_the_batch(pool: WorkerPool) -> None:
    def refusing(fn: str, args: list[Any]) -> Any:
        raise ValueError("no such station")

    runs = [Run(NAME, "return pcall(garrison.station, 1)", {}) for _ in range(3)]
    ran = pool.run_many(runs, LIMITS, refusing)
    assert [r.value for r in ran.replies] == [False] * 3


def test_no_worker_free_leaves_the_rest_of_a_batch_unrun(pool: WorkerPool) -> None:
    pool.close()
    ran = pool.run_many([Run(NAME, "return 1", {})] * 3, LIMITS, Reads())
    assert ran.replies == []
    assert ran.unavailable == "the server is stopping"


@pytest.fixture
def pool_of_two() -> Iterator[WorkerPool]:
    made = WorkerPool(2, LIMITS.memory_bytes)
    yield made
    made.close()


def test_a_long_batch_is_shared_by_two_workers_and_comes_back_in_order(
    pool_of_two: WorkerPool,
) -> None:
    """Past two messages for each of two workers, a batch is cut in halves run at once by
    both; the replies come back in order, each run clean, and a read shared by the halves
    is still asked once."""
    count = protocol.MAX_RUNS * 4 + 7
    reads = Reads()
    source = "local a = ... return {a.n * 10, garrison.station(7).asked}"
    replies = run(pool_of_two, [source] * count, reads)
    assert [r.value for r in replies] == [[n * 10, 1] for n in range(count)]
    assert reads.asked == [("station", [7])]
    assert len(pool_of_two.live_pids()) == 2
    # A short batch keeps to one worker's messages: not worth a second's round trips.
    assert workers_segments(protocol.MAX_RUNS * 4 - 1, 2) == [range(255)]
    assert workers_segments(count, 2) == [range(131), range(131, 263)]


def test_a_deadline_in_the_second_half_fails_only_its_run(pool_of_two: WorkerPool) -> None:
    count = protocol.MAX_RUNS * 4
    quick = "local a = ... return a.n"
    sources = [quick] * count
    sources[count - 20] = SLOW
    replies = run(pool_of_two, sources)
    assert replies[count - 20].error == f"time limit of {LIMITS.seconds:g} s exceeded"
    assert values(replies[: count - 20]) == list(range(count - 20))
    assert values(replies[count - 19 :]) == list(range(count - 19, count))


def test_a_pool_stopped_during_a_shared_batch_gives_back_the_prefix_that_ran(
    pool_of_two: WorkerPool,
) -> None:
    """The server stops while both halves run: what comes back is the runs that ended
    before the stop, from the start of the batch and in order, nothing of the second half
    past a gap, and why the rest did not run."""

    def stopping(fn: str, args: list[Any]) -> Any:
        pool_of_two.close()
        return None

    count = protocol.MAX_RUNS * 4
    runs = [
        Run(NAME, "local a = ... if a.n == 10 then garrison.station(1) end return a.n", {"n": n})
        for n in range(count)
    ]
    ran = pool_of_two.run_many(runs, LIMITS, stopping)
    assert ran.unavailable == "the server is stopping"
    assert values(ran.replies) == list(range(len(ran.replies)))
    assert len(ran.replies) <= 10


# -- from the event log ---------------------------------------------------------------------

WRITER = """local a = ...
if a.n == 2 then error('boom') end
if a.n == 4 then while true do end end
if a.n == 6 then SLOW end
mark = a.n
local st = garrison.state(1)
garrison.audit('batched', tostring(a.n), tostring(leaked) .. ' ' .. tostring(st))
leaked = a.n
""".replace("SLOW", SLOW)


def drain(db: Database, consumer: ProcedureConsumer) -> None:
    for _ in range(100):
        if consumers.run_batch(db, consumer) == 0:
            return
    raise RuntimeError("the consumer never reached the end of the log")


def test_the_consumer_applies_each_events_writes_once_in_order_after_its_batch(
    db: Database,
) -> None:
    """Ten events in one consumer batch: the ones that fail (an error, the budget, the
    deadline) are recorded with their own log position, the others' writes are applied
    once each, in log order, none seeing another's globals; the cursor ends past all."""
    pool = WorkerPool(1, LIMITS.memory_bytes)
    try:
        consumer = ProcedureConsumer(ProcedureRunner(db, pool, LIMITS))
        actor = Actor(username="test", role="admin")
        with db.transaction() as session:
            procedures.put(session, actor, NAME, WRITER)
        with db.transaction() as session:
            seqs = [
                s
                for s in append(
                    session, [NewEvent(NAME, {"n": n}, None, "test") for n in range(10)]
                )
                if s is not None
            ]
        drain(db, consumer)
        with db.reading() as session:
            entries = (
                session.query(AuditEntry)
                .filter_by(action="procedure.batched")
                .order_by(AuditEntry.id)
                .all()
            )
            errors = session.query(ProcedureError).order_by(ProcedureError.id).all()
            position = consumers.position(session, consumer.name)
            written = [(e.target, e.details["detail"], e.details["event_seq"]) for e in entries]
            failed = [(e.event_seq, e.error) for e in errors]
        ok = [n for n in range(10) if n not in (2, 4, 6)]
        assert written == [(str(n), "nil nil", seqs[n]) for n in ok]
        assert [seq for seq, _ in failed] == [seqs[2], seqs[4], seqs[6]]
        assert failed[0][1].startswith("runtime error:")
        assert failed[1][1] == "cpu budget exceeded"
        assert failed[2][1] == f"time limit of {LIMITS.seconds:g} s exceeded"
        assert position == seqs[-1]
        # Drained: running again applies nothing twice.
        drain(db, consumer)
        with db.reading() as session:
            again = session.query(AuditEntry).filter_by(action="procedure.batched").count()
        assert again == len(ok)
    finally:
        pool.close()


def test_an_events_reads_do_not_see_earlier_writes_of_its_batch(db: Database) -> None:
    """The batch rule: each event's writes are applied after the whole batch ran, so a
    later event of the same batch does not see them (here: the jobs of its station), and
    the next batch does."""
    pool = WorkerPool(1, LIMITS.memory_bytes)
    try:
        runner = ProcedureRunner(db, pool, LIMITS)
        consumer = ProcedureConsumer(runner)
        actor = Actor(username="test", role="admin")
        with db.transaction() as session:
            from garrison.server.stations.models import Station

            station = Station(uuid="batch-rule", hostname="batch-rule", address="10.0.0.1")
            session.add(station)
            session.flush()
            sid = station.id
            procedures.put(
                session,
                actor,
                NAME,
                "local a = ... local seen = #garrison.jobs(a.id, 100) "
                "garrison.create_job(a.id, 'Scan', {path = '/'}, 1) "
                "garrison.audit('saw', tostring(a.n), tostring(seen))",
            )

        def post(numbers: range) -> None:
            with db.transaction() as session:
                append(session, [NewEvent(NAME, {"id": sid, "n": n}, sid, "test") for n in numbers])

        post(range(3))
        drain(db, consumer)
        post(range(3, 5))
        drain(db, consumer)
        with db.reading() as session:
            saw = [
                (e.target, e.details["detail"])
                for e in session.query(AuditEntry)
                .filter_by(action="procedure.saw")
                .order_by(AuditEntry.id)
            ]
        # First batch: no job yet for any of its three events; second batch: the three.
        assert saw == [("0", "0"), ("1", "0"), ("2", "0"), ("3", "3"), ("4", "3")]
    finally:
        pool.close()


def test_a_batchs_replies_are_all_written_when_the_worker_is_done_with_it() -> None:
    """The worker buffers its replies for a moment to write several at once, but not the
    end of a batch: when it is done with a message, every reply is in the pipe (the server,
    waiting for the last one, is not kept waiting for the flush interval)."""
    import fcntl
    import os
    import resource

    from garrison.server.procedures.worker import Worker

    # Run here, in the test's process: a run sets the CPU limit of its process (restored).
    cpu_limit = resource.getrlimit(resource.RLIMIT_CPU)
    inp, out = os.pipe()
    try:
        worker = Worker(inp, out)
        fcntl.fcntl(inp, fcntl.F_SETFL, fcntl.fcntl(inp, fcntl.F_GETFL) | os.O_NONBLOCK)
        message = {
            "procedures": [{"name": NAME, "source": "local a = ... return a.n"}],
            "runs": [[0, {"n": n}] for n in range(5)],
            "instructions": LIMITS.instructions,
            "memory": LIMITS.memory_bytes,
            "cpu_seconds": LIMITS.cpu_seconds,
        }
        worker.run_batch(message)
        # At once, no waiting: the five dones are already there.
        reader = protocol.Reader(inp)
        reader.buffer += os.read(inp, 1 << 20)
        done = [reader.read(deadline=0.0) for _ in range(5)]
        assert [(d["op"], d["index"], d["value"]) for d in done] == [
            ("done", n, n) for n in range(5)
        ]
    finally:
        resource.setrlimit(resource.RLIMIT_CPU, cpu_limit)
        os.close(inp)
        os.close(out)
