"""``garrison export`` against a real server: the CLI runs as a subprocess and talks HTTP to
``garrison serve`` on a free port.  A file target is the destination: what the server writes
into it is read back here.  One server for the module (each test uses its own target names,
so the order of tests does not matter)."""

from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from bench.common import free_port
from tests.cli.helpers import Cli, assert_one_line_error, enroll
from tests.support import wait_for

QUIET = ["--option", "heartbeat_seconds=0", "--option", "aggregation_window_seconds=0"]


def records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def test_file_target_create_test_list_set_delete(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "siem" / "events.ndjson"
    created = cli.json(
        "export", "create", "cli-file", "--format", "eset-json", "--transport", "file",
        "--path", str(out), *QUIET, "--option", "file_keep=3",
        "--option", 'event_types=["threat_detected", "component_started"]',
    )  # fmt: skip
    target_id = created["id"]
    assert (created["name"], created["format"], created["transport"]) == (
        "cli-file",
        "eset-json",
        "file",
    )
    assert created["path"] == str(out)
    assert created["enabled"] is True
    # Option values that read as JSON are sent as numbers and lists, not strings.
    assert created["options"]["file_keep"] == 3
    assert created["options"]["heartbeat_seconds"] == 0
    assert created["options"]["event_types"] == ["threat_detected", "component_started"]

    # test: one line written into the file, and shown.
    sent = cli("export", "test", target_id)
    assert sent.returncode == 0, sent.stderr
    first, message = sent.stdout.splitlines()
    assert first == f"export target {target_id}: test event sent"
    [record] = records(out)
    assert record == json.loads(message)
    assert record["event_type"] == "Threat_Event"
    assert record["threat_name"] == "Garrison-Test-Event"

    # The target also receives the stations' events through its own cursor.
    agent, _ = enroll(cli)
    try:
        alert = {
            "name": "Eicar-CLI",
            "filepath": "/tmp/eicar.com",
            "action": "quarantine",
            "module_name": "clamav",
            "detection_time": int(time.time()),
        }
        assert agent.alerts([alert]).status_code == 200
    finally:
        agent.client.close()
    got = wait_for(
        partial(records, out),
        lambda rs: any(r.get("threat_name") == "Eicar-CLI" for r in rs),
        timeout=15,
        what="the threat in the exported file",
    )
    assert [r["threat_name"] for r in got if r["event_type"] == "Threat_Event"] == [
        "Garrison-Test-Event",
        "Eicar-CLI",
    ]

    listed = cli("export", "list")
    assert listed.returncode == 0, listed.stderr
    assert "cli-file" in listed.stdout
    assert "eset-json" in listed.stdout
    assert str(out) in listed.stdout
    assert target_id in [t["id"] for t in cli.json("export", "list")]

    shown = cli("export", "show", target_id)
    assert shown.returncode == 0, shown.stderr
    assert "file_keep" in shown.stdout
    assert "threat_detected" in shown.stdout

    changed = cli.json(
        "export", "set", target_id, "--option", "min_severity=Warning",
        "--option", "file_max_bytes=4096",
    )  # fmt: skip
    assert changed["options"]["min_severity"] == "Warning"
    assert changed["options"]["file_max_bytes"] == 4096
    assert changed["options"]["file_keep"] == 3  # merged, not replaced
    assert cli.json("export", "set", target_id, "--disable")["enabled"] is False
    table = cli("export", "set", target_id, "--enable")
    assert table.returncode == 0, table.stderr
    assert "min_severity" in table.stdout
    assert cli.json("export", "show", target_id)["enabled"] is True

    refused = assert_one_line_error(cli("export", "delete", target_id), 2)
    assert "--yes" in refused
    deleted = cli("export", "delete", target_id, "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout == f"export target {target_id} deleted\n"
    gone = assert_one_line_error(cli("export", "show", target_id), 1)
    assert str(target_id) in gone
    assert target_id not in [t["id"] for t in cli.json("export", "list")]


def test_syslog_target_created_disabled_from_the_beginning(cli: Cli) -> None:
    port = free_port()
    created = cli.json(
        "export", "create", "cli-tcp", "--format", "leef2", "--transport", "tcp",
        "--host", "127.0.0.1", "--port", port, "--option", "leef_delimiter=^",
        "--option", "envelope=rfc3164", "--start-at", "beginning", "--disabled",
    )  # fmt: skip
    assert created["enabled"] is False
    assert (created["host"], created["port"]) == ("127.0.0.1", port)
    assert created["options"]["leef_delimiter"] == "^"
    assert created["options"]["envelope"] == "rfc3164"
    assert created["position"] == 0  # from the beginning of the event log
    listed = cli("export", "list")
    assert f"127.0.0.1:{port}" in listed.stdout

    # Nobody listens on the port: the test send fails, in one line, without telling a
    # closed port from others (tests/security/test_export_confinement.py).
    failed = assert_one_line_error(cli("export", "test", created["id"]), 1)
    assert "not delivered" in failed
    assert "refused" not in failed.lower()
    cli.json("export", "delete", created["id"], "--yes")


def test_api_errors_exit_1_in_one_line(cli: Cli, tmp_path: Path) -> None:
    path = str(tmp_path / "x.ndjson")
    unknown = cli("export", "create", "bad-format", "--format", "json", "--transport", "file",
                  "--path", path)  # fmt: skip
    assert "format" in assert_one_line_error(unknown, 1)
    no_host = cli("export", "create", "no-host", "--format", "cef", "--transport", "tcp")
    assert "host" in assert_one_line_error(no_host, 1)
    bad_key = cli("export", "create", "bad-key", "--format", "cef", "--transport", "file",
                  "--path", path, "--option", "colour=blue")  # fmt: skip
    assert "colour" in assert_one_line_error(bad_key, 1)
    assert "999999" in assert_one_line_error(cli("export", "test", 999999), 1)
    assert "999999" in assert_one_line_error(cli("export", "set", 999999, "--enable"), 1)
    assert "999999" in assert_one_line_error(cli("export", "delete", 999999, "--yes"), 1)
    assert all(t["name"] not in ("bad-format", "no-host", "bad-key") for t in
               cli.json("export", "list"))  # fmt: skip


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["export", "create", "x", "--format", "cef", "--transport", "file",
             "--path", "/tmp/x", "--option", "no-equals-sign"],
            "key=value",
        ),
        (
            ["export", "create", "x", "--format", "cef", "--transport", "file",
             "--path", "/tmp/x", "--option", "=1"],
            "key=value",
        ),
        (
            ["export", "create", "x", "--format", "cef", "--transport", "tcp",
             "--host", "h", "--port", "514", "--path", "/tmp/x"],
            "one destination",
        ),
        (["export", "set", "1"], "nothing to change"),
        (["export", "set", "1", "--option", "bom"], "key=value"),
    ],
)  # fmt: skip
def test_usage_errors_exit_2(cli: Cli, args: list[str], expected: str) -> None:
    assert expected in assert_one_line_error(cli(*args), 2)


