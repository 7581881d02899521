"""The Enrollment report: an agent enrolling, in one transaction.

Key check, the authorization procedure, the station, its events, and at commit the old
token's revocation (``Signal.STATION_CREDENTIALS_REVOKED``, raised by the station slice).

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

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from garrison.server import logs
from garrison.server.enrollment import service as keys
from garrison.server.errors import ConflictError, EnrollmentRefusedError, ForbiddenError
from garrison.server.events import emitters
from garrison.server.options import service as options
from garrison.server.procedures.dispatcher import authorization_decision
from garrison.server.procedures.sandbox import Limits
from garrison.server.stations import service as stations
from garrison.server.store.engine import Database


@dataclass(frozen=True)
class EnrollmentRequest:
    key: str
    identity: stations.Identity


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


def enroll(db: Database, limits: Limits, request: EnrollmentRequest) -> Enrollment:
    """Enroll, or re-enroll, the station; raises EnrollmentRefusedError for a bad key and
    ForbiddenError when the authorization procedure (or the clone rule) refuses: both after
    committing the ``station_authorization_failed`` event."""
    try:
        outcome = _enroll_retrying(db, limits, request)
    except EnrollmentRefusedError as exc:
        identity = request.identity
        with db.transaction() as session:
            emitters.authorization_failed(
                session,
                exc.message,
                identity.address,
                stations.by_uuid(session, identity.uuid),
                name=identity.hostname or identity.uuid,
            )
        raise
    if outcome.refused is not None or outcome.token is None:
        raise ForbiddenError(outcome.refused or "authorization refused", field="uuid")
    # Logged once committed, so a lost enrollment race never logs an enrollment.
    logs.enrolled(outcome.station_id, request.identity.uuid, outcome.created)
    return Enrollment(outcome.station_id, outcome.token, outcome.created)


def _enroll_retrying(db: Database, limits: Limits, request: EnrollmentRequest) -> _Outcome:
    try:
        return _enroll_once(db, limits, request)
    except IntegrityError:
        # The same new uuid enrolling twice at once: the loser retries and finds the
        # station the winner created (a re-enrollment).
        try:
            return _enroll_once(db, limits, request)
        except IntegrityError:
            raise ConflictError(
                "this station is enrolling from elsewhere at the same time; retry", field="uuid"
            ) from None


def _enroll_once(db: Database, limits: Limits, request: EnrollmentRequest) -> _Outcome:
    with db.transaction() as session:
        offline_after = options.get(session, "offline_after_seconds")
        return _enroll(session, request.key, request.identity, offline_after, limits)


def _enroll(
    session: Session, key_text: str, identity: stations.Identity, offline_after: int, limits: Limits
) -> _Outcome:
    key = keys.check(session, key_text)  # raises EnrollmentRefusedError: nothing is written
    known = stations.by_uuid(session, identity.uuid)
    if known is not None:
        online = stations.is_online(known, offline_after)
        args = emitters.authorization_args(known, online, identity.hostname, identity.address)
        emitters.authorization_in_progress(session, args)
        decision = authorization_decision(session, args, limits)
        reason = None
        if decision == "deny":
            reason = "authorization denied by the station_authorization_in_progress procedure"
        elif known.denied_at is not None and decision != "force" and decision != "newbie":
            reason = (
                "this station is denied; an administrator must allow it "
                f"(POST /admin/v1/stations/{known.id}/allow), unless the procedure answers 'force'"
            )
        elif (
            decision is None
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
        if decision == "newbie":
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
