"""Real processes (issue 21): ``garrison serve`` over HTTPS with its own CA, and the real
``garrison-agent`` pinning it."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from garrison.agent import config as configmod
from garrison.server.tls.authority import Authority
from tests.agent.helpers import agent_env, run_agent
from tests.live import LiveServer, start_server
from tests.support import wait_for

pytestmark = pytest.mark.slow
UUID = "C0FFEE00-1234-4321-AAAA-0000000000F1"
GARRISON = [sys.executable, "-m", "garrison.cli"]


def printed_fingerprint(server: LiveServer) -> str:
    found = re.search(r"CA SHA-256 \(--ca-sha256\):\s+([0-9a-f]{64})", server.log_path.read_text())
    assert found, server.log_path.read_text()
    return found.group(1)


def der_sha256(pem_file: Path) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem_file.read_text())).hexdigest()


def verify(server: LiveServer) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=server.ca_file)


def admin(server: LiveServer, method: str, path: str, **kw: Any) -> Any:
    response = httpx.request(
        method,
        f"{server.url}/admin/v1{path}",
        headers={"Authorization": f"Bearer {server.token}"},
        verify=verify(server),
        timeout=30,
        **kw,
    )
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


def station_id(server: LiveServer) -> int:
    items = admin(server, "GET", "/stations")["items"]
    return int(next(s["id"] for s in items if s["uuid"] == UUID))


def ok(done: subprocess.CompletedProcess[str], code: int = 0) -> str:
    assert done.returncode == code, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr
    return done.stdout + done.stderr


def enroll(server: LiveServer, env: dict[str, str], *pin: str) -> subprocess.CompletedProcess[str]:
    return enroll_with_ca(server, env, server.ca_file, *pin)


def enroll_with_ca(
    server: LiveServer, env: dict[str, str], ca: Path, *pin: str
) -> subprocess.CompletedProcess[str]:
    """A key made over the admin API (trusting ``ca``), then the agent's Enrollment."""
    response = httpx.post(
        f"{server.url}/admin/v1/enrollment-keys",
        headers={"Authorization": f"Bearer {server.token}"},
        json={"uses": 10},
        verify=ssl.create_default_context(cafile=ca),
        timeout=30,
    )
    assert response.status_code in (200, 201), response.text
    return run_agent(env, "-s", server.url, *pin, "-t", "Enrollment", "-k", response.json()["key"])


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[LiveServer]:
    srv = start_server(tmp_path / "data", tls=True)
    yield srv
    srv.stop()


def state_files(state: Path) -> dict[str, bytes]:
    return {n: (state / n).read_bytes() for n in ("agent.json", "agent.toml", "server-ca.pem")}


