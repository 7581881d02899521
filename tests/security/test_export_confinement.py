"""Export targets are confined: an administrator cannot use them to write the server user's
files or to reach this host's own services (docs/security.md, "Secrets and confinement").

The servers here run with the operator settings off (the default), except where a test
needs a sink on loopback and says so.
"""

from __future__ import annotations

import contextlib
import socket
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from bench.common import free_port
from garrison.server.export.actions import NOT_DELIVERED
from tests.conftest import Server, ServerFactory
from tests.export.test_transports import HttpSink
from tests.support import assert_json_error

QUIET = {"aggregation_window_seconds": 0, "heartbeat_seconds": 0}


def target(server: Server, transport: str, **fields: Any) -> Any:
    options = {**QUIET, **fields.pop("options", {})}
    body = {"name": f"t{free_port()}", "format": "eset-json", "transport": transport}
    return server.admin.post("/export-targets", {**body, "options": options, **fields})


def assert_refused(response: Any, field: str) -> None:
    body = assert_json_error(response, 422)
    assert body.get("field") == field, body


def export_dir(server: Server) -> Path:
    return server.settings.data_dir / "export"


# Files ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",
        "../garrison.db",
        "siem/../../admin.token",
        "a\x00b",
        "",
    ],
    ids=["absolute-outside", "dotdot", "dotdot-inside", "nul", "empty"],
)
def test_file_target_outside_the_export_directory_is_refused(server: Server, path: str) -> None:
    refused = target(server, "file", path=path)
    assert_refused(refused, "path")


