"""Running a procedure for the server: in a worker, with no transaction held, then settling
what it came to in the caller's (short) transaction.

``ProcedureRunner.run`` caps the arguments (:func:`.sandbox.cap_args`), runs the source in
a worker of the pool (:mod:`.workers`) answering its reads from the database
(:class:`.host.HostReads`, each read its own transaction) and returns the ``Reply``;
``run_many`` does the same for a batch of runs (the event-log consumer's), several to a
worker message.
``settle`` then applies the writes the run asked for, in a savepoint of the caller's
transaction, or records why it failed (``procedure_errors``).  Built once by the app: the
consumer, enrollment, the presence flush and the dry run all use the same pool.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.orm import Session

from garrison.server.procedures import host
from garrison.server.procedures.models import DEFAULT_SET, ProcedureError
from garrison.server.procedures.sandbox import Limits, cap_args
from garrison.server.procedures.workers import Ran, Reply, Run, WorkerPool
from garrison.server.store.engine import Database

log = structlog.get_logger("garrison.procedures")


@dataclass(frozen=True)
class Call:
    """One run of a batch (:meth:`ProcedureRunner.run_many`)."""

    name: str
    source: str
    args: Mapping[str, Any]
    event_seq: int | None = None
    set_name: str = DEFAULT_SET


class ProcedureRunner:
    def __init__(self, db: Database, pool: WorkerPool, limits: Limits) -> None:
        self.db = db
        self.pool = pool
        self.limits = limits
        self.reads = host.HostReads(db)

    def run(
        self,
        name: str,
        source: str,
        args: Mapping[str, Any],
        event_seq: int | None = None,
        set_name: str = DEFAULT_SET,
    ) -> Reply:
        """Run it; raises ProcedureUnavailableError when no worker could (not counted as
        the procedure's failure).  No transaction is open meanwhile."""
        reply = self.pool.run(name, source, cap_args(dict(args)), self.limits, self.reads)
        self._logged(name, set_name, event_seq, reply)
        return reply

    def run_many(self, calls: Sequence[Call]) -> Ran:
        """Run ``calls`` in order, several to a worker message (see ``WorkerPool.run_many``:
        each run its own environment, limits and outcome; the batch's host reads answered
        once per distinct read).  Returns a Reply per call for a prefix of them, with why
        the rest could not run (ProcedureUnavailableError's message)."""
        runs = [Run(c.name, c.source, cap_args(dict(c.args))) for c in calls]
        ran = self.pool.run_many(runs, self.limits, self.reads)
        for call, reply in zip(calls, ran.replies, strict=False):
            self._logged(call.name, call.set_name, call.event_seq, reply)
        return ran

    @staticmethod
    def _logged(name: str, set_name: str, event_seq: int | None, reply: Reply) -> None:
        for line in reply.logs:
            log.info(
                "procedure log", procedure=name, set=set_name, event_seq=event_seq, message=line
            )

    def settle(
        self,
        session: Session,
        name: str,
        event_seq: int | None,
        reply: Reply,
        set_name: str = DEFAULT_SET,
    ) -> str | None:
        """Apply ``reply``'s writes in a savepoint of ``session``, or record its error (also
        a write that fails) with the procedure's set; returns the error, None when it
        succeeded."""
        error = reply.error
        if error is None:
            savepoint = session.begin_nested()
            try:
                host.apply(session, name, event_seq, reply.actions, set_name)
                savepoint.commit()
            except Exception as exc:  # a procedure's write must never stop the caller
                savepoint.rollback()
                error = f"host error: {exc}"
        if error is not None:
            self.record_error(session, name, event_seq, error, set_name)
        return error

    @staticmethod
    def record_error(
        session: Session,
        name: str,
        event_seq: int | None,
        error: str,
        set_name: str = DEFAULT_SET,
    ) -> None:
        session.add(
            ProcedureError(
                procedure=name, set_name=set_name, event_seq=event_seq, error=error[:4000]
            )
        )
        log.warning(
            "procedure failed", procedure=name, set=set_name, event_seq=event_seq, error=error
        )

    def close(self) -> None:
        self.pool.close()
