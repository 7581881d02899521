"""Garrison's SIEM output, received by a real rsyslog over TCP and TLS and read back with
third-party parsers: an RFC 5424 parser for the envelope, cefp for CEF (it unescapes
correctly), IBM's rules for LEEF; the ESET JSON matches the seed's keys and types."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.certs import Certs, make_certs
from tests.conftest import Server
from tests.export import checks
from tests.export.rsyslog import Rsyslog, rsyslog_for
from tests.support import sqlite_only

# The formats do not depend on the database: SQLite is enough here.
pytestmark = sqlite_only

FORMATS = ("eset-json", "leef", "leef2", "cef")
TRANSPORTS = ("tcp", "tls")
NASTY = 'Evil|name=x\\y "quoted"\nnew line\ttab é中文'
EXPECTED_ESET = {
    "Threat_Event",
    "FirewallAggregated_Event",
    "HipsAggregated_Event",
    "Audit_Event",
    "FilteredWebsites_Event",
    "EnterpriseInspectorAlert_Event",
    "BlockedFiles_Event",
}


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Iterator[Rsyslog]:
    names = {f"{t}-{f}": t == "tls" for t in TRANSPORTS for f in FORMATS}
    rsyslog = rsyslog_for(tmp_path_factory.mktemp("rsyslog"), names, certs)
    rsyslog.start()
    yield rsyslog
    rsyslog.stop()


def station_events(nasty: str) -> list[dict[str, Any]]:
    now = int(time.time())
    return [
        {
            "type": "firewall_event",
            "data": {
                "time": now,
                "event": "blocked",
                "protocol": "TCP",
                "source_address": "10.0.0.5",
                "source_port": 4444,
                "target_address": "10.0.0.9",
                "target_port": 445,
                "inbound": True,
                "rule_name": nasty,
            },
        },
        {
            "type": "hips_event",
            "data": {
                "time": now,
                "application": "/usr/bin/evil",
                "operation": "write",
                "target": "/etc/shadow",
                "action": "blocked",
                "severity": "Error",
            },
        },
        {
            "type": "website_filtered",
            "data": {
                "time": now,
                "hostname": "ws-1",
                "object_uri": "http://bad.example/x",
                "resolved": False,
                "event": "blocked",
                "target_address": "203.0.113.5",
            },
        },
        {
            "type": "edr_alarm",
            "data": {
                "time": now,
                "rulename": "Suspicious shell",
                "processname": "bash",
                "count": 3,
                "hash": "a" * 40,
            },
        },
        {
            "type": "file_blocked",
            "data": {
                "time": now,
                "object_uri": "/tmp/dropper",
                "processname": "curl",
                "resolved": True,
                "hash": "b" * 40,
                "description": nasty,
            },
        },
        {
            "type": "process_started",
            "data": {
                "time": now,
                "unique_pid": "42",
                "file_path": "/usr/bin/nc",
                "pid": 42,
                "command_line": nasty,
                "user": "alice",
            },
        },
    ]


def produce_all_types(server: Server) -> None:
    agent = server.enrolled_agent()
    agent.alerts(
        [
            {
                "name": NASTY,
                "filepath": "/tmp/eicar.com",
                "action": "quarantine",
                "module_name": "clamav",
                "detection_time": int(time.time()),
            }
        ]
    )
    response = server.client.post(
        "/api/events", json=station_events(NASTY), headers=agent.headers()
    )
    assert response.json()["stored"] == 6, response.text
    assert server.admin.post("/groups", {"name": "audited"}).status_code == 201


def payloads(receiver: Rsyslog, name: str) -> list[str]:
    """Everything received, once the last event produced (the group's audit) is in."""
    lines = receiver.wait_lines(
        name, lambda lines: any("audited" in line for line in lines), timeout=30
    )
    return [checks.envelope(line, "garrison").msg for line in lines]


@pytest.fixture
def exported(server: Server, receiver: Rsyslog, certs: Certs) -> dict[str, list[str]]:
    for name, (port, tls) in receiver.inputs.items():
        transport, fmt = name.split("-", 1)
        # Garrison's own profile here (eset-json's default is the eset one, which
        # tests/export/parsers/ reads with the ESET parsers).
        options: dict[str, Any] = {
            "aggregation_window_seconds": 0,
            "heartbeat_seconds": 0,
            "profile": "garrison",
        }
        if tls:
            options["tls_ca"] = str(certs.ca)
        created = server.admin.post(
            "/export-targets",
            {
                "name": name,
                "format": fmt,
                "transport": transport,
                "host": "127.0.0.1",
                "port": port,
                "options": options,
            },
        )
        assert created.status_code == 201, created.text
    produce_all_types(server)
    return {name: payloads(receiver, name) for name in receiver.inputs}


def test_eset_json_has_the_seed_keys_and_types(exported: dict[str, list[str]]) -> None:
    for transport in TRANSPORTS:
        records = [checks.eset_json(p) for p in exported[f"{transport}-eset-json"]]
        types = {r["event_type"] for r in records}
        assert types >= EXPECTED_ESET, EXPECTED_ESET - types
        assert "process_started" in types  # no ESET equivalent: Garrison's own name
        threat = next(r for r in records if r["event_type"] == "Threat_Event")
        assert threat["threat_name"] == NASTY
        assert threat["object_uri"] == "file:///tmp/eicar.com"
        assert threat["threat_handled"] is True
        firewall = next(r for r in records if r["event_type"] == "FirewallAggregated_Event")
        assert firewall["target_port"] == 445
        assert firewall["inbound"] is True
        assert firewall["aggregate_count"] == 1


def test_cef_parses_with_escaping_undone(exported: dict[str, list[str]]) -> None:
    for transport in TRANSPORTS:
        parsed = [checks.cef(p) for p in exported[f"{transport}-cef"]]
        classes = {p["device"]["event_class_id"] for p in parsed}
        assert classes >= EXPECTED_ESET
        threat = next(p for p in parsed if p["device"]["event_class_id"] == "Threat_Event")
        # CEF carries newlines escaped as \n; the parser gives back the value exactly.
        assert threat["extension"]["cs1"] == NASTY
        assert threat["extension"]["cs1Label"] == "threatName"
        assert threat["extension"]["filePath"] == "file:///tmp/eicar.com"
        assert int(threat["severity"]) == 9
        firewall = next(
            p for p in parsed if p["device"]["event_class_id"] == "FirewallAggregated_Event"
        )
        assert firewall["extension"]["dpt"] == "445"
        assert firewall["extension"]["src"] == "10.0.0.5"


def test_leef_follows_ibm_rules(exported: dict[str, list[str]]) -> None:
    for transport in TRANSPORTS:
        for fmt in ("leef", "leef2"):
            parsed = [checks.leef(p) for p in exported[f"{transport}-{fmt}"]]
            events = {p["_event_id"] for p in parsed}
            assert events >= EXPECTED_ESET
            threat = next(p for p in parsed if p["_event_id"] == "Threat_Event")
            # The delimiter and line breaks cannot appear in a value: they become spaces.
            assert threat["threat_name"].startswith("Evil|name=x\\y")
            assert "\n" not in threat["threat_name"]
            assert threat["sev"] == "9"


def test_an_overlong_value_is_shortened_not_cut(server: Server, tmp_path: Path) -> None:
    rsyslog = rsyslog_for(tmp_path, {"long": False}, None)
    rsyslog.start()
    try:
        port = rsyslog.inputs["long"][0]
        assert (
            server.admin.post(
                "/export-targets",
                {
                    "name": "long",
                    "format": "eset-json",
                    "transport": "tcp",
                    "host": "127.0.0.1",
                    "port": port,
                    "options": {
                        "aggregation_window_seconds": 0,
                        "bom": True,
                        "envelope": "rfc5424",
                        "framing": "octet",
                        "max_message_bytes": 2048,
                    },
                },
            ).status_code
            == 201
        )
        agent = server.enrolled_agent()
        stored = agent.alerts(
            [
                {
                    "name": "Long",
                    "filepath": "/tmp/" + "X" * 4000,
                    "action": "none",
                    "module_name": "m",
                    "detection_time": int(time.time()),
                }
            ]
        )
        assert stored.json()["stored"] == 1, stored.text
        lines = rsyslog.wait_lines(
            "long", lambda ls: any("Threat_Event" in line for line in ls), timeout=30
        )
    finally:
        rsyslog.stop()
    assert any("Threat_Event" in line for line in lines), lines
    line = next(line for line in lines if "Threat_Event" in line)
    assert len(line.encode()) <= 2048
    payload = checks.envelope(line, "eset").msg.lstrip("\ufeff")
    record = checks.eset_json(payload, "eset")
    assert record["object_uri"].startswith("file:///tmp/XXXX")
    assert record["object_uri"].endswith("…")
    assert record["threat_name"] == "Long"
