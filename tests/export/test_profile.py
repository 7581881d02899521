"""The ``eset`` and ``garrison`` profiles, record by record: the hostname a type's own empty
key used to hide, ESET's keys and audit vocabulary, its envelope and heartbeat, Garrison's
own types, and the options' checks through the admin API."""

from __future__ import annotations

import datetime as dt
import os
import re
from typing import Any

import pytest

from garrison.server.export import syslog
from garrison.server.export.config import TargetOptions
from garrison.server.export.encoding import encoder, heartbeat, record_for, sends
from garrison.server.export.eset import ServerIdentity
from garrison.server.export.mapping import StationInfo, build
from garrison.server.export.target import Target
from tests.conftest import Server
from tests.support import sqlite_only

NOW = dt.datetime(2022, 1, 18, 14, 46, tzinfo=dt.UTC)
STATION = StationInfo("uuid-1", "ws-9", "10.0.0.7", "Debian 12", "Finance", "Money people")
SERVER = ServerIdentity("era-host", "192.0.2.10", "6f1c8f0e-0000-5000-8000-000000000001")


def target(fmt: str = "eset-json", transport: str = "tcp", **options: Any) -> Target:
    return Target(
        1, "t", fmt, transport, "h", 514, "", "", TargetOptions.model_validate(options), NOW
    )


@pytest.mark.parametrize(
    ("event_type", "data"),
    [
        ("website_filtered", {"time": 1, "object_uri": "http://x.example/"}),
        ("file_blocked", {"time": 1, "object_uri": "/tmp/x"}),
        ("process_start_blocked", {"file_name": "nc", "file_path": "/usr/bin/nc"}),
    ],
)
@pytest.mark.parametrize("profile", ["garrison", "eset"])
def test_a_types_empty_hostname_keeps_the_stations(
    event_type: str, data: dict[str, Any], profile: str
) -> None:
    # Regression: {**common, **own} with the type's own hostname None dropped the station's.
    record = build(event_type, 3, NOW, data, STATION, profile=profile, server=SERVER)
    assert record.fields["hostname"] == "ws-9"


def test_eset_keys_on_every_type_and_per_type() -> None:
    firewall = build(
        "firewall_event", 3, NOW, {"time": 1, "event": "blocked"}, STATION, "eset", server=SERVER
    ).fields
    assert list(firewall)[:10] == [
        "event_type", "ipv4", "hostname", "group_name", "os_name", "group_description",
        "source_uuid", "occured", "severity", "event",
    ]  # fmt: skip
    assert (firewall["group_name"], firewall["group_description"], firewall["os_name"]) == (
        "All/Finance",
        "Money people",
        "Debian 12",
    )
    assert (firewall["action"], firewall["handled"]) == ("Blocked", True)
    allowed = build("firewall_event", 3, NOW, {"time": 1, "event": "allowed"}, STATION, "eset")
    assert (allowed.fields["action"], allowed.fields["handled"]) == ("Allowed", False)
    hips = build("hips_event", 4, NOW, {"time": 1, "action": "blocked"}, STATION, "eset").fields
    assert hips["event_type"] == "HipsAggregated_Event"
    assert hips["handled"] is True
    alarm = build(
        "edr_alarm", 3, NOW, {"time": 1, "rulename": "r", "hash": "ab" * 20}, STATION, "eset"
    )
    assert alarm.fields["hash"] == "AB" * 20
    assert alarm.fields["severity_score"] == alarm.fields["computer_severity_score"] == "70"
    inspect = build("edr_alarm", 4, NOW, {"time": 1, "rulename": "r"}, STATION, "eset",
                    inspect_name="ESET Inspect Alert")  # fmt: skip
    assert inspect.event_type == inspect.fields["event_type"] == "ESET Inspect Alert"
    threat = build("threat_detected", 5, NOW, {"virus": "V", "sha1": "cd" * 20}, STATION, "eset")
    assert threat.fields["object_type"] == "File"
    assert threat.fields["hash"] == "CD" * 20
    # Garrison's profile keeps Garrison's spellings.
    plain = build("threat_detected", 5, NOW, {"virus": "V", "sha1": "cd" * 20}, STATION)
    assert (plain.fields["object_type"], plain.fields["hash"]) == ("file", "cd" * 20)
    assert "group_name" not in plain.fields


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"action": "group.create", "target": "audited", "user": "admin",
             "detail": '{"x": 1}', "result": "Success"},
            ("Static group", "Create", "audited", "Creating static group 'audited'.", "admin"),
        ),
        (
            {"action": "auth.login_failed", "target": "", "user": "mallory", "result": "Failed"},
            ("Native user", "Login attempt", "mallory", "Authenticating native user 'mallory'.",
             ""),
        ),
        (
            {"action": "user.delete", "target": "bob", "user": "admin", "result": "Success"},
            ("Native user", "Delete", "bob", "Deleting native user 'bob'.", "admin"),
        ),
    ],
)  # fmt: skip
def test_audit_in_esets_vocabulary_with_the_servers_identity(
    data: dict[str, Any], expected: tuple[str, ...]
) -> None:
    record = build("audit", 2, NOW, {"time": 1, **data}, StationInfo(), "eset", server=SERVER)
    f = record.fields
    assert (f["domain"], f["action"], f["target"], f["detail"], f["user"]) == expected
    assert f["severity"] == record.severity == "Information"
    assert (f["hostname"], f["ipv4"], f["source_uuid"]) == (
        SERVER.hostname,
        SERVER.ipv4,
        SERVER.uuid,
    )
    assert f["result"] == data["result"]


