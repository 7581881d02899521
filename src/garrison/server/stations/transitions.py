"""A station's online/offline transitions, each once, on any node.

- **checked in**: the check-ins a node noted (see :class:`PresenceTracker`) are written as
  ``last_seen``; a station seen again after being marked disconnected *returns*, and its
  return is an authorization (below);
- **shut down**: its agent said ``SHUTTING_DOWN``: offline now, not after the timeout;
- **silent**: no check-in within ``offline_after_seconds``: offline.

Both ways offline emit ``DISCONNECTED`` once; a return that is allowed emits
``station_connected``.

A return runs ``station_authorization_in_progress`` (Dr.Web calls it at every authorization
of a known station), with the arguments it gets at re-enrollment, and its answer decides:

- ``nil`` or ``'force'``: the station is connected again;
- ``'deny'``: the station is *denied* (``denied_at``): ``station_authorization_failed`` is
  emitted, its cached tokens are dropped at commit (``Signal.STATION_CREDENTIALS_REVOKED``)
  and every request with its credentials is refused (``StationDeniedError``) until an
  administrator or a procedure allows it (:func:`garrison.server.stations.service.allow`);
  being refused, it does not return again, so the procedure does not run again meanwhile;
- ``'newbie'``: the station is deleted, as a ``'newbie'`` re-enrollment deletes it: its token
  stops working (401) and its agent enrolls again as a new station, whose enrollment is a
  new authorization.

The decision is taken here, when the presence flush writes the return, not in the request
that came back.  Not inside the flush's transaction, though: the flush writes ``last_seen``
and notes who returned (:func:`checked_in`); each return's procedure then runs in a worker
with no transaction open, and a short transaction of its own applies its answer
(:func:`authorize_returns`), if the station is still away and not denied by then (another
node may have settled the same return meanwhile: its answer holds).  With no procedure
enabled the return is settled in the flush's transaction, as nothing runs.  A request does
not know the station was disconnected without a database read, and the check-in hot path
(a cached token, nothing queued) does no database read at all.  The cost is that the
requests of the first flush interval after a return (a few seconds) are served before the
procedure has answered; a denial holds from the next request on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from garrison.server.events import emitters
from garrison.server.procedures.dispatcher import (
    Authorization,
    authorization_chain,
    authorize,
    decision,
)
from garrison.server.procedures.runner import ProcedureRunner
from garrison.server.procedures.sandbox import cap_args
from garrison.server.stations import service as stations
from garrison.server.stations.models import Station
from garrison.server.store.base import utcnow
from garrison.server.store.engine import Database

DENIED_REASON = "authorization denied by the station_authorization_in_progress procedure"

# A check-in: when, and from which address.
CheckIn = tuple[dt.datetime, str]


@dataclass(frozen=True)
class Return:
    """A station that came back, written by the flush, whose procedure is still to run."""

    station_id: int
    seen: dt.datetime
    address: str
    args: dict[str, Any]


def checked_in(
    session: Session, batch: Mapping[int, CheckIn], procedures: ProcedureRunner | None
) -> list[Return]:
    """Write check-ins as ``last_seen`` (never backwards) and find the stations that return.
    With no procedure enabled (or no runner), their returns are settled here; otherwise
    they are returned, for :func:`authorize_returns` once this transaction has ended."""
    if not batch:
        return []
    # The disconnected ones first, locked and read before the write: a return's procedure
    # gets the address and time of the station's last connection, not of this check-in.
    # A check-in not after ``last_seen`` (begun before a SHUTTING_DOWN, noted after it) is no
    # return.  A denied station is no return either: a node whose cache still trusts its
    # token may have noted it, and the procedure has answered already.
    away = [
        station
        for station in session.scalars(
            select(Station)
            .where(
                Station.id.in_(list(batch)),
                Station.connected.is_(False),
                Station.denied_at.is_(None),
            )
            .with_for_update()
        )
        if station.last_seen < batch[station.id][0]
    ]
    # ``connected``: no other station with this id is connected, this one was not.
    args = {
        station.id: dict(
            cap_args(
                emitters.authorization_args(
                    station, False, station.hostname or station.uuid, batch[station.id][1][:64]
                )
            )
        )
        for station in away
    }
    table = Station.__table__
    session.connection().execute(
        update(table)  # type: ignore[arg-type]
        .where(table.c.id == bindparam("sid"))
        .where(table.c.last_seen < bindparam("seen"))
        .values(last_seen=bindparam("seen"), address=bindparam("addr")),
        [{"sid": sid, "seen": seen, "addr": addr[:64]} for sid, (seen, addr) in batch.items()],
    )
    if not away:
        return []
    # Read once: after an outage thousands of stations may return in one flush.
    chain = authorization_chain(session) if procedures is not None else None
    if chain is None:
        for station in away:
            _settle(session, None, station, *batch[station.id], args[station.id], None)
        return []
    return [Return(st.id, *batch[st.id], args[st.id]) for st in away]


def authorize_returns(db: Database, procedures: ProcedureRunner, returns: list[Return]) -> int:
    """Run each return's procedure, outside any transaction, then settle it in a short
    transaction of its own; returns how many were settled here."""
    settled = 0
    for back in returns:
        with db.reading() as session:
            chain = authorization_chain(session)
        run = authorize(procedures, chain, back.args)
        with db.transaction() as session:
            station = session.scalar(
                select(Station).where(Station.id == back.station_id).with_for_update()
            )
            # Still away and not denied: no other node settled this return meanwhile.
            if station is None or station.connected or station.denied_at is not None:
                continue
            _settle(session, procedures, station, back.seen, back.address, back.args, run)
            settled += 1
    return settled


def _settle(
    session: Session,
    procedures: ProcedureRunner | None,
    station: Station,
    seen: dt.datetime,
    address: str,
    args: dict[str, Any],
    run: Authorization | None,
) -> str | None:
    """A disconnected station checked in at ``seen`` from ``address`` (already written):
    its authorization, by ``run`` (None: no procedure).  Returns the answer."""
    # What the row holds now (the UPDATE wrote it), for the events that follow.
    set_committed_value(station, "last_seen", seen)
    set_committed_value(station, "address", address[:64])
    emitters.authorization_in_progress(session, args)
    answer = decision(procedures, session, run) if procedures is not None else None
    if answer == "deny":
        deny(session, station, DENIED_REASON, address)
    elif answer == "newbie":
        emitters.station_deleted(session, station.id, "procedure:authorization")
        stations.remove(session, station)
    else:
        station.connected = True
        emitters.station_connected(session, station)
    return answer


def deny(session: Session, station: Station, reason: str, address: str) -> None:
    """Refuse the station's requests from commit on, until it is allowed again."""
    station.denied_at = utcnow()
    emitters.authorization_failed(session, reason, address, station)
    stations.credentials_revoked(session, (station.id,))


def shut_down(session: Session, station: Station) -> bool:
    """The agent said it is shutting down: the station is offline now, not after the
    check-in timeout (DISCONNECTED once, as when it times out)."""
    if not station.connected:
        return False
    now = utcnow()
    station.connected = False
    # Later than any check-in noted before this one: only a new request reconnects it.
    station.last_seen = max(station.last_seen, now)
    emitters.disconnected(session, station.id, now)
    return True


def disconnect_silent(session: Session, offline_after: int, limit: int = 1000) -> int:
    """DISCONNECTED for stations silent past the timeout; each one once, on any node."""
    cutoff = utcnow() - dt.timedelta(seconds=offline_after)
    silent = list(
        session.scalars(
            select(Station)
            .where(Station.connected.is_(True), Station.last_seen < cutoff)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    for station in silent:
        changed = session.execute(
            update(Station)
            .where(Station.id == station.id, Station.connected.is_(True))
            .values(connected=False)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if changed:
            emitters.disconnected(session, station.id, station.last_seen)
    return len(silent)