def test_a_fresh_server_serves_https_and_a_pinned_agent_works(
    tls_server: LiveServer, tmp_path: Path
) -> None:
    server = tls_server
    fingerprint = printed_fingerprint(server)
    assert fingerprint == der_sha256(server.ca_file)
    assert (server.data_dir / "tls" / "ca-key.pem").stat().st_mode & 0o777 == 0o600
    # HTTPS only: plain HTTP on the port gets no answer, and the CA is served for pinning.
    with pytest.raises(httpx.HTTPError):
        httpx.get(server.url.replace("https://", "http://") + "/admin/v1/health", timeout=5)
    served = httpx.get(f"{server.url}/api/tls/ca", verify=verify(server)).text
    assert served == server.ca_file.read_text()

    state = tmp_path / "agent"
    env = agent_env(state, UUID)
    # Not pinned and not in the system's CAs: refused with the way out named.
    refused = enroll(server, env)
    assert refused.returncode == 4, refused.stderr
    assert "--ca-sha256" in refused.stderr
    assert "not trusted" in refused.stderr
    assert not (state / "agent.json").exists()
    # A wrong pin: refused before anything is sent.
    wrong = enroll(server, env, "--ca-sha256", "ab" * 32)
    assert wrong.returncode == 4, wrong.stderr
    assert f"has SHA-256 {fingerprint}, not the pinned" in wrong.stderr
    assert not (state / "agent.json").exists()

    ok(enroll(server, env, "--ca-sha256", fingerprint.upper()))
    config = configmod.load(state / "agent.toml")
    assert config.server.ca_sha256 == fingerprint
    assert config.server.url == server.url
    assert der_sha256(state / "server-ca.pem") == fingerprint
    assert f"server CA:   pinned, SHA-256 {fingerprint}" in ok(run_agent(env, "status"))

    station = station_id(server)
    job = admin(
        server,
        "POST",
        "/jobs",
        json={"type": "SelfTest", "station_ids": [station], "priority": 3, "params": {}},
    )["id"]
    ok(run_agent(env, "-t", "Getjobs"))
    out = ok(run_agent(env, "-t", "Runjobs"))
    assert f"job {job} SelfTest: successful" in out

    # The admin CLI next to the server trusts the CA of its data dir.
    done = subprocess.run(
        [*GARRISON, "stations", "list", "--data-dir", str(server.data_dir), "--json"],
        capture_output=True,
        text=True,
        env=server.env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert UUID in done.stdout


def test_the_pinned_agent_refuses_another_certificate_and_keeps_its_state(
    tls_server: LiveServer, tmp_path: Path
) -> None:
    server = tls_server
    state = tmp_path / "agent"
    env = agent_env(state, UUID)
    pinned = printed_fingerprint(server)
    ok(enroll(server, env, "--ca-sha256", pinned))
    ok(run_agent(env, "-t", "Getjobs"))
    before = state_files(state)
    port = int(server.url.rsplit(":", 1)[1])
    server.stop()

    # Another server (its own CA) at the same address: every request is refused.
    other = start_server(tmp_path / "other", tls=True, port=port)
    try:
        assert printed_fingerprint(other) != pinned
        done = run_agent(env, "-t", "Getjobs")
        assert done.returncode == 4, done.stderr
        assert "not signed by the pinned CA" in done.stderr
        # Re-enrolling keeps the pin: the other server's key is not even sent.
        key = admin(other, "POST", "/enrollment-keys", json={"uses": 1})["key"]
        again = run_agent(env, "-t", "Enrollment", "-k", key)
        assert again.returncode == 4
        assert "not the pinned" in again.stderr
        assert admin(other, "GET", "/stations")["items"] == []
        # A downgrade to plain HTTP is refused too, and not recorded.
        plain = run_agent(env, "-s", other.url.replace("https", "http"), "-t", "Getjobs")
        assert plain.returncode == 4
        assert "refusing plain HTTP" in plain.stderr
        assert state_files(state) == before
    finally:
        other.stop()

    back = start_server(server.data_dir, tls=True, port=port)
    try:
        ok(run_agent(env, "-t", "Getjobs"))
    finally:
        back.stop()


def test_renewal_keeps_the_agent_working(tmp_path: Path) -> None:
    """A certificate of 60 s renewed 57 s before its end: a new one every ~3 s."""
    env_server = {
        "GARRISON_TLS_CERT_LIFETIME_SECONDS": "60",
        "GARRISON_TLS_RENEW_BEFORE_SECONDS": "57",
        "GARRISON_TLS_REFRESH_SECONDS": "0.5",
    }
    server = start_server(tmp_path / "data", tls=True, extra_env=env_server)
    try:
        state = tmp_path / "agent"
        env = agent_env(state, UUID)
        # Trust on first use, asked for: the CA the server shows is pinned, and said.
        said = ok(enroll(server, env, "--trust-on-first-use"))
        assert (
            f"trusting on first use the server's CA, SHA-256 {printed_fingerprint(server)}" in said
        )
        assert configmod.load(state / "agent.toml").server.ca_sha256 == printed_fingerprint(server)
        host, port = "127.0.0.1", int(server.url.rsplit(":", 1)[1])
        first = ssl.get_server_certificate((host, port))
        # A connection opened before the renewal goes on after it.
        with httpx.Client(verify=verify(server), timeout=10) as kept:
            assert kept.get(f"{server.url}/api/tls/ca").status_code == 200
            wait_for(
                lambda: ssl.get_server_certificate((host, port)) != first,
                timeout=30,
                what="a renewed server certificate",
                every=0.5,
            )
            assert kept.get(f"{server.url}/api/tls/ca").status_code == 200
        ok(run_agent(env, "-t", "Getjobs"))
        assert "tls_certificate_issued" in server.log_path.read_text()
    finally:
        server.stop()


def test_mutual_tls_refuses_a_deleted_stations_certificate(tmp_path: Path) -> None:
    server = start_server(
        tmp_path / "data",
        tls=True,
        extra_env={"GARRISON_TLS_CLIENT_CERTS": "true", "GARRISON_TLS_REFRESH_SECONDS": "0.5"},
    )
    try:
        state = tmp_path / "agent"
        env = agent_env(state, UUID)
        ok(enroll(server, env, "--ca-sha256", printed_fingerprint(server)))
        assert (state / "client.pem").stat().st_mode & 0o777 == 0o600
        ok(run_agent(env, "-t", "Getjobs"))

        with_cert = verify(server)
        with_cert.load_cert_chain(state / "client.pem", state / "client-key.pem")

        host, port = "127.0.0.1", int(server.url.rsplit(":", 1)[1])

        def answer(context: ssl.SSLContext) -> str:
            """The start of the answer to a request; "" when the server refused the
            certificate (TLS 1.3: the handshake looked complete, then the server closed)."""
            with socket.create_connection((host, port), timeout=5) as raw:
                try:
                    with context.wrap_socket(raw, server_hostname=host) as tls:
                        tls.sendall(b"GET /api/tls/ca HTTP/1.0\r\n\r\n")
                        return tls.recv(12).decode()
                except (ssl.SSLError, ConnectionError):
                    return ""

        assert answer(with_cert) == "HTTP/1.1 200"
        admin(server, "DELETE", f"/stations/{station_id(server)}")
        wait_for(lambda: answer(with_cert) == "", timeout=30, what="the certificate revoked")
        # The connection is refused for the certificate: one without any is answered.
        assert answer(verify(server)) == "HTTP/1.1 200"
        # Refused by TLS (exit 4, nothing sent), not by the token check (a 401, exit 5).
        done = run_agent(env, "-t", "Getjobs")
        assert done.returncode == 4, done.stderr
        assert "revoked client certificate" in done.stderr
        # A client without a certificate still reaches the server, to enroll again.
        assert httpx.get(f"{server.url}/api/tls/ca", verify=verify(server)).status_code == 200
        ok(enroll(server, env))  # the pin kept from the first enrollment
        ok(run_agent(env, "-t", "Getjobs"))
    finally:
        server.stop()


def test_an_operators_own_certificate_is_served_and_pinned(tmp_path: Path) -> None:
    """``--tls-cert/--tls-key``: agents pin the top of the given chain (here its CA)."""
    own = Authority.open(tmp_path / "own-ca")[0]
    chain, key = own.issue_server(["127.0.0.1"], dt.timedelta(days=30))
    (tmp_path / "chain.pem").write_bytes(chain)
    (tmp_path / "key.pem").write_bytes(key)
    args = ["--tls-cert", str(tmp_path / "chain.pem"), "--tls-key", str(tmp_path / "key.pem")]
    server = start_server(tmp_path / "data", tls=True, extra_args=args, ca=tmp_path / "chain.pem")
    try:
        assert printed_fingerprint(server) == own.fingerprint
        assert ssl.get_server_certificate(("127.0.0.1", int(server.url.rsplit(":", 1)[1])))
        env = agent_env(tmp_path / "agent", UUID)
        ok(enroll_with_ca(server, env, tmp_path / "chain.pem", "--ca-sha256", own.fingerprint))
        ok(run_agent(env, "-t", "Getjobs"))
    finally:
        server.stop()


def test_tls_off_serves_plain_http_without_a_ca(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")  # the helper's default: --tls off
    try:
        assert server.url.startswith("http://")
        assert httpx.get(f"{server.url}/admin/v1/health", timeout=5).status_code == 200
        answer = httpx.get(f"{server.url}/api/tls/ca", timeout=5)
        assert answer.status_code == 404
        assert "--tls off" in answer.json()["message"]
        assert not (server.data_dir / "tls").exists()
        assert "CA SHA-256" not in server.log_path.read_text()
    finally:
        server.stop()
