"""The pool of procedure worker processes, and one run's round trip through a worker.

Each worker is ``python -m garrison.server.procedures.worker`` (spawned: a fresh
interpreter, never a fork of this threaded server), started when first needed and kept warm.
Runs go in batches (``run_many``; ``run`` is a batch of one): a batch checks a worker out
(waiting at most ``checkout_seconds``), sends up to ``protocol.MAX_RUNS`` runs in one
message, answers the worker's host reads (each distinct read once per batch) and takes each
run's reply as it comes, then checks the worker back in.  Each run's deadline is real time,
measured here (``time.monotonic``) from the end of the run before it, host reads included:
when it passes, or the worker dies, or announces a message over the cap, that run fails, the
worker is killed (SIGKILL), and the runs after it go to a new one (they had not started: a
worker runs its message's runs in order and reports each as it ends).  ``close`` kills
every worker; a run in progress then ends as :class:`ProcedureUnavailableError`, not as the
procedure's failure.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog

from garrison.server.procedures import protocol
from garrison.server.procedures.sandbox import Limits, ProcedureUnavailableError

log = structlog.get_logger("garrison.procedures")
START_SECONDS = 30.0
# Runs one worker serves before it is retired (killed at check-in, a fresh one started when
# next needed): one warm Lua state runs every run in between (see worker.py), and nothing a
# long series of runs might leave in it lives for ever.
MAX_RUNS = 100_000
WORKER = [sys.executable, "-m", "garrison.server.procedures.worker"]
# A batch is cut for several workers at once only when each segment fills this many messages.
SEGMENT_MIN_MESSAGES = 2

# Distinct host reads one run_many remembers the answer of, and their bytes (past either,
# reads are asked anew).
MAX_ANSWERS = 4096
MAX_ANSWER_BYTES = 16 * 1024 * 1024

# A host read: (function name, its arguments) → what the procedure gets.  Raising
# InvalidInputError (or any error) makes the call fail in Lua with its message.
HostReads = Callable[[str, list[Any]], Any]


@dataclass(frozen=True)
class Action:
    """A write a run asked for (``garrison.create_job``, ``audit``…), applied after it."""

    fn: str
    args: list[Any]


@dataclass(frozen=True)
class Run:
    """One run to make: procedure ``name``'s ``source`` with ``args`` (already capped)."""

    name: str
    source: str
    args: Any


@dataclass(frozen=True)
class Reply:
    """What a run came to: its value, or the error that ended it, and what it asked for."""

    value: Any = None
    error: str | None = None
    actions: list[Action] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    elapsed: float = 0.0


@dataclass(frozen=True)
class Ran:
    """What ``run_many`` came to: one Reply per run, in order, for a prefix of the runs;
    ``unavailable`` says why the rest did not run (no worker could take them: not their
    procedures' fault)."""

    replies: list[Reply]
    unavailable: str | None = None


