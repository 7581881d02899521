"""The agents' TLS use cases: a client certificate for the calling station."""

from __future__ import annotations

import datetime as dt

from garrison.server.errors import ForbiddenError
from garrison.server.stations.credentials import AgentCredential, named_station
from garrison.server.store.engine import Database
from garrison.server.tls import service
from garrison.server.tls.authority import Authority, Issued


def issue_client_certificate(
    db: Database,
    credential: AgentCredential,
    csr_pem: str,
    authority: Authority,
    lifetime: dt.timedelta,
) -> tuple[int, Issued]:
    """Sign the station's CSR (one transaction: the certificate is recorded, and its
    station's older ones revoked, exactly when it is issued).  Only a station's own
    credential may ask: a shared Basic login names no station to bind the certificate to."""
    if credential.station_id is None:
        raise ForbiddenError("a client certificate needs the station's own token")
    with db.transaction() as session:
        station = named_station(session, credential.station_id)
        issued = authority.sign_client(csr_pem, station.uuid, lifetime)
        service.record(session, station.id, station.uuid, issued)
        return station.id, issued


def revoked_serials(db: Database) -> list[str]:
    with db.reading() as session:
        return service.revoked_serials(session)