def _line(message: bytes) -> str:
    return message.decode("utf-8").rstrip("\n")


def test_esets_envelopes_and_bom_option() -> None:
    pid = os.getpid()
    record = build("threat_detected", 4, NOW, {"virus": "V"}, STATION, "eset", server=SERVER)
    bsd = _line(encoder(target(envelope="rfc3164"))(record))
    assert re.match(
        rf"^<10>Jan 18 14:46:00 {re.escape(syslog.HOSTNAME)} ERAServer\[{pid}\]: \{{\"", bsd
    ), bsd
    new = _line(encoder(target(envelope="rfc5424"))(record))
    assert new.startswith(
        f"<10>1 2022-01-18T14:46:00.000Z {syslog.HOSTNAME} ERAServer {pid} - - {{"
    ), new
    with_bom = _line(encoder(target(envelope="rfc5424", bom=True))(record))
    assert with_bom.startswith(
        f"<10>1 2022-01-18T14:46:00.000Z {syslog.HOSTNAME} ERAServer {pid} - - \ufeff{{"
    )
    # The garrison profile keeps Garrison's: its app name and the type as MSGID.
    plain = build("threat_detected", 4, NOW, {"virus": "V"}, STATION)
    own = _line(encoder(target(profile="garrison"))(plain))
    assert f" {syslog.HOSTNAME} garrison - Threat_Event - {{" in own


@pytest.mark.parametrize("kind", ["rfc3164", "rfc5424"])
def test_esets_heartbeat_is_plain_text_at_local7_info(kind: str) -> None:
    line = _line(heartbeat(target(envelope=kind)))
    assert line.startswith("<190>"), line
    assert line.endswith(
        (f"ERAServer[{os.getpid()}]: HEARTBEAT", f"ERAServer {os.getpid()} - - HEARTBEAT")
    )
    garrison = _line(heartbeat(target(profile="garrison")))
    assert garrison.startswith("<14>1 ")
    assert '"event_type":"HEARTBEAT"' in garrison


def test_garrison_types_in_the_eset_profile_only_when_asked() -> None:
    data = {"pid": 1, "file_path": "/bin/sh"}
    eset_target = target()
    record = record_for(eset_target, "process_started", 1, NOW, data, STATION)
    assert record.own
    assert not sends(eset_target, record)
    asking = target(garrison_events=True)
    assert sends(asking, record)
    line = _line(encoder(asking)(record))
    assert " garrison - process_started - " in line
    assert '"garrison_event_type":"process_started"' in line
    assert '"event_type"' not in line
    plain = target(profile="garrison")
    assert sends(plain, record_for(plain, "process_started", 1, NOW, data, STATION))


