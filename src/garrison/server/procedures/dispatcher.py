"""Running procedures: from the event log (every event but one), and synchronously for
``station_authorization_in_progress``, whose answer decides an authorization.

From the log (:class:`ProcedureConsumer`), a batch at a time: every event's chain runs in
workers with no transaction open, several runs to a worker message (each run its own
environment, limits and outcome; the batch's host reads answered once per distinct read),
then one transaction applies what each run asked for (or records its failure), event by
event in log order, each run in its own savepoint, and moves the consumer's cursor past the
batch, so each event's writes happen exactly once.  A later event of a batch does not see
an earlier one's writes (docs/procedures.md, "Batches").  A batch whose runs all succeeded
with nothing to apply (most, for most procedures) needs no transaction of its own: the
runtime moves the cursor past it.  A failing run is
recorded in ``procedure_errors`` (with its set) and passed over; after ``disable_after``
failures in a row of one set's procedure, it is disabled, and that is audited
(``procedure.auto_disable``: an audit entry, which is also an ``audit`` event in the log).

Every event runs through the chain of its procedures: the enabled procedures of the enabled
procedure sets, in set order.  From the log, every set's procedure runs, and a failure in
one does not stop the next (each failure is recorded with its set and counted per set).

Authorization (:func:`authorize`, then :func:`decision`): the caller reads the arguments,
runs the chain before its write transaction and settles the answer inside it.  The first
set whose procedure answers (non-nil) decides and the later sets are not called; a run
that fails (its budget, its deadline, no worker free) answers nothing, like nil: its
failure is recorded and the next set is asked.  When no set answers the default applies.
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
from garrison.server.procedures.runner import Call, ProcedureRunner
from garrison.server.procedures.sandbox import ProcedureUnavailableError
from garrison.server.procedures.service import Link
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
    links: tuple[Link, ...]  # the event's chain, in set order
    args: dict[str, Any]


class _RunEach(CheckpointedSend):
    def __init__(self, consumer: ProcedureConsumer, work: list[_Work], size: int) -> None:
        self.consumer = consumer
        self.work = work
        self.size = size

    def run(self, checkpoint: Checkpoint) -> Progress:
        runner = self.consumer.runner
        # Every event's chain, every set's procedure (none stops the next), all in one
        # batch to the workers, in order, outside any transaction: each run has its own
        # environment, limits and outcome (see WorkerPool.run_many).
        calls: list[Call] = []
        ends: list[int] = []  # per event: where its runs end in ``calls``
        for item in self.work:
            for link in item.links:
                calls.append(Call(item.name, link.source, item.args, item.seq, link.set_name))
            ends.append(len(calls))
        ran = runner.run_many(calls)
        # The events all of whose runs ended: every one unless no worker could take the rest
        # (then the first event left out is run again later, from here: nothing of it or
        # after it has been applied).
        complete = sum(1 for end in ends if end <= len(ran.replies))
        events: list[tuple[_Work, list[tuple[Link, Reply]]]] = []
        for position in range(complete):
            item, begin = self.work[position], ends[position - 1] if position else 0
            events.append(
                (item, list(zip(item.links, ran.replies[begin : ends[position]], strict=True)))
            )
        if any(_writes(pairs) for _, pairs in events):
            # One transaction applies what every event of the batch asked for, event by event
            # in order and each run in a savepoint of its own, and moves the cursor past the
            # batch: the writes happen exactly once.
            with runner.db.transaction() as session:
                self._settle(events, session)
                checkpoint.advance(session, events[-1][0].seq)
        else:
            # Nothing to apply and nothing to record: no transaction.  The cursor moves past
            # the batch with the runtime's own update; a restart before then runs it again,
            # which changes nothing.
            self._settle(events, None)
        if complete < len(self.work):
            return Progress(self.work[complete].index, ran.unavailable)
        return Progress(self.size)

    def _settle(
        self, events: list[tuple[_Work, list[tuple[Link, Reply]]]], session: Session | None
    ) -> None:
        consumer, runner = self.consumer, self.consumer.runner
        disabled: set[tuple[str, str]] = set()
        # Each procedure checked (and locked) once per transaction: the lock holds it as it is
        # until the commit.
        currents: dict[tuple[str, str], Procedure | None] = {}
        for item, pairs in events:
            for link, reply in pairs:
                key = (link.set_name, item.name)
                if key in disabled:
                    # Disabled by an earlier event of this batch: as if it had not run.
                    continue
                if session is None or not _writes([(link, reply)]):
                    consumer.succeeded(link, item.name)
                    continue
                if key not in currents:
                    currents[key] = procedures.still_current(session, item.name, link, lock=True)
                current = currents[key]
                if current is None:
                    # Disabled, changed or its set deleted/disabled while it ran: what it
                    # asked for is dropped.
                    continue
                error = runner.settle(session, item.name, item.seq, reply, link.set_name)
                if consumer.counted(session, current, error):
                    disabled.add(key)


def _writes(pairs: Sequence[tuple[Link, Reply]]) -> bool:
    """Whether any of these runs has something to apply or a failure to record."""
    return any(reply.error is not None or reply.actions for _, reply in pairs)


class ProcedureConsumer(Consumer):
    """The event-log consumer that runs each event's procedure once (see the module
    docstring)."""

    name = "procedures"
    batch_size = 500
    outside_transaction = True

    def __init__(self, runner: ProcedureRunner, disable_after: int = DISABLE_AFTER) -> None:
        self.runner = runner
        self.disable_after = disable_after
        # Per (set, procedure): (version, failures in a row).  In memory: a restart starts
        # over.
        self._failures: dict[tuple[str, str], tuple[int, int]] = {}

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
        chains = procedures.enabled_chains(session, names)
        work = []
        for index, event in enumerate(batch):
            declared = CATALOGUE.get(event.type)
            name = declared.procedure if declared else None
            if name and name in chains:
                links = tuple(chains[name])
                work.append(_Work(index, event.seq, name, links, dict(event.data)))
        return _RunEach(self, work, len(batch))

    def succeeded(self, link: Link, name: str) -> None:
        """Count a run that succeeded with nothing to apply (as :meth:`counted` does for a
        success, without a transaction): its procedure's failures in a row start over."""
        self._failures[(link.set_name, name)] = (link.version, 0)

    def counted(self, session: Session, procedure: Procedure, error: str | None) -> bool:
        """Count a run's outcome; disables the procedure (in ``session``) at the
        ``disable_after``-th failure in a row.  Returns whether it did."""
        key = (procedure.set_name, procedure.name)
        version, failures = self._failures.get(key, (procedure.version, 0))
        if version != procedure.version:
            failures = 0
        failures = 0 if error is None else failures + 1
        self._failures[key] = (procedure.version, failures)
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
            set=procedure.set_name,
        )
        log.warning(
            "procedure disabled after failing repeatedly",
            procedure=procedure.name,
            set=procedure.set_name,
            failures=failures,
            error=error,
        )
        self._failures.pop(key, None)
        return True