class _Worker:
    def __init__(self, memory_limit: int) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GARRISON_")}
        # Our own module, by our own interpreter: no input of anyone's in the command.
        self.process = subprocess.Popen(  # noqa: S603
            [*WORKER, "--memory-limit", str(memory_limit)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            close_fds=True,
            env=env,
        )
        if self.process.stdin is None or self.process.stdout is None:
            raise RuntimeError("the worker's pipes were not made")
        self.to_worker = self.process.stdin.fileno()
        self.from_worker = self.process.stdout.fileno()
        self.reader = protocol.Reader(self.from_worker)
        ready = self.reader.read(time.monotonic() + START_SECONDS)
        if ready.get("op") != "ready":
            raise RuntimeError(f"a procedure worker started badly: {ready!r}")
        self.runs = 0

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                pipe.close()

    def death(self) -> str:
        """Why the worker died, once it has."""
        try:
            code = self.process.wait(timeout=1)
        except subprocess.TimeoutExpired:
            return "the procedure's worker stopped answering"
        if code == -signal.SIGXCPU:
            return "cpu time limit exceeded (the worker was stopped)"
        if code == -signal.SIGKILL or code == -signal.SIGSEGV:
            return f"the procedure's worker died (signal {-code}: memory limit?)"
        return f"the procedure's worker died (exit status {code})"


class WorkerPool:
    """At most ``size`` workers; see the module docstring."""

    def __init__(
        self, size: int = 2, memory_bytes: int = Limits().memory_bytes, max_runs: int = MAX_RUNS
    ) -> None:
        if size < 1:
            raise ValueError("a worker pool needs at least one worker")
        self.size = size
        self.max_runs = max_runs
        # RLIMIT_AS of a worker: what it maps at rest plus this (the Lua cap, twice, for what
        # Python builds around it, and room for the interpreter).
        self.memory_limit = 2 * memory_bytes + 128 * 1024 * 1024
        self._cond = threading.Condition()
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._starting = 0
        self._closed = False

    # -- checkout --------------------------------------------------------------------------

    def _checkout(self, timeout: float) -> _Worker:
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._closed:
                    raise ProcedureUnavailableError("the server is stopping")
                while self._idle:
                    worker = self._idle.pop()
                    if worker.alive():
                        return worker
                    self._all.discard(worker)
                    worker.kill()
                if len(self._all) + self._starting < self.size:
                    self._starting += 1
                    break
                remaining = end - time.monotonic()
                if remaining <= 0:
                    raise ProcedureUnavailableError(
                        f"all {self.size} procedure workers were busy for {timeout:g} s"
                    )
                self._cond.wait(remaining)
        try:
            worker = _Worker(self.memory_limit)
        except Exception as exc:
            with self._cond:
                self._starting -= 1
                self._cond.notify()
            log.exception("procedure worker did not start")
            raise ProcedureUnavailableError(f"a procedure worker did not start: {exc}") from None
        with self._cond:
            self._starting -= 1
            if self._closed:
                worker.kill()
                raise ProcedureUnavailableError("the server is stopping")
            self._all.add(worker)
        return worker

    def _checkin(self, worker: _Worker, runs: int = 1) -> None:
        with self._cond:
            worker.runs += runs
            retired = self._closed or worker not in self._all or worker.runs >= self.max_runs
            if retired:
                self._all.discard(worker)
            else:
                self._idle.append(worker)
            self._cond.notify()
        if retired:
            worker.kill()

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        with self._cond:
            self._all.discard(worker)
            self._cond.notify()

    def close(self) -> None:
        """Kill every worker; later runs raise ProcedureUnavailableError."""
        with self._cond:
            self._closed = True
            workers = list(self._all)
            self._all.clear()
            self._idle.clear()
            self._cond.notify_all()
        for worker in workers:
            worker.kill()

    def live_pids(self) -> list[int]:
        with self._cond:
            return [w.process.pid for w in self._all]

    # -- runs ------------------------------------------------------------------------------

    def run(
        self,
        name: str,
        source: str,
        args: Any,
        limits: Limits,
        reads: HostReads,
        checkout_seconds: float | None = None,
    ) -> Reply:
        """Run ``source`` as procedure ``name`` with ``args`` (already capped): its Reply,
        with ``error`` set when it failed.  Raises ProcedureUnavailableError when no worker
        could take it."""
        ran = self.run_many([Run(name, source, args)], limits, reads, checkout_seconds)
        if not ran.replies:
            raise ProcedureUnavailableError(ran.unavailable or "no worker ran the procedure")
        return ran.replies[0]

    def run_many(
        self,
        runs: Sequence[Run],
        limits: Limits,
        reads: HostReads,
        checkout_seconds: float | None = None,
    ) -> Ran:
        """Run ``runs`` in order, in batches of up to ``protocol.MAX_RUNS`` per message to a
        worker, each run with its own limits (the deadline starts when the previous run of
        the message ended) and its own outcome.  A run that ends its worker (the deadline,
        a crash, a message over the cap) fails alone: the runs after it go to another
        worker, none of them is run twice.  A batch long enough is cut in contiguous
        segments served at once by up to ``size`` workers (``_segments``).  Host reads are
        answered once per distinct read for the whole of ``runs`` (see docs/procedures.md,
        "Batches").  Returns the replies
        in order; fewer than ``runs`` when no worker could take the rest (``unavailable``
        says why)."""
        wait = limits.seconds if checkout_seconds is None else checkout_seconds
        remembered = _Remembered(reads)
        # Each run's arguments encoded once (a batch cut by their size, then sent as they are).
        encoded = [orjson.dumps(run.args) for run in runs]
        segments = _segments(len(runs), self.size)
        if len(segments) == 1:
            only, unavailable = self._run_segment(
                runs, encoded, segments[0], limits, remembered, wait
            )
            return Ran(only, unavailable)
        # A long batch is cut in contiguous segments served at once by different workers
        # (each segment in order, as a batch would be); the replies are put back in order.
        # The runs of one segment never see another's writes (no run does: they are applied
        # after the whole batch), and the host reads are shared (answered once each).
        results: list[tuple[list[Reply], str | None] | BaseException | None] = [None] * len(
            segments
        )

        def serve(position: int) -> None:
            try:
                results[position] = self._run_segment(
                    runs, encoded, segments[position], limits, remembered, wait
                )
            except BaseException as exc:  # re-raised in the caller's thread below
                results[position] = exc

        threads = [
            threading.Thread(target=serve, args=(i,), name="procedure-segment", daemon=True)
            for i in range(1, len(segments))
        ]
        for thread in threads:
            thread.start()
        serve(0)
        for thread in threads:
            thread.join()
        replies = []
        for segment, result in zip(segments, results, strict=True):
            if isinstance(result, BaseException):
                raise result
            if result is None:
                raise RuntimeError("a procedure segment ended without a result")
            done, unavailable = result
            replies += done
            if len(done) < len(segment):
                # The prefix ends here: the later segments' replies are dropped (their runs
                # are run again with the rest; nothing of them was applied).
                return Ran(replies, unavailable or "no worker ran the procedure")
        return Ran(replies)

    def _run_segment(
        self,
        runs: Sequence[Run],
        encoded: Sequence[bytes],
        segment: range,
        limits: Limits,
        remembered: _Remembered,
        wait: float,
    ) -> tuple[list[Reply], str | None]:
        """The runs of ``segment``, in order, a message of up to ``protocol.MAX_RUNS`` at a
        time to whichever worker is free; the replies of a prefix of them, and why the rest
        did not run (None when all did)."""
        replies: list[Reply] = []
        while len(replies) < len(segment):
            try:
                worker = self._checkout(wait)
            except ProcedureUnavailableError as exc:
                return replies, str(exc)
            batch = _cut(runs, encoded, segment.start + len(replies), segment.stop)
            reusable = False
            try:
                reusable = self._serve(worker, runs, encoded, batch, limits, remembered, replies)
            except ProcedureUnavailableError as exc:
                return replies, str(exc)
            finally:
                if reusable:
                    self._checkin(worker, len(batch))
                else:
                    self._discard(worker)
        return replies, None

    def _serve(
        self,
        worker: _Worker,
        runs: Sequence[Run],
        encoded: Sequence[bytes],
        batch: range,
        limits: Limits,
        reads: _Remembered,
        replies: list[Reply],
    ) -> bool:
        """Send ``batch`` (indexes into ``runs``) to ``worker`` and add each run's Reply to
        ``replies`` as it ends; returns whether the worker may serve again.  When it may
        not, the run it was on when it had to go has its failure added, and the runs after
        it none (they have not started: the worker runs them in order)."""
        try:
            procedures: dict[tuple[str, str], int] = {}
            items = [
                [
                    procedures.setdefault((runs[i].name, runs[i].source), len(procedures)),
                    orjson.Fragment(encoded[i]),
                ]
                for i in batch
            ]
            message = {
                "op": "runs",
                "procedures": [{"name": n, "source": src} for n, src in procedures],
                "runs": items,
                "instructions": limits.instructions,
                "memory": limits.memory_bytes,
                "cpu_seconds": limits.cpu_seconds,
            }
            protocol.write(worker.to_worker, protocol.encode(message))
            # Each run's deadline starts when the previous one ended (as far as this side can
            # tell: when its done arrives, which is no earlier).
            deadline = time.monotonic() + limits.seconds
            index = 0
            while index < len(batch):
                answer = worker.reader.read(deadline)
                op = answer.get("op")
                if op == "call":
                    protocol.write(worker.to_worker, reads.reply(answer))
                elif op == "done" and answer.get("index") == index:
                    replies.append(_reply(answer))
                    index += 1
                    deadline = time.monotonic() + limits.seconds
                else:
                    replies.append(
                        Reply(error=f"the procedure's worker broke the protocol ({op!r})")
                    )
                    return False
            return True
        except protocol.DeadlineError:
            replies.append(Reply(error=f"time limit of {limits.seconds:g} s exceeded"))
        except protocol.MessageTooLargeError:
            replies.append(Reply(error="the procedure handed over a value too large"))
        except (EOFError, OSError, ValueError):
            if self._closed:
                raise ProcedureUnavailableError("the server is stopping") from None
            replies.append(Reply(error=worker.death()))
        return False


class _Remembered:
    """The host reads of one ``run_many``: each distinct read (function and arguments) is
    answered from the database once, and again from memory (a batch's reads see the
    database as it was when each was first asked, see docs/procedures.md, "Batches").
    Kept as the encoded reply message (an error too), bounded in entries and bytes."""

    def __init__(self, reads: HostReads) -> None:
        self.reads = reads
        self.answers: dict[tuple[str, bytes], bytes] = {}
        self.bytes_left = MAX_ANSWER_BYTES
        # The segments of one run_many ask from their own threads; held over the read, so
        # that a distinct read is made once and every run sees that one answer.
        self._lock = threading.Lock()

    def reply(self, call: dict[str, Any]) -> bytes:
        """The encoded reply to a worker's ``call``; raises MessageTooLargeError when the
        answer is over the message cap."""
        fn, args = call.get("fn"), call.get("args")
        if not isinstance(fn, str) or not isinstance(args, list):
            return protocol.encode({"op": "reply", "ok": False, "error": "bad host call"})
        key = (fn, orjson.dumps(args))
        with self._lock:
            found = self.answers.get(key)
            if found is None:
                found = protocol.encode(_answer(self.reads, fn, args))
                if len(self.answers) < MAX_ANSWERS and len(found) <= self.bytes_left:
                    self.answers[key] = found
                    self.bytes_left -= len(found)
        return found


def _answer(reads: HostReads, fn: str, args: list[Any]) -> dict[str, Any]:
    try:
        return {"op": "reply", "ok": True, "value": reads(fn, args)}
    except Exception as exc:  # the procedure sees the message as a Lua error
        return {"op": "reply", "ok": False, "error": str(exc)[:1000]}


def _segments(count: int, workers: int) -> list[range]:
    """``count`` runs cut in contiguous segments for up to ``workers`` workers at once: one
    segment unless each would still fill SEGMENT_MIN_MESSAGES messages (a short batch is not
    worth a second worker's round trips, nor holding it from an authorization)."""
    parts = max(1, min(workers, count // (protocol.MAX_RUNS * SEGMENT_MIN_MESSAGES)))
    bounds = [count * i // parts for i in range(parts + 1)]
    return [range(bounds[i], bounds[i + 1]) for i in range(parts)]


def _cut(runs: Sequence[Run], encoded: Sequence[bytes], start: int, stop: int) -> range:
    """The runs from ``start`` (before ``stop``) that go in one message: at most
    ``protocol.MAX_RUNS``, and past the first, only while the bytes of their arguments and
    distinct sources stay within ``protocol.MAX_BATCH_ARGS`` (the message then stays under
    the cap)."""
    end, size = start, 0
    sources: set[tuple[str, str]] = set()
    while end < stop and end - start < protocol.MAX_RUNS:
        run = runs[end]
        size += len(encoded[end])
        if (run.name, run.source) not in sources:
            sources.add((run.name, run.source))
            size += len(run.source.encode("utf-8"))
        if end > start and size > protocol.MAX_BATCH_ARGS:
            break
        end += 1
    return range(start, end)


def _reply(answer: dict[str, Any]) -> Reply:
    actions = [
        Action(str(a.get("fn")), list(a.get("args") or []))
        for a in answer.get("actions") or []
        if isinstance(a, dict)
    ]
    logs = [str(line) for line in answer.get("logs") or []]
    elapsed = float(answer.get("elapsed") or 0.0)
    if answer.get("ok"):
        return Reply(answer.get("value"), None, actions, logs, elapsed)
    return Reply(None, str(answer.get("error") or "failed"), [], logs, elapsed)
