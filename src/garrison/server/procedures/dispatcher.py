"""Running procedures: from the event log (every event but one), and synchronously for
``station_authorization_in_progress``, whose answer decides an authorization.

From the log (:class:`ProcedureConsumer`), event by event: the procedure runs in a worker
with no transaction open, then one short transaction applies what it asked for (or records
its failure) and moves the consumer's cursor past the event, so each event's writes happen
exactly once.  A failing event is recorded in ``procedure_errors`` and passed over; after
``disable_after`` failures in a row of one procedure, it is disabled, and that is audited
(``procedure.auto_disable``: an audit entry, which is also an ``audit`` event in the log).

Authorization (:func:`authorize`, then :func:`decision`): the caller reads the arguments,
runs the procedure before its write transaction and settles the answer inside it.  When
the run fails (its budget, its deadline, no worker free) the default answer (``nil``)
applies and the failure is recorded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.orm import Session

from garrison.common.catalogue import CATALOGUE
from garrison.server.audit import service as audit
from garrison.server.audit.actor import SYSTEM
from garrison.server.events.consumers import Checkpoint, CheckpointedSend, Consumer, Progress
from garrison.server.events.models import Event
from garrison.server.procedures import service as procedures
from garrison.server.procedures.models import Procedure
from garrison.server.procedures.runner import ProcedureRunner
from garrison.server.procedures.sandbox import ProcedureUnavailableError
from garrison.server.procedures.workers import Reply
from garrison.server.store.base import utcnow

log = structlog.get_logger("garrison.procedures")
AUTHORIZATION = "station_authorization_in_progress"
DECISIONS = ("deny", "force", "newbie")
DISABLE_AFTER = 5


@dataclass(frozen=True)
class _Work:
    index: int  # in the batch
    seq: int
    name: str
    source: str
    version: int
    args: dict[str, Any]


class _RunEach(CheckpointedSend):
    def __init__(self, consumer: ProcedureConsumer, work: list[_Work], size: int) -> None:
        self.consumer = consumer
        self.work = work
        self.size = size

    def run(self, checkpoint: Checkpoint) -> Progress:
        consumer, runner = self.consumer, self.consumer.runner
        disabled: set[str] = set()
        for item in self.work:
            if item.name in disabled:
                continue
            try:
                reply = runner.run(item.name, item.source, item.args, item.seq)
            except ProcedureUnavailableError as exc:
                # Not this event's fault: it is run again later, from here.
                return Progress(item.index, str(exc))
            with runner.db.transaction() as session:
                current = session.get(Procedure, item.name, with_for_update=True)
                if current is not None and current.enabled and current.version == item.version:
                    error = runner.settle(session, item.name, item.seq, reply)
                    if consumer.counted(session, current, error):
                        disabled.add(item.name)
                # else: disabled or changed while it ran: what it asked for is dropped.
                checkpoint.advance(session, item.seq)
        return Progress(self.size)


class ProcedureConsumer(Consumer):
    """The event-log consumer that runs each event's procedure once (see the module
    docstring)."""

    name = "procedures"
    batch_size = 100
    outside_transaction = True

    def __init__(self, runner: ProcedureRunner, disable_after: int = DISABLE_AFTER) -> None:
        self.runner = runner
        self.disable_after = disable_after
        # Per procedure: (version, failures in a row).  In memory: a restart starts over.
        self._failures: dict[str, tuple[int, int]] = {}

    def wanted_types(self, session: Session) -> frozenset[str]:
        """The types whose procedure is enabled: most events have none, and are not read."""
        enabled = procedures.enabled_names(session)
        return frozenset(
            name
            for name, declared in CATALOGUE.items()
            if declared.procedure in enabled and declared.procedure != AUTHORIZATION
        )

    def handle(self, session: Session, batch: Sequence[Event]) -> Progress | CheckpointedSend:
        wanted = {CATALOGUE[e.type].procedure for e in batch if e.type in CATALOGUE}
        names = {n for n in wanted if n and n != AUTHORIZATION}
        if not names:
            return Progress(len(batch))
        enabled = procedures.enabled_versions(session, names)
        work = []
        for index, event in enumerate(batch):
            declared = CATALOGUE.get(event.type)
            name = declared.procedure if declared else None
            if name and name in enabled:
                source, version = enabled[name]
                work.append(_Work(index, event.seq, name, source, version, dict(event.data)))
        return _RunEach(self, work, len(batch))

    def counted(self, session: Session, procedure: Procedure, error: str | None) -> bool:
        """Count a run's outcome; disables the procedure (in ``session``) at the
        ``disable_after``-th failure in a row.  Returns whether it did."""
        version, failures = self._failures.get(procedure.name, (procedure.version, 0))
        if version != procedure.version:
            failures = 0
        failures = 0 if error is None else failures + 1
        self._failures[procedure.name] = (procedure.version, failures)
        if error is None or self.disable_after <= 0 or failures < self.disable_after:
            return False
        procedure.enabled = False
        procedure.updated_at = utcnow()
        procedure.updated_by = SYSTEM.username
        audit.record(
            session,
            SYSTEM,
            "procedure.auto_disable",
            procedure.name,
            version=procedure.version,
            failures=failures,
            last_error=error[:1000],
        )
        log.warning(
            "procedure disabled after failing repeatedly",
            procedure=procedure.name,
            failures=failures,
            error=error,
        )
        self._failures.pop(procedure.name, None)
        return True


@dataclass(frozen=True)
class Authorization:
    """A run of the authorization procedure, done before the caller's write transaction."""

    reply: Reply

    @property
    def value(self) -> str | None:
        value = self.reply.value
        return value if self.reply.error is None and value in DECISIONS else None


def authorize(
    runner: ProcedureRunner, source: str | None, args: Mapping[str, Any]
) -> Authorization | None:
    """Run the authorization procedure ``source`` (None: none is enabled, nothing runs) with
    ``args``, outside any transaction.  A run that could not happen (no worker free) is a
    failure like any other here: the answer must not wait."""
    if source is None:
        return None
    try:
        reply = runner.run(AUTHORIZATION, source, args)
    except ProcedureUnavailableError as exc:
        reply = Reply(error=str(exc))
    if reply.error is None and reply.value is not None and reply.value not in DECISIONS:
        reply = Reply(
            error=f"returned {reply.value!r}; expected nil, 'deny', 'force' or 'newbie'",
            logs=reply.logs,
        )
    return Authorization(reply)


def decision(runner: ProcedureRunner, session: Session, run: Authorization | None) -> str | None:
    """In the caller's write transaction: apply the run's writes (or record its failure)
    and give its answer; None, the default, when it failed or none ran."""
    if run is None:
        return None
    if runner.settle(session, AUTHORIZATION, None, run.reply) is not None:
        return None
    return run.value


def authorization_source(session: Session) -> str | None:
    """The enabled station_authorization_in_progress procedure's source, if any."""
    return procedures.enabled_sources(session, {AUTHORIZATION}).get(AUTHORIZATION)
