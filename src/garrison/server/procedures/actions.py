"""Administrative actions on event procedures and procedure sets: set, enable, disable,
delete, dry-run (one set's procedure, or an event's whole chain)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from garrison.server.audit import service as audit
from garrison.server.audit.actor import Actor
from garrison.server.procedures import service as procedures
from garrison.server.procedures.dispatcher import AUTHORIZATION, DECISIONS, checked_answer
from garrison.server.procedures.models import DEFAULT_SET, Procedure, ProcedureSet
from garrison.server.procedures.runner import ProcedureRunner
from garrison.server.procedures.sandbox import ProcedureUnavailableError
from garrison.server.procedures.workers import Action, Reply
from garrison.server.store.unit import Transactions


def set_procedure(
    db: Transactions,
    actor: Actor,
    event: str,
    source: str,
    enabled: bool = True,
    set_name: str = DEFAULT_SET,
) -> Procedure:
    """Store ``source`` as the event's procedure in ``set_name`` (a new version)."""
    with db.transaction() as session:
        return procedures.put(session, actor, event, source, enabled, set_name)


def set_enabled(
    db: Transactions, actor: Actor, event: str, enabled: bool, set_name: str = DEFAULT_SET
) -> Procedure:
    with db.transaction() as session:
        return procedures.set_enabled(session, actor, event, enabled, set_name)


def delete_procedure(
    db: Transactions, actor: Actor, event: str, set_name: str = DEFAULT_SET
) -> None:
    with db.transaction() as session:
        procedures.delete(session, actor, event, set_name)


@dataclass(frozen=True)
class SetView:
    set: ProcedureSet
    procedures: int
    created: bool = False


def put_set(
    db: Transactions, actor: Actor, name: str, order: int | None, enabled: bool | None
) -> SetView:
    with db.transaction() as session:
        found, created = procedures.put_set(session, actor, name, order, enabled)
        count = procedures.procedure_counts(session).get(name, 0)
        return SetView(found, count, created)


def delete_set(db: Transactions, actor: Actor, name: str) -> list[str]:
    with db.transaction() as session:
        return procedures.delete_set(session, actor, name)


@dataclass(frozen=True)
class ChainStep:
    """One set's part in a dry run of an event's chain: its run, or why it did not run."""

    set_name: str
    order: int
    version: int | None
    called: bool
    value: Any = None
    error: str | None = None
    logs: list[str] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    elapsed: float = 0.0
    skipped: str | None = None  # why it was not called


@dataclass(frozen=True)
class DryRun:
    """What a dry run came to: the value or the error, its log lines, and the writes it
    would have made (none is made); for a chain, each set's part in ``chain``."""

    value: Any
    error: str | None
    logs: list[str]
    actions: list[Action]
    elapsed: float
    chain: list[ChainStep] = field(default_factory=list)
    answered_by: str | None = None


def _run(
    runner: ProcedureRunner, event: str, source: str, args: Mapping[str, Any], set_name: str
) -> Reply:
    try:
        reply = runner.run(event, source, args, None, set_name)
    except ProcedureUnavailableError as exc:
        reply = Reply(error=str(exc))
    return checked_answer(reply) if event == AUTHORIZATION else reply


def dry_run(
    runner: ProcedureRunner,
    actor: Actor,
    event: str,
    args: Mapping[str, Any],
    source: str | None = None,
    set_name: str | None = None,
) -> DryRun:
    """Run, with ``args``, in workers, as the event log would (same workers, same
    deadline), and apply none of the writes: they are shown.  With ``set_name`` (or a
    ``source``, tested as the ``default`` set's procedure unless ``set_name`` says
    otherwise): that one procedure.  Without either: the event's whole chain, every set in
    order, enabled or not (a disabled one is shown as not called), and for
    ``station_authorization_in_progress`` only up to the first set that answers, as the
    server would.  Audited (``procedure.test``), with the outcome."""
    procedures.check_name(event)
    if source is not None or set_name is not None:
        one = set_name or DEFAULT_SET
        with runner.db.reading() as session:
            if source is None:
                found = procedures.get(session, event, one)
                source = found.source
            elif one != DEFAULT_SET:  # the default set is made when missing
                procedures.get_set(session, one)
        reply = _run(runner, event, source, args, one)
        _audit_test(runner, actor, event, reply.error, len(reply.actions), one)
        return DryRun(reply.value, reply.error, reply.logs, reply.actions, reply.elapsed)
    with runner.db.reading() as session:
        links = procedures.chain(session, event)
        if not links:
            procedures.get(session, event)  # the 404 of an event with no procedure
        plan = [
            (p.source, p.version, s.name, s.position, p.enabled and s.enabled) for p, s in links
        ]
    return _dry_run_chain(runner, actor, event, args, plan)


def _dry_run_chain(
    runner: ProcedureRunner,
    actor: Actor,
    event: str,
    args: Mapping[str, Any],
    plan: list[tuple[str, int, str, int, bool]],
) -> DryRun:
    steps: list[ChainStep] = []
    answered_by: str | None = None
    answer: Any = None
    started = time.monotonic()
    for source, version, set_name, order, enabled in plan:
        if not enabled:
            steps.append(ChainStep(set_name, order, version, False, skipped="disabled"))
            continue
        if answered_by is not None:
            steps.append(
                ChainStep(set_name, order, version, False, skipped=f"set {answered_by} answered")
            )
            continue
        reply = _run(runner, event, source, args, set_name)
        steps.append(
            ChainStep(
                set_name,
                order,
                version,
                True,
                reply.value,
                reply.error,
                reply.logs,
                reply.actions,
                reply.elapsed,
            )
        )
        if event == AUTHORIZATION and reply.error is None and reply.value in DECISIONS:
            answered_by, answer = set_name, reply.value
    ran = [step for step in steps if step.called]
    if event != AUTHORIZATION and len(ran) == 1:
        answer = ran[0].value  # one procedure: its value, as before sets
    errors = [step for step in ran if step.error is not None]
    if len(ran) == 1 and errors:
        error: str | None = errors[0].error
    else:
        error = "; ".join(f"set {s.set_name}: {s.error}" for s in errors) or None
    logs = [line for step in ran for line in step.logs]
    actions = [action for step in ran for action in step.actions]
    elapsed = sum(step.elapsed for step in ran) if ran else time.monotonic() - started
    _audit_test(runner, actor, event, error, len(actions), None, [s.set_name for s in ran])
    return DryRun(answer, error, logs, actions, elapsed, steps, answered_by)


def dry_run_refused(
    runner: ProcedureRunner, actor: Actor, event: str, error: str, set_name: str | None = None
) -> DryRun:
    """A dry run that did not get a worker in time: audited like one that ran."""
    procedures.check_name(event)
    _audit_test(runner, actor, event, error, 0, set_name)
    return DryRun(None, error, [], [], 0.0)


def _audit_test(
    runner: ProcedureRunner,
    actor: Actor,
    event: str,
    error: str | None,
    writes: int,
    set_name: str | None,
    chain: list[str] | None = None,
) -> None:
    details: dict[str, Any] = {"error": error, "writes": writes}
    if set_name is not None and set_name != DEFAULT_SET:
        details["set"] = set_name
    if chain is not None and chain != [DEFAULT_SET]:
        details["chain"] = chain
    with runner.db.transaction() as session:
        audit.record(session, actor, "procedure.test", event, **details)
