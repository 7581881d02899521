"""The one-line agent install for an enrollment key (admin API, console), and the
``agent_installation`` event an installing agent's enrollment records."""

from __future__ import annotations

import datetime as dt
import hashlib
import shlex
import ssl
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.conftest import Server, ServerFactory
from tests.console.support import csrf_of, login, make_user


def write_ca(data_dir: Path) -> str:
    """A self-signed CA at <data-dir>/tls/ca.pem; its SHA-256 as openssl prints it
    (hex of the DER), computed by the standard library's own PEM decoder."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    (data_dir / "tls").mkdir(parents=True, exist_ok=True)
    (data_dir / "tls" / "ca.pem").write_text(pem)
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).hexdigest()


def _command(server: Server, ref: str, status: int = 200) -> dict[str, Any]:
    answer = server.admin.get(f"/enrollment-keys/{ref}/install-command")
    assert answer.status_code == status, answer.text
    data: dict[str, Any] = answer.json()
    return data


def _key(server: Server) -> tuple[int, str]:
    made = server.admin.post("/enrollment-keys", {"uses": 3, "expires_in": 3600}).json()
    return int(made["id"]), str(made["key"])


def test_by_key_text_the_command_is_complete_and_pins_the_ca(
    server_factory: ServerFactory,
) -> None:
    http = server_factory()
    _, http_key = _key(http)
    write_ca(http.settings.data_dir)  # a CA left from a TLS run: no pin with an http:// URL
    plain = _command(http, http_key)
    assert shlex.split(plain["command"]) == [
        "garrison-agent",
        "install",
        "--server",
        "http://testserver",
        "--key",
        http_key,
    ]
    assert plain["ca_sha256"] is None
    assert plain["key_included"] is True

    server = server_factory(public_url="https://garrison.example.com")
    key_id, key = _key(server)

    pin = write_ca(server.settings.data_dir)
    pinned = _command(server, key.lower())  # the key's text in any case
    assert pinned["ca_sha256"] == pin
    assert shlex.split(pinned["command"])[4:] == ["--ca-sha256", pin, "--key", key]

    by_id = _command(server, str(key_id))
    assert by_id["key_included"] is False
    words = shlex.split(by_id["command"])
    assert words[-1] == key[:5] + "-XXXXX" * 4
    assert words[words.index("--ca-sha256") + 1] == pin


def test_public_url_and_refusals(server_factory: ServerFactory) -> None:
    server = server_factory(public_url="https://garrison.example.com:8443/")
    key_id, key = _key(server)
    assert _command(server, key)["server_url"] == "https://garrison.example.com:8443"
    assert _command(server, "999999", 404)["code"] == "not_found"
    assert server.admin.delete(f"/enrollment-keys/{key_id}").status_code == 200
    refused = _command(server, str(key_id), 409)
    assert "revoked" in refused["message"]
    # A CA file holding no certificate: said, rather than a command with a wrong pin.
    _, other = _key(server)
    (server.settings.data_dir / "tls").mkdir(parents=True, exist_ok=True)
    (server.settings.data_dir / "tls" / "ca.pem").write_text("not a certificate\n")
    assert "CA certificate" in _command(server, other, 409)["message"]
    viewer = server.admin.as_role("viewer1", "viewer")
    assert viewer.get(f"/enrollment-keys/{key}/install-command").status_code == 403


def _installations(server: Server) -> list[dict[str, Any]]:
    page = server.admin.get("/events", type="agent_installation").json()
    items: list[dict[str, Any]] = page["items"]
    return items


def test_an_installing_enrollment_records_agent_installation(server: Server) -> None:
    agent = server.agent(uuid="C0FFEE00-0000-4000-8000-00000000A001")
    marks = {"id": "inst-1", "sessionid": "sess-1"}
    refused = agent.post(
        "agents", "Enrollment", {"key": "AAAAA-AAAAA-AAAAA-AAAAA-AAAAA", "installation": marks}
    )
    assert refused.status_code == 403, refused.text
    done = agent.post("agents", "Enrollment", {"key": server.first_key, "installation": marks})
    assert done.status_code == 200, done.text
    station = done.json()["agent_id"]
    server.enrolled_agent(uuid="C0FFEE00-0000-4000-8000-00000000A002")  # not installing
    events = sorted(_installations(server), key=lambda e: e["seq"])
    assert [e["data"]["event"] for e in events] == [2, 1]
    rejected, completed = (e["data"] for e in events)
    assert rejected["message"] == "unknown enrollment key"
    assert completed["message"] == ""
    assert completed["id"] == "inst-1"
    assert completed["sessionid"] == "sess-1"
    assert events[1]["station_id"] == station
    bad = agent.post("agents", "Enrollment", {"key": server.first_key, "installation": "yes"})
    assert bad.status_code == 422
    assert bad.json()["field"] == "task.obj.installation"


def test_the_keys_page_shows_the_install_commands(server: Server) -> None:
    password = make_user(server.admin, "root9", "admin")
    login(server.client, "root9", password)
    pin = write_ca(server.settings.data_dir)
    _, key = _key(server)
    page = server.client.get("/keys").text
    # This client reaches the server over http://: no pin (an agent refuses one with http).
    assert pin not in page
    assert "garrison-agent install --server http://testserver --key " in page
    assert f"--key {key[:5]}-XXXXX-XXXXX-XXXXX-XXXXX" in page
    assert key not in page  # stored hashed: never shown again
    made = server.client.post(
        "/keys", data={"uses": "2", "expires_hours": "1", "csrf_token": csrf_of(page)}
    )
    assert made.status_code == 201
    shown = made.text.split('id="install-command" readonly value="', 1)[1].split('"', 1)[0]
    words = shlex.split(shown)
    assert words[:5] == ["garrison-agent", "install", "--server", "http://testserver", "--key"]
    assert words[5] in made.text.split('id="new-key" readonly value="', 1)[1]
