"""Administrative actions on event procedures: set, enable, disable, delete, dry-run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from garrison.server.audit import service as audit
from garrison.server.audit.actor import Actor
from garrison.server.procedures import service as procedures
from garrison.server.procedures.dispatcher import AUTHORIZATION, DECISIONS
from garrison.server.procedures.models import Procedure
from garrison.server.procedures.runner import ProcedureRunner
from garrison.server.procedures.sandbox import ProcedureUnavailableError
from garrison.server.procedures.workers import Action, Reply
from garrison.server.store.unit import Transactions


def set_procedure(
    db: Transactions, actor: Actor, event: str, source: str, enabled: bool = True
) -> Procedure:
    """Store ``source`` as the event's procedure (a new version)."""
    with db.transaction() as session:
        return procedures.put(session, actor, event, source, enabled)


def set_enabled(db: Transactions, actor: Actor, event: str, enabled: bool) -> Procedure:
    with db.transaction() as session:
        return procedures.set_enabled(session, actor, event, enabled)


def delete_procedure(db: Transactions, actor: Actor, event: str) -> None:
    with db.transaction() as session:
        procedures.delete(session, actor, event)


@dataclass(frozen=True)
class DryRun:
    """What a dry run came to: the value or the error, its log lines, and the writes it
    would have made (none is made)."""

    value: Any
    error: str | None
    logs: list[str]
    actions: list[Action]
    elapsed: float


def dry_run(
    runner: ProcedureRunner,
    actor: Actor,
    event: str,
    args: Mapping[str, Any],
    source: str | None = None,
) -> DryRun:
    """Run the stored procedure (or ``source``) with ``args`` in a worker, as the event log
    would (same workers, same deadline), and apply none of its writes: they are shown.
    Audited (``procedure.test``), with the outcome."""
    with runner.db.reading() as session:
        if source is None:
            source = procedures.get(session, event).source
        else:
            procedures.check_name(event)
    try:
        reply = runner.run(event, source, args)
    except ProcedureUnavailableError as exc:
        reply = Reply(error=str(exc))
    if event == AUTHORIZATION and reply.error is None and reply.value not in (None, *DECISIONS):
        reply = Reply(
            error=f"returned {reply.value!r}; expected nil, 'deny', 'force' or 'newbie'",
            logs=reply.logs,
            elapsed=reply.elapsed,
        )
    _audit_test(runner, actor, event, reply.error, len(reply.actions))
    return DryRun(reply.value, reply.error, reply.logs, reply.actions, reply.elapsed)


def dry_run_refused(runner: ProcedureRunner, actor: Actor, event: str, error: str) -> DryRun:
    """A dry run that did not get a worker in time: audited like one that ran."""
    procedures.check_name(event)
    _audit_test(runner, actor, event, error, 0)
    return DryRun(None, error, [], [], 0.0)


def _audit_test(
    runner: ProcedureRunner, actor: Actor, event: str, error: str | None, writes: int
) -> None:
    with runner.db.transaction() as session:
        audit.record(session, actor, "procedure.test", event, error=error, writes=writes)
