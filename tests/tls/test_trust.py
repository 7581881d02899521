"""The agent's side of TLS against real sockets: a small HTTPS server in a thread, with
certificates of a Garrison CA made for each fault (expired, another host name, plain HTTP
where https is expected)."""

from __future__ import annotations

import datetime as dt
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from garrison.agent import trust
from garrison.agent.errors import UsageProblem
from garrison.agent.state import StateDir
from garrison.agent.transport import Identity, Transport
from garrison.server.tls.authority import Authority, utcnow

HOUR = dt.timedelta(hours=1)


class Handler(BaseHTTPRequestHandler):
    ca_pem = b""

    def do_GET(self) -> None:
        body = self.ca_pem if self.path == "/api/tls/ca" else b'{"jobs": []}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    return Authority.open(tmp_path / "tls")[0]


@pytest.fixture
def serve(tmp_path: Path, authority: Authority) -> Iterator[object]:
    servers: list[ThreadingHTTPServer] = []

    def start(chain: bytes | None, key: bytes | None = None) -> str:
        handler = type("H", (Handler,), {"ca_pem": authority.ca_pem})
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        scheme = "http"
        if chain is not None and key is not None:
            name = f"leaf-{len(servers)}"
            (tmp_path / f"{name}.pem").write_bytes(chain)
            (tmp_path / f"{name}-key.pem").write_bytes(key)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tmp_path / f"{name}.pem", tmp_path / f"{name}-key.pem")
            httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
            scheme = "https"
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return f"{scheme}://127.0.0.1:{httpd.server_address[1]}"

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def _get(state: StateDir, pin: str, url: str) -> object:
    with Transport(url, Identity("U"), verify=trust.verify_for(state, pin, url)) as transport:
        return transport.get("jobs")


def _https(serve: object, chain: tuple[bytes, bytes]) -> str:
    url: str = serve(*chain)  # type: ignore[operator]
    return url


def test_a_good_certificate_of_the_pinned_ca_is_used(
    tmp_path: Path, authority: Authority, serve: object
) -> None:
    state = StateDir(tmp_path / "agent").ensure()
    url = _https(serve, authority.issue_server(["127.0.0.1"], HOUR))
    assert _get(state, authority.fingerprint, url) == {"jobs": []}
    # Fetched once, kept, and checked against the pin at each use.
    assert trust.pem_fingerprint(trust.ca_path(state).read_text()) == authority.fingerprint


def test_expired_wrong_host_and_foreign_certificates_are_refused(
    tmp_path: Path, authority: Authority, serve: object
) -> None:
    state = StateDir(tmp_path / "agent").ensure()
    pin = authority.fingerprint
    expired = authority.issue_server(["127.0.0.1"], HOUR, now=utcnow() - 2 * HOUR)
    with pytest.raises(trust.TlsError, match="has expired"):
        _get(state, pin, _https(serve, expired))
    elsewhere = authority.issue_server(["elsewhere.example"], HOUR)
    with pytest.raises(trust.TlsError, match="not for this host"):
        _get(state, pin, _https(serve, elsewhere))
    other = Authority.open(tmp_path / "other")[0]
    with pytest.raises(trust.TlsError, match="not signed by the pinned CA"):
        _get(state, pin, _https(serve, other.issue_server(["127.0.0.1"], HOUR)))
    # Unpinned, the system's CAs do not know a Garrison CA: the way out is named.
    with pytest.raises(trust.TlsError, match="--ca-sha256"):
        _get(state, "", _https(serve, authority.issue_server(["127.0.0.1"], HOUR)))


def test_a_pinned_agent_refuses_plain_http(
    tmp_path: Path, authority: Authority, serve: object
) -> None:
    state = StateDir(tmp_path / "agent").ensure()
    plain: str = serve(None)  # type: ignore[operator]
    with pytest.raises(trust.TlsError, match="refusing plain HTTP"):
        _get(state, authority.fingerprint, plain)
    # A proxy answering plain HTTP where the agent expects https: a TLS failure, in words.
    with pytest.raises(trust.TlsError, match="TLS with server"):
        _get(state, authority.fingerprint, plain.replace("http://", "https://"))
    assert _get(state, "", plain) == {"jobs": []}  # nothing pinned: plain HTTP as asked


def test_pins_are_read_leniently_and_checked() -> None:
    pin = "AB:" * 31 + "AB"
    assert trust.normalize_pin(pin) == "ab" * 32
    with pytest.raises(UsageProblem, match="64 hex digits"):
        trust.normalize_pin("abcd")
