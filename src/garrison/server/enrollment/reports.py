"""The Enrollment report: an agent enrolling.

Key check, the authorization procedure, the station, its events, and at commit the old
token's revocation (``Signal.STATION_CREDENTIALS_REVOKED``, raised by the station slice).

The procedure never runs inside the write transaction (on SQLite that is the database's
one write lock): a read transaction finds the known station and builds the procedure's
arguments, the procedure runs in a worker with none open (bounded by its deadline), then
the write transaction checks the key and the station again and applies the answer.  If
the station changed meanwhile (created, deleted, re-enrolled with another id) the request
starts over, once.

For a uuid Garrison already knows, ``station_authorization_in_progress`` runs first and its
answer decides:
- ``nil``: the default. Re-enrollment is allowed, except when a station with this uuid is
  connected right now from another address (two machines with one DMI uuid, e.g. cloned
  VMs): that is refused;
- ``'deny'``: refused;
- ``'force'``: allowed even then; the connected station's token stops working;
- ``'newbie'``: the known station is deleted and the agent enrolls as a new station; the
  old station's token stops working.

A station denied when it came back (``stations/transitions.py``) stays denied through a
re-enrollment: it is refused unless the procedure answers ``'force'`` (which lifts the
denial) or ``'newbie'``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from garrison.server import logs
from garrison.server.enrollment import service as keys
from garrison.server.errors import ConflictError, EnrollmentRefusedError, ForbiddenError
from garrison.server.events import emitters
from garrison.server.options import service as options
from garrison.server.procedures.dispatcher import (
    Authorization,
    authorization_chain,
    authorize,
    decision,
)
from garrison.server.procedures.runner import ProcedureRunner
from garrison.server.procedures.sandbox import cap_args
from garrison.server.stations import service as stations
from garrison.server.store.engine import Database


@dataclass(frozen=True)
class EnrollmentRequest:
    key: str
    identity: stations.Identity
    # Sent by ``garrison-agent install`` ({"id", "sessionid"}): the enrollment then records
    # ``agent_installation``, completed or rejected, with the station events.
    installation: dict[str, str] | None = None


@dataclass(frozen=True)
class Enrollment:
    station_id: int
    token: str
    created: bool


@dataclass(frozen=True)
class _Outcome:
    station_id: int
    token: str | None
    created: bool
    refused: str | None = None  # why the authorization was refused (committed as an event)


class _StationChangedError(Exception):
    """The station the procedure was asked about is not the one the write transaction finds."""


@dataclass(frozen=True)
class _Asked:
    """What the procedure was asked, before the write transaction: about which station
    (None: unknown uuid, nothing was asked), with which arguments, and its run."""

    station_id: int | None
    args: dict[str, Any] | None = None
    run: Authorization | None = None


def enroll(db: Database, procedures: ProcedureRunner, request: EnrollmentRequest) -> Enrollment:
    """Enroll, or re-enroll, the station; raises EnrollmentRefusedError for a bad key and
    ForbiddenError when the authorization procedure (or the clone rule) refuses: both after
    committing the ``station_authorization_failed`` event."""
    try:
        outcome = _enroll_retrying(db, procedures, request)
    except EnrollmentRefusedError as exc:
        identity = request.identity
        with db.transaction() as session:
            known = stations.by_uuid(session, identity.uuid)
            emitters.authorization_failed(
                session,
                exc.message,
                identity.address,
                known,
                name=identity.hostname or identity.uuid,
            )
            _installation(session, request, known.id if known else None, exc.message)
        raise
    if outcome.refused is not None or outcome.token is None:
        raise ForbiddenError(outcome.refused or "authorization refused", field="uuid")
    # Logged once committed, so a lost enrollment race never logs an enrollment.
    logs.enrolled(outcome.station_id, request.identity.uuid, outcome.created)
    return Enrollment(outcome.station_id, outcome.token, outcome.created)


def _enroll_retrying(
    db: Database, procedures: ProcedureRunner, request: EnrollmentRequest
) -> _Outcome:
    for _ in range(2):
        try:
            return _enroll_once(db, procedures, request)
        except IntegrityError:
            # The same new uuid enrolling twice at once: the loser retries and finds the
            # station the winner created (a re-enrollment).
            pass
        except _StationChangedError:
            pass  # asked about another station than the one there now: ask again
    raise ConflictError(
        "this station is enrolling from elsewhere at the same time; retry", field="uuid"
    )


def _ask(db: Database, procedures: ProcedureRunner, request: EnrollmentRequest) -> _Asked:
    """Before the write transaction: the procedure's arguments, read, and its answer."""
    identity = request.identity
    with db.reading() as session:
        keys.check(session, request.key)  # a refused key runs no procedure
        known = stations.by_uuid(session, identity.uuid)
        if known is None:
            return _Asked(None)
        online = stations.is_online(known, options.get(session, "offline_after_seconds"))
        args = emitters.authorization_args(known, online, identity.hostname, identity.address)
        chain = authorization_chain(session)
    # Capped before the procedure sees them, and so in the event too: a 60,000-character
    # hostname is neither a procedure's subject nor an event's.
    args = dict(cap_args(args))
    return _Asked(known.id, args, authorize(procedures, chain, args))