def _post(server: Server, fmt: str, **options: Any) -> Any:
    return server.admin.post(
        "/export-targets",
        {
            "name": f"p-{fmt}-{len(options)}-{sorted(options)}",
            "format": fmt,
            "transport": "file",
            "path": "eset.ndjson",
            "options": {"heartbeat_seconds": 0, **options},
        },
    )


@sqlite_only
def test_profile_options_are_checked_and_round_trip(server: Server) -> None:
    refusals: list[tuple[str, dict[str, Any], str]] = [
        ("eset-json", {"profile": "esset"}, "options.profile"),
        ("leef2", {"profile": "eset"}, "options.profile"),
        ("cef", {"profile": "eset", "inspect_alert_name": "Inspect"}, "options.inspect_alert_name"),
        ("leef", {"inspect_alert_name": "ESET Inspect Alert"}, "options.profile"),
        ("cef", {"garrison_events": True}, "options.profile"),
        ("eset-json", {"garrison_events": "maybe"}, "options.garrison_events"),
    ]
    for fmt, options, field in refusals:
        refused = _post(server, fmt, **options)
        assert refused.status_code == 422, (fmt, options, refused.text)
        body = refused.json()
        assert set(body) >= {"error", "message", "code"}, body
        assert field in body["message"], body
    created = _post(
        server, "cef", profile="eset", inspect_alert_name="ESET Inspect Alert", bom=True
    )
    assert created.status_code == 201, created.text
    shown = server.admin.get(f"/export-targets/{created.json()['id']}").json()["options"]
    assert (shown["profile"], shown["inspect_alert_name"], shown["bom"]) == (
        "eset",
        "ESET Inspect Alert",
        True,
    )
    # Sent back as shown, the target is unchanged; a format the profile does not fit is not.
    target_id = created.json()["id"]
    same = server.admin.patch(f"/export-targets/{target_id}", {"options": shown})
    assert same.status_code == 200, same.text
    assert same.json()["options"] == shown
    leef2 = server.admin.patch(f"/export-targets/{target_id}", {"format": "leef2"})
    assert leef2.status_code == 422, leef2.text
    default = _post(server, "eset-json")
    assert default.json()["options"]["profile"] == "eset"
    assert _post(server, "leef").json()["options"]["profile"] == "garrison"


def test_esets_leef_and_cef_lines() -> None:
    station = StationInfo("uuid-6", "ws-6", "2001:db8::5")
    data = {"virus": "Eicar", "sha1": "ef" * 20, "object": "/tmp/e", "user": "alice"}
    record = build("threat_detected", 4, NOW, data, station, "eset", server=SERVER)
    leef = encoder(target("leef", "file"))(record).decode()
    head, attrs = leef.split("|cat=", 1)
    assert head == "LEEF:1.0|ESET|RemoteAdministrator|" + leef.split("|")[3] + "|Threat Event"
    pairs = dict(p.split("=", 1) for p in ("cat=" + attrs).split("\t"))
    assert pairs["cat"] == "ESET Threat Event"
    assert pairs["sev"] == "8"
    assert pairs["devTime"] == "Jan 18 2022 14:46:00 GMT"
    assert pairs["devTimeFormat"] == "MMM dd yyyy HH:mm:ss z"
    assert (pairs["threatName"], pairs["objectType"], pairs["accountName"]) == (
        "Eicar",
        "File",
        "alice",
    )
    assert pairs["hash"] == "EF" * 20
    cef = encoder(target("cef", "file"))(record).decode()
    assert cef.startswith("CEF:0|ESET|Protect|")
    assert cef.split("|")[4:7] == ["100", "Eicar", "8"]
    extension = cef.split("|", 7)[7]
    assert extension.startswith("cat=ESET Threat Event ")
    assert "c6a1=2001:db8::5 c6a1Label=Device IPv6 Address" in extension
    assert "dvc=" not in extension
    assert "rt=Jan 18 2022 14:46:00" in extension