def checked_answer(reply: Reply) -> Reply:
    """An authorization run's reply, made a failure when it answered something that is not
    an answer (nil, 'deny', 'force', 'newbie')."""
    if reply.error is None and reply.value is not None and reply.value not in DECISIONS:
        return Reply(
            error=f"returned {reply.value!r}; expected nil, 'deny', 'force' or 'newbie'",
            logs=reply.logs,
            elapsed=reply.elapsed,
        )
    return reply


@dataclass(frozen=True)
class Step:
    """One set's run in an authorization chain."""

    link: Link
    reply: Reply

    @property
    def value(self) -> str | None:
        value = self.reply.value
        return value if self.reply.error is None and value in DECISIONS else None


@dataclass(frozen=True)
class Authorization:
    """The runs of the authorization chain, done before the caller's write transaction: the
    sets' procedures in set order, up to the first that answered (a failure answers
    nothing: the next set is asked, as for nil)."""

    steps: tuple[Step, ...]

    @property
    def deciding(self) -> Step | None:
        last = self.steps[-1] if self.steps else None
        return last if last is not None and last.value is not None else None

    @property
    def value(self) -> str | None:
        deciding = self.deciding
        return deciding.value if deciding is not None else None


def authorize(
    runner: ProcedureRunner, chain: Sequence[Link] | None, args: Mapping[str, Any]
) -> Authorization | None:
    """Run the authorization chain (None or empty: no procedure is enabled, nothing runs)
    with ``args``, outside any transaction, set by set until one answers.  A run that could
    not happen (no worker free) is a failure like any other here: the answer must not
    wait."""
    if not chain:
        return None
    steps: list[Step] = []
    for link in chain:
        try:
            reply = runner.run(AUTHORIZATION, link.source, args, None, link.set_name)
        except ProcedureUnavailableError as exc:
            reply = Reply(error=str(exc))
        step = Step(link, checked_answer(reply))
        steps.append(step)
        if step.value is not None:
            break  # this set decides: the later sets are not called
    return Authorization(tuple(steps))


def decision(runner: ProcedureRunner, session: Session, run: Authorization | None) -> str | None:
    """In the caller's write transaction: apply each run's writes (or record its failure,
    with its set) and give the deciding set's answer; None, the default, when none
    answered, when the deciding run's writes failed, or when its procedure changed, was
    disabled or its set deleted or disabled while it ran (then its writes are dropped)."""
    if run is None:
        return None
    answer: str | None = None
    for step in run.steps:
        if procedures.still_current(session, AUTHORIZATION, step.link) is None:
            log.info(
                "authorization procedure changed while it ran; its outcome is dropped",
                set=step.link.set_name,
            )
            continue
        error = runner.settle(session, AUTHORIZATION, None, step.reply, step.link.set_name)
        if step is run.deciding and error is None:
            answer = step.value
    return answer


def authorization_chain(session: Session) -> list[Link] | None:
    """The enabled station_authorization_in_progress procedures, in set order; None when
    there is none."""
    return procedures.enabled_chains(session, {AUTHORIZATION}).get(AUTHORIZATION) or None