def _enroll_once(db: Database, procedures: ProcedureRunner, request: EnrollmentRequest) -> _Outcome:
    asked = _ask(db, procedures, request)
    with db.transaction() as session:
        outcome = _enroll(session, procedures, request.key, request.identity, asked)
        _installation(session, request, outcome.station_id, outcome.refused)
        return outcome


def _installation(
    session: Session, request: EnrollmentRequest, station_id: int | None, refused: str | None
) -> None:
    """``agent_installation`` for an installing agent's enrollment: completed, or rejected
    with the reason."""
    if request.installation is None:
        return
    emitters.agent_installation(
        session,
        station_id,
        request.installation,
        request.identity.address,
        request.identity.hostname or request.identity.uuid,
        emitters.INSTALLATION_REJECTED if refused else emitters.INSTALLATION_COMPLETED,
        refused or "",
    )


def _enroll(
    session: Session,
    procedures: ProcedureRunner,
    key_text: str,
    identity: stations.Identity,
    asked: _Asked,
) -> _Outcome:
    key = keys.check(session, key_text)  # raises EnrollmentRefusedError: nothing is written
    known = stations.by_uuid(session, identity.uuid)
    if (known.id if known else None) != asked.station_id:
        raise _StationChangedError
    if known is not None and asked.args is not None:
        args = asked.args
        online = bool(args["connected"])
        emitters.authorization_in_progress(session, args)
        answer = decision(procedures, session, asked.run)
        reason = None
        if answer == "deny":
            reason = "authorization denied by the station_authorization_in_progress procedure"
        elif known.denied_at is not None and answer != "force" and answer != "newbie":
            reason = (
                "this station is denied; an administrator must allow it "
                f"(POST /admin/v1/stations/{known.id}/allow), unless the procedure answers 'force'"
            )
        elif (
            answer is None
            and online
            and known.address
            and identity.address
            and known.address != identity.address
        ):
            reason = (
                f"a station with this uuid is connected from {known.address}; "
                "a procedure answering 'force' allows this"
            )
        if reason is not None:
            emitters.authorization_failed(session, reason, identity.address, known)
            return _Outcome(known.id, None, False, refused=reason)
        known.denied_at = None  # 'force' lifts a denial; 'newbie' deletes the station
        if answer == "newbie":
            emitters.station_deleted(session, known.id, "procedure:" + "authorization")
            stations.remove(session, known)
            session.flush()
    keys.consume(session, key_text)
    station, token, created = stations.enroll(session, identity, key.id)
    if created:
        emitters.station_created(session, station, f"enrollment-key:{key.id}")
    station.connected = True
    emitters.station_connected(session, station)
    return _Outcome(station.id, token, created)