def test_file_target_absolute_path_outside_is_refused(server: Server, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    refused = target(server, "file", path=str(victim))
    assert_refused(refused, "path")
    assert not victim.exists()
    created = target(server, "file", path="ok.ndjson")
    assert created.status_code == 201, created.text
    moved = server.admin.patch(f"/export-targets/{created.json()['id']}", {"path": str(victim)})
    assert_refused(moved, "path")


def test_file_target_writes_below_the_export_directory_with_mode_0600(server: Server) -> None:
    created = target(server, "file", path="siem/events.ndjson")
    assert created.status_code == 201, created.text
    sent = server.admin.post(f"/export-targets/{created.json()['id']}/test")
    assert sent.status_code == 200, sent.text
    written = export_dir(server) / "siem" / "events.ndjson"
    assert "Garrison-Test-Event" in written.read_text()
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert stat.S_IMODE(written.parent.stat().st_mode) == 0o700


def test_a_symbolic_link_out_of_the_export_directory_is_refused(
    server: Server, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_text("keep me\n")
    export_dir(server).mkdir(parents=True, exist_ok=True)
    (export_dir(server) / "linkdir").symlink_to(outside)
    (export_dir(server) / "linkfile.ndjson").symlink_to(victim)

    for path in ("linkdir/victim.txt", "linkfile.ndjson"):
        assert_refused(target(server, "file", path=path), "path")

    # A directory swapped for a link after the target was made: refused when it writes.
    created = target(server, "file", path="later/victim.txt")
    assert created.status_code == 201, created.text
    (export_dir(server) / "later").symlink_to(outside)
    failed = server.admin.post(f"/export-targets/{created.json()['id']}/test")
    assert failed.status_code == 502, failed.text
    # And a file swapped for a link: O_NOFOLLOW.
    created = target(server, "file", path="swapped.ndjson")
    assert created.status_code == 201, created.text
    (export_dir(server) / "swapped.ndjson").symlink_to(victim)
    failed = server.admin.post(f"/export-targets/{created.json()['id']}/test")
    assert failed.status_code == 502, failed.text
    assert victim.read_text() == "keep me\n"


def test_operator_directories_allow_more_but_never_the_data_dir(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    # tmp_path holds the data dir (tmp_path/data): allowed as a whole, yet the data dir's own
    # files are not.
    server = server_factory(export_file_dirs=str(tmp_path))
    assert target(server, "file", path=str(tmp_path / "siem.ndjson")).status_code == 201
    for inside in ("secrets.key", "admin.token", "x/y.ndjson"):
        refused = target(server, "file", path=str(server.settings.data_dir / inside))
        assert_refused(refused, "path")


def test_tls_file_errors_do_not_tell_a_missing_file_from_an_existing_one(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory(export_allow_local=True)
    not_a_cert = tmp_path / "exists.pem"
    not_a_cert.write_text("not a certificate\n")
    answers = []
    for ca in ("/nonexistent/ca.pem", str(not_a_cert), "/etc/hostname", str(tmp_path)):
        created = target(server, "tls", host="127.0.0.1", port=free_port(), options={"tls_ca": ca})
        assert created.status_code == 201, created.text
        failed = server.admin.post(f"/export-targets/{created.json()['id']}/test")
        answers.append(assert_json_error(failed, 502, "export_test_failed")["error"])
    assert set(answers) == {NOT_DELIVERED}, answers


# Addresses ------------------------------------------------------------------------------


def own_address() -> str | None:
    """This host's address on its default route, if it has one (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))
        except OSError:
            return None
        address: str = sock.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


LOCAL = ["127.0.0.1", "127.1.2.3", "localhost", "::1", "0.0.0.0", "169.254.169.254", "fe80::1"]


@pytest.mark.parametrize("host", LOCAL)
def test_syslog_target_to_a_local_address_is_refused(server: Server, host: str) -> None:
    for transport in ("tcp", "udp"):
        refused = target(server, transport, host=host, port=514)
        assert_refused(refused, "host")


def test_target_to_this_hosts_own_address_is_refused(server: Server) -> None:
    address = own_address()
    if address is None:
        pytest.skip("this host has no address but loopback")
    refused = target(server, "tcp", host=address, port=514)
    assert_refused(refused, "host")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/admin/v1/users",
        "http://localhost/admin/v1/users",
        "http://[::1]:8080/",
        "http://169.254.169.254/latest/meta-data/",
    ],
)
def test_webhook_to_a_local_address_is_refused(server: Server, url: str) -> None:
    assert_refused(target(server, "http", url=url), "url")


@pytest.mark.parametrize(
    "header",
    ["Host", "host", "Connection", "Transfer-Encoding", "Content-Length", "Upgrade", "TE"],
)
def test_webhook_host_and_hop_by_hop_headers_are_refused(server: Server, header: str) -> None:
    refused = target(
        server,
        "http",
        url="http://192.0.2.10/in",
        options={"http_headers": {header: "127.0.0.1:8080"}},
    )
    assert_refused(refused, f"options.http_headers.{header}")


def test_a_name_that_resolves_elsewhere_at_send_time_is_refused(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name passed the check at creation, then resolves to loopback; the
    send resolves again, refuses, and connects to nothing."""
    sink = HttpSink()
    answer = {"address": "192.0.2.10"}  # TEST-NET-1: not local
    real = socket.getaddrinfo

    def resolver(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "siem.rebind.test":
            return real(answer["address"], port, *args, **kwargs)
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    try:
        created = target(server, "http", url=f"http://siem.rebind.test:{sink.port}/in")
        assert created.status_code == 201, created.text
        answer["address"] = "127.0.0.1"
        failed = server.admin.post(f"/export-targets/{created.json()['id']}/test")
        error = assert_json_error(failed, 502, "export_test_failed")
        assert "loopback" in error["error"]
    finally:
        sink.close()
    assert sink.requests == []


def test_the_operator_setting_allows_loopback(server_factory: ServerFactory) -> None:
    server = server_factory(export_allow_networks="127.0.0.0/8")
    assert target(server, "tcp", host="127.0.0.1", port=514).status_code == 201
    assert_refused(target(server, "tcp", host="::1", port=514), "host")


def accept_and_close(listener: socket.socket) -> None:
    with contextlib.suppress(OSError):
        conn, _ = listener.accept()
        conn.close()


def test_test_send_does_not_tell_port_states_apart(server_factory: ServerFactory) -> None:
    """A closed port, an open port that is no SIEM and a webhook answering 500 all answer the
    same: the test send is no port scanner."""
    server = server_factory(export_allow_local=True)
    listener = socket.create_server(("127.0.0.1", 0))
    sink = HttpSink(answers=[500])
    try:
        answers = []
        cases: list[dict[str, Any]] = [
            {"transport": "tcp", "host": "127.0.0.1", "port": free_port()},  # closed
            {"transport": "relp", "host": "127.0.0.1", "port": listener.getsockname()[1]},
            {"transport": "http", "url": f"http://127.0.0.1:{free_port()}/in"},  # closed
            {"transport": "http", "url": f"http://127.0.0.1:{sink.port}/in"},  # 500
        ]
        listener.settimeout(5)
        for fields in cases:
            created = target(server, fields.pop("transport"), **fields)
            assert created.status_code == 201, created.text
            if created.json()["transport"] == "relp":
                # Accept, then close at once: a port that is open but speaks no RELP.
                threading.Thread(target=accept_and_close, args=(listener,), daemon=True).start()
            failed = server.admin.post(f"/export-targets/{created.json()['id']}/test")
            answers.append(assert_json_error(failed, 502, "export_test_failed")["error"])
    finally:
        listener.close()
        sink.close()
    assert answers == [NOT_DELIVERED] * len(cases), answers
