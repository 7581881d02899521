"""Running procedures: from the event log (every event but one), and synchronously for
``station_authorization_in_progress``, whose answer decides an authorization."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.orm import Session

from garrison.common.catalogue import CATALOGUE
from garrison.server.events.consumers import Consumer
from garrison.server.events.models import Event
from garrison.server.procedures import service as procedures
from garrison.server.procedures.host import ProcedureHost
from garrison.server.procedures.models import ProcedureError
from garrison.server.procedures.sandbox import Limits, ProcedureFailedError, run

log = structlog.get_logger("garrison.procedures")
AUTHORIZATION = "station_authorization_in_progress"
DECISIONS = ("deny", "force", "newbie")


@dataclass(frozen=True)
class RunResult:
    value: Any
    logs: list[str]
    error: str | None
    elapsed: float


def run_procedure(
    session: Session,
    name: str,
    source: str,
    args: Mapping[str, Any],
    event_seq: int | None,
    limits: Limits,
) -> RunResult:
    """Run in a savepoint: a failure undoes what the procedure did and is recorded."""
    host = ProcedureHost(session, name, event_seq)
    savepoint = session.begin_nested()
    try:
        outcome = run(source, name, args, host.functions(), limits)
        if name == AUTHORIZATION and outcome.value is not None and outcome.value not in DECISIONS:
            raise ProcedureFailedError(
                f"returned {outcome.value!r}; expected nil, 'deny', 'force' or 'newbie'"
            )
        savepoint.commit()
        return RunResult(outcome.value, host.logs, None, outcome.elapsed)
    except Exception as exc:  # a procedure must never stop the pipeline or the request
        savepoint.rollback()
        message = str(exc) if isinstance(exc, ProcedureFailedError) else f"host error: {exc}"
        session.add(ProcedureError(procedure=name, event_seq=event_seq, error=message[:4000]))
        log.warning("procedure failed", procedure=name, event_seq=event_seq, error=message)
        return RunResult(None, host.logs, message, 0.0)


class ProcedureConsumer(Consumer):
    """The event-log consumer that runs each event's procedure once."""

    name = "procedures"
    batch_size = 100

    def __init__(self, limits: Limits = Limits()) -> None:
        self.limits = limits

    def wanted_types(self, session: Session) -> frozenset[str]:
        """The types whose procedure is enabled: most events have none, and are not read."""
        enabled = procedures.enabled_names(session)
        return frozenset(
            name
            for name, declared in CATALOGUE.items()
            if declared.procedure in enabled and declared.procedure != AUTHORIZATION
        )

    def handle(self, session: Session, batch: Sequence[Event]) -> None:
        wanted = {CATALOGUE[e.type].procedure for e in batch if e.type in CATALOGUE}
        wanted.discard(None)
        wanted.discard(AUTHORIZATION)
        if not wanted:
            return
        sources = procedures.enabled_sources(session, {n for n in wanted if n})
        for event in batch:
            declared = CATALOGUE.get(event.type)
            name = declared.procedure if declared else None
            if name and name in sources:
                run_procedure(session, name, sources[name], event.data, event.seq, self.limits)


def authorization_decision(
    session: Session, args: Mapping[str, Any], limits: Limits, source: str | None = ""
) -> str | None:
    """The station_authorization_in_progress procedure's answer (None: default behaviour,
    also when it fails).  ``source``: the procedure's, when the caller read it already
    (:func:`authorization_source`, once for many stations); None when none is enabled."""
    if source == "":
        source = authorization_source(session)
    if source is None:
        return None
    result = run_procedure(session, AUTHORIZATION, source, args, None, limits)
    value: str | None = result.value
    return value


def authorization_source(session: Session) -> str | None:
    """The enabled station_authorization_in_progress procedure's source, if any."""
    return procedures.enabled_sources(session, {AUTHORIZATION}).get(AUTHORIZATION)
