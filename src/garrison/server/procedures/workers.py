"""The pool of procedure worker processes, and one run's round trip through a worker.

Each worker is ``python -m garrison.server.procedures.worker`` (spawned: a fresh
interpreter, never a fork of this threaded server), started when first needed and kept warm.
A run checks a worker out (waiting at most ``checkout_seconds``), sends the procedure and
its arguments, answers the worker's host reads until it reports, and checks the worker back
in.  The deadline is real time, measured here (``time.monotonic``), host reads included: when
it passes, or the worker dies, or announces a message over the cap, the worker is killed
(SIGKILL) and a new one is started for a later run.  ``close`` kills every worker; a run in
progress then ends as :class:`ProcedureUnavailableError`, not as the procedure's failure.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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

# A host read: (function name, its arguments) → what the procedure gets.  Raising
# InvalidInputError (or any error) makes the call fail in Lua with its message.
HostReads = Callable[[str, list[Any]], Any]


@dataclass(frozen=True)
class Action:
    """A write a run asked for (``garrison.create_job``, ``audit``…), applied after it."""

    fn: str
    args: list[Any]


@dataclass(frozen=True)
class Reply:
    """What a run came to: its value, or the error that ended it, and what it asked for."""

    value: Any = None
    error: str | None = None
    actions: list[Action] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)
    elapsed: float = 0.0


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
        ready = protocol.read(self.from_worker, time.monotonic() + START_SECONDS)
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

    def _checkin(self, worker: _Worker) -> None:
        with self._cond:
            worker.runs += 1
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

    # -- one run ---------------------------------------------------------------------------

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
        wait = limits.seconds if checkout_seconds is None else checkout_seconds
        worker = self._checkout(wait)
        reusable = False
        try:
            deadline = time.monotonic() + limits.seconds
            message = {
                "op": "run",
                "name": name,
                "source": source,
                "args": args,
                "instructions": limits.instructions,
                "memory": limits.memory_bytes,
                "cpu_seconds": limits.cpu_seconds,
            }
            protocol.write(worker.to_worker, protocol.encode(message))
            while True:
                answer = protocol.read(worker.from_worker, deadline)
                op = answer.get("op")
                if op == "call":
                    reply = self._answer(reads, answer)
                    protocol.write(worker.to_worker, protocol.encode(reply))
                elif op == "done":
                    reusable = True
                    return _reply(answer)
                else:
                    return Reply(error=f"the procedure's worker broke the protocol ({op!r})")
        except protocol.DeadlineError:
            return Reply(error=f"time limit of {limits.seconds:g} s exceeded")
        except protocol.MessageTooLargeError:
            return Reply(error="the procedure handed over a value too large")
        except (EOFError, OSError, ValueError):
            if self._closed:
                raise ProcedureUnavailableError("the server is stopping") from None
            return Reply(error=worker.death())
        finally:
            if reusable:
                self._checkin(worker)
            else:
                self._discard(worker)

    @staticmethod
    def _answer(reads: HostReads, call: dict[str, Any]) -> dict[str, Any]:
        fn, args = call.get("fn"), call.get("args")
        if not isinstance(fn, str) or not isinstance(args, list):
            return {"op": "reply", "ok": False, "error": "bad host call"}
        try:
            return {"op": "reply", "ok": True, "value": reads(fn, args)}
        except Exception as exc:  # the procedure sees the message as a Lua error
            return {"op": "reply", "ok": False, "error": str(exc)[:1000]}


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