def test_profile_options_round_trip_and_bad_ones_in_one_line(cli: Cli, tmp_path: Path) -> None:
    path = str(tmp_path / "eset.ndjson")
    created = cli.json(
        "export", "create", "cli-eset", "--format", "cef", "--transport", "file", "--path", path,
        *QUIET, "--option", "profile=eset", "--option", "inspect_alert_name=ESET Inspect Alert",
        "--option", "bom=true",
    )  # fmt: skip
    options = created["options"]
    assert (options["profile"], options["inspect_alert_name"], options["bom"]) == (
        "eset",
        "ESET Inspect Alert",
        True,
    )
    assert cli.json("export", "show", created["id"])["options"]["profile"] == "eset"
    # Each format's default profile is shown as the one in use.
    plain = cli.json("export", "create", "cli-plain", "--format", "leef", "--transport", "file",
                     "--path", path, *QUIET)  # fmt: skip
    assert plain["options"]["profile"] == "garrison"

    bad = cli("export", "set", created["id"], "--option", "profile=esset")
    assert "options.profile" in assert_one_line_error(bad, 1)
    to_leef2 = cli("export", "set", created["id"], "--format", "leef2")
    assert "eset profile" in assert_one_line_error(to_leef2, 1)
    back = cli.json("export", "set", created["id"], "--option", "profile=garrison",
                    "--option", "inspect_alert_name=EnterpriseInspectorAlert_Event")  # fmt: skip
    assert back["options"]["profile"] == "garrison"
    for target in (created, plain):
        cli.json("export", "delete", target["id"], "--yes")
