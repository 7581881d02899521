"""An agent enrolling: key check, the authorization procedure, the station, the events.

For a uuid Garrison already knows, ``station_authorization_in_progress`` runs first and its
answer decides:
- ``nil``: the default. Re-enrollment is allowed, except when a station with this uuid is
  connected right now from another address (two machines with one DMI uuid, e.g. cloned
  VMs): that is refused;
- ``'deny'``: refused;
- ``'force'``: allowed even then; the connected station's token stops working;
- ``'newbie'``: the known station is deleted and the agent enrolls as a new station.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from garrison.server.enrollment import service as keys
from garrison.server.events import emitters
from garrison.server.procedures.dispatcher import authorization_decision
from garrison.server.procedures.sandbox import Limits
from garrison.server.stations import service as stations


@dataclass(frozen=True)
class Enrolled:
    station_id: int | None
    token: str | None
    created: bool
    refused: str | None = None  # why the authorization was refused (committed as an event)


def enroll(
    session: Session, key_text: str, identity: stations.Identity, offline_after: int, limits: Limits
) -> Enrolled:
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
            return Enrolled(known.id, None, False, refused=reason)
        if decision == "newbie":
            emitters.station_deleted(session, known.id, "procedure:" + "authorization")
            session.delete(known)
            session.flush()
    keys.consume(session, key.key)
    station, token, created = stations.enroll(session, identity, key.id)
    if created:
        emitters.station_created(session, station, f"enrollment-key:{key.id}")
    station.connected = True
    emitters.station_connected(session, station)
    return Enrolled(station.id, token, created)
