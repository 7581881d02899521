"""Client certificates for mutual TLS, in-process: issued for a station's CSR, recorded,
and listed as revoked once the station is deleted or a newer one is issued."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from garrison.agent.state import StateDir
from garrison.agent.trust import client_csr
from garrison.server.tls.reports import revoked_serials
from tests.conftest import Server
from tests.support import ArmaditoAgent


def _csr(state: Path) -> str:
    csr, _ = client_csr(StateDir(state))
    return csr


def _issue(agent: ArmaditoAgent, csr: str) -> x509.Certificate:
    response = agent.client.post(
        agent.url("tls/client-certificate"), json={"csr": csr}, headers=agent.headers()
    )
    assert response.status_code == 200, response.text
    return x509.load_pem_x509_certificate(response.json()["certificate"].encode())


def test_a_station_gets_a_certificate_for_its_uuid_revoked_with_the_station(
    server: Server, tmp_path: Path
) -> None:
    agent = server.enrolled_agent()
    cert = _issue(agent, _csr(tmp_path))
    subject = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert subject == agent.uuid
    assert cert.not_valid_after_utc > dt.datetime.now(dt.UTC) + dt.timedelta(days=300)
    serial = format(cert.serial_number, "x")
    assert revoked_serials(server.db) == []

    newer = _issue(agent, _csr(tmp_path))
    assert revoked_serials(server.db) == [serial]  # superseded by the newer one

    station = server.admin.get("/stations").json()["items"][0]["id"]
    assert server.admin.delete(f"/stations/{station}").status_code == 204
    assert sorted(revoked_serials(server.db)) == sorted([serial, format(newer.serial_number, "x")])


def test_a_certificate_needs_the_stations_token_and_a_valid_csr(server: Server) -> None:
    anonymous = server.agent()
    response = anonymous.client.post(
        anonymous.url("tls/client-certificate"), json={"csr": "x"}, headers=anonymous.headers()
    )
    assert response.status_code == 401
    agent = server.enrolled_agent()
    bodies: list[object] = [{"csr": "not a csr"}, {}, []]
    for body in bodies:
        response = agent.client.post(
            agent.url("tls/client-certificate"), json=body, headers=agent.headers()
        )
        assert response.status_code == 422, response.text
        assert response.json()["error"]
