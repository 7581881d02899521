"""The event catalogue against its seeds, and ``validate`` on every declared type.

Each type gets a valid sample built from its own declaration (one value per field type,
every family with two indexed items), which must be accepted and normalised, and invalid
variants (each required field missing, each field with a wrong value, an unknown field),
which must be refused with an ``EventInvalidError`` naming the culprit.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from garrison.common.catalogue import (
    ALL,
    CATALOGUE,
    PROCEDURES,
    EventInvalidError,
    parse_timestamp,
    validate,
)
from garrison.common.catalogue_types import EventType, Field

# A public contract outside checks rely on: one procedure per Dr.Web event, by these names.
CONTRACT_PROCEDURES = {
    "agent_deinstalled",
    "component_completed",
    "task_executed",
    "component_started",
    "station_geolocation_changed",
    "station_reboot_required",
    "threat_detected",
    "preventive_protection_report",
    "station_authorization_failed",
    "station_datetime_error",
    "station_update_failed",
    "station_scan_error",
    "components_list_received",
    "virus_bases_received",
    "station_status",
    "station_authorization_in_progress",
    "station_connected",
    "station_created",
    "station_deleted",
    "station_scan_statistics",
    "agent_installation",
    "device_blocked",
}

STATION = {"id", "address", "station"}
REVISION = {
    "product",
    "description",
    "from_revision",
    "to_revision",
    "from_revision_date",
    "to_revision_date",
}
# The seed's arguments of each procedure: its parameter table and its ``local args = ...``
# comment together (where they spell one argument two ways, both are listed).
# Fields Garrison adds to a Dr.Web event, each documented as such ("Garrison: ...").
GARRISON_EXTENSIONS: dict[str, set[str]] = {
    "station_authorization_failed": {"suppressed"},
    "station_scan_error": {"error", "error_kind"},
}
DRWEB_ARGS: dict[str, set[str]] = {
    "agent_deinstalled": {"login", "state", "message"} | STATION,
    "component_completed": STATION | {"component", "pid", "infections", "errors", "exitcode"},
    "task_executed": STATION | {"done", "time", "name", "job", "error"},
    "component_started": STATION | {"component", "pid", "engine", "records", "user", "time"},
    "station_geolocation_changed": STATION | {"name", "latitude", "longitude"},
    "station_reboot_required": STATION | REVISION,
    "threat_detected": STATION
    | {
        "component",
        "pid",
        "time",
        "user",
        "object",
        "owner",
        "virus",
        "action",
        "objecttype",
        "infectiontype",
        "compsid",
        "compmac",
        "description",
        "compdn",
        "sha1",
        "sha256",
        "hashdb",
    },
    "preventive_protection_report": STATION
    | {
        "time",
        "pid",
        "path",
        "target_path",
        "hips_type",
        "shell_guard_type",
        "denied",
        "is_user_action",
        "event_count",
        "event_user",
        "action_user",
        "sha1",
        "sha256",
        "hashdb",
    },
    "station_authorization_failed": STATION
    | {"reason", "type", "compsid", "compmac", "description"},
    "station_datetime_error": STATION | {"now", "time", "date", "valid_delta"},
    "station_update_failed": STATION | REVISION,
    "station_scan_error": STATION
    | {
        "component",
        "pid",
        "time",
        "user",
        "object",
        "owner",
        "action",
        "compsid",
        "compmac",
        "description",
        "ldapdn",
        "sha1",
        "sha256",
        "hashdb",
    },
    "components_list_received": STATION,
    "virus_bases_received": STATION,
    "station_status": {"events", "jobs", "updates"},
    "station_authorization_in_progress": {
        "id",
        "connected",
        "current_address",
        "current_name",
        "last_address",
        "last_time",
        "last_server",
        "new_name",
        "new_address",
    },
    "station_connected": STATION | {"name", "os", "platform", "compsid", "compmac", "description"},
    "station_created": {"login", "id", "name", "state"},
    "station_deleted": {"login", "id"},
    "station_scan_statistics": STATION
    | {
        "component",
        "pid",
        "user",
        "time",
        "size",
        "elapsedtime",
        "scanned",
        "infected",
        "modifications",
        "suspicious",
        "cured",
        "deleted",
        "renamed",
        "moved",
        "locked",
        "errors",
    },
    "agent_installation": STATION | {"event", "message", "sessionid"},
    "device_blocked": STATION
    | {
        "name",
        "user",
        "instance_id",
        "friendly_name",
        "description",
        "guid",
        "class",
        "blocktime",
        "blockrcvtime",
        "station_time",
        "recv_time",
    },
}
DRWEB_FAMILIES = {
    "components_list_received": {"component", "time", "from", "path"},
    "virus_bases_received": {"name", "md5", "sha256", "version", "issued", "records", "type"},
}

LIMACHARLIE = {
    "CONNECTED",
    "DISCONNECTED",
    "STARTING_UP",
    "SHUTTING_DOWN",
    "RECEIPT",
    "CLOUD_NOTIFICATION",
    "SEGREGATE_NETWORK",
    "SELF_TEST",
}
KASPERSKY = {
    "file_created",
    "registry_changed",
    "driver_loaded",
    "port_listening",
    "os_log_event",
    "process_started",
    "process_stopped",
    "module_loaded",
    "process_start_blocked",
    "file_open_blocked",
    "detection",
    "amsi_scan",
}
COMMON = {"time": "timestamp", "user": "string", "host": "string", "ip": "ip", "os": "string"}
OS_LOG_HEADER = [
    "ProviderName",
    "EventId",
    "Version",
    "Level",
    "Task",
    "Opcode",
    "Keywords",
    "TimeCreatedSystemTime",
    "EventRecordId",
    "CorellationActivityId",
    "ExecutionProcessID",
    "ThreadID",
    "Channel",
    "Computer",
]
OS_LOG_BODY = [
    "AccessList",
    "AccessFiles mask",
    "AccountExpires",
    "AllowedToDelegateTo",
    "Application",
    "AuditPolicyChanges",
    "AuthenticationPackageName",
    "CategoryId",
    "CommandLine",
    "DisplayName",
    "Dummy",
    "ElevatedToken",
    "EventCode",
    "EventProcessingFailure",
    "FailureReason",
    "FilterRTID",
    "HandleId",
    "HomeDirectory",
    "HomePath",
    "ImpersonationLevel",
    "IpAddress",
    "IpPort",
    "KeyLength",
    "LayerName",
    "LayerRTID",
    "LmPackageName",
    "LogonGuid",
    "LogonHours",
    "LogonProcessName",
    "LogonType",
    "MandatoryLabel",
    "MemberName",
    "MemberSid",
    "NewProcessId",
    "NewProcessName",
    "NewUacValue",
    "NewValue",
    "NewValueType",
    "ObjectName",
    "ObjectServer",
    "ObjectType",
    "ObjectValueName",
    "OldUacValue",
    "OldValue",
    "OldValueType",
    "OperationType",
    "PackageName",
    "ParentProcessName",
    "PasswordLastSet",
    "PrimaryGroupId",
    "PriviledgeList",
    "ProcessId",
    "ProcessName",
    "ProfileChanged",
    "ProfilePath",
    "Protocol",
    "PublisherId",
    "ResourceAttributes",
    "RestrictedAdminMode",
    "SamAccountName",
    "ScriptPath",
    "ServiceAccount",
    "ServiceFileName",
    "ServiceName",
    "ServiceStartType",
    "ServiceType",
    "SettingType",
    "SettingValue",
    "ShareLocalPath",
    "ShareName",
    "SidHistory",
    "SourceAddress",
    "SourcePort",
    "Status",
    "SubcategoryGuid",
    "SubcategoryId",
    "SubjectDomainName",
    "SubjectLogonId",
    "SubjectUserName",
    "SubjectUserSid",
    "SubStatus",
    "TargetDomainName",
    "TargetLinkedLogonId",
    "TargetLogonId",
    "TargetOutboundDomainName",
    "TargetOutboundUserName",
    "TargetUserName",
    "TargetUserSid",
    "TaskContent",
    "TaskName",
    "TokenElevationType",
    "TransmittedServices",
    "UserAccountControl",
    "UserParameters",
    "UserPrincipalName",
    "UserWorkstations",
    "VirtualAccount",
    "Workstation",
    "WorkstationName",
]
ESET_TYPES = {
    "Threat_Event",
    "FirewallAggregated_Event",
    "HipsAggregated_Event",
    "Audit_Event",
    "EnterpriseInspectorAlert_Event",
    "BlockedFiles_Event",
    "FilteredWebsites_Event",
}

MD5 = "0123456789ABCDEF0123456789ABCDEF"
SHA1 = "0123456789ABCDEF0123456789ABCDEF01234567"
SHA256 = "0123456789ABCDEF" * 4
EPOCH = 1700000000
EPOCH_ISO = "2023-11-14T22:13:20Z"
# One valid value per field type, and what validate() makes of it.
VALID: dict[str, tuple[Any, Any]] = {
    "string": ("text", "text"),
    "integer": (7, 7),
    "number": (1.5, 1.5),
    "boolean": (1, True),
    "timestamp": (EPOCH, EPOCH_ISO),
    "ip": ("10.1.2.3", "10.1.2.3"),
    "mac": ("42-01-0a-80-00-02", "42-01-0A-80-00-02"),
    "md5": (MD5, MD5.lower()),
    "sha1": (SHA1, SHA1.lower()),
    "sha256": (SHA256, SHA256.lower()),
}
# One wrong value per field type.
INVALID: dict[str, Any] = {
    "string": ["not", "a", "string"],
    "integer": "seven",
    "number": "one and a half",
    "boolean": "maybe",
    "timestamp": "yesterday",
    "ip": "300.1.2.3",
    "mac": "42-01-0A",
    "md5": "xyz",
    "sha1": MD5,
    "sha256": SHA1,
    "object": "not an object",
}


def valid_value(f: Field) -> tuple[Any, Any]:
    if f.type == "object":
        value = {(f.keys[0] if f.keys else "Key"): "value"}
        return value, dict(value)
    return VALID[f.type]


def valid_sample(event: EventType) -> tuple[dict[str, Any], dict[str, Any]]:
    """(what a producer sends, what validate() must return) for every field of the type."""
    sent: dict[str, Any] = {}
    expected: dict[str, Any] = {}
    for f in event.fields:
        sent[f.name], expected[f.name] = valid_value(f)
    for family in event.families:
        sent[family.count] = expected[family.count] = 2
        for index in (0, 1):
            for member in family.members:
                key = f"{member.name}_{index}"
                sent[key], expected[key] = valid_value(member)
    return sent, expected


def all_fields(event: EventType) -> list[Field]:
    """Declared fields, and each family member at index 0."""
    members = [
        Field(f"{m.name}_0", m.type, m.required, keys=m.keys)
        for fam in event.families
        for m in fam.members
    ]
    return [*event.fields, *members]


def refusal(event: EventType, data: dict[str, Any]) -> EventInvalidError:
    with pytest.raises(EventInvalidError) as caught:
        validate(event, data)
    return caught.value


TYPES = pytest.mark.parametrize("event", ALL, ids=[e.name for e in ALL])


# -- the catalogue against its seeds ------------------------------------------------------


def test_the_22_drweb_procedures_are_exactly_the_design_contract() -> None:
    assert len(CONTRACT_PROCEDURES) == 22
    assert set(PROCEDURES) == CONTRACT_PROCEDURES
    for name, event in PROCEDURES.items():
        assert event.name == name
        assert event.source == "drweb-server-station-event-procedures.txt"
    drweb = {e.name for e in ALL if e.source == "drweb-server-station-event-procedures.txt"}
    assert drweb == CONTRACT_PROCEDURES


@pytest.mark.parametrize("name", sorted(DRWEB_ARGS))
def test_drweb_event_has_exactly_the_seed_arguments(name: str) -> None:
    event = CATALOGUE[name]
    extensions = GARRISON_EXTENSIONS.get(name, set())
    assert {f.name for f in event.fields} == DRWEB_ARGS[name] | extensions
    for field in event.fields:
        if field.name in extensions:
            assert field.doc.startswith("Garrison:"), field
    families = {m.name for fam in event.families for m in fam.members}
    assert families == DRWEB_FAMILIES.get(name, set())


@pytest.mark.parametrize("name", sorted(DRWEB_FAMILIES))
def test_drweb_indexed_families_take_any_index_below_count(name: str) -> None:
    event = CATALOGUE[name]
    (family,) = event.families
    assert family.count == "count"
    data: dict[str, Any] = {"id": 3, "count": 3}
    for index in range(3):
        for member in family.members:
            data[f"{member.name}_{index}"] = valid_value(member)[0]
    clean = validate(event, data)
    assert clean["count"] == 3
    first = sorted(DRWEB_FAMILIES[name])[0]
    assert {f"{first}_0", f"{first}_1", f"{first}_2"} <= set(clean)
    # An index at or above count, and a missing required member, are refused.
    assert refusal(event, {**data, "count": 2}).field == "count"
    required = next(m.name for m in family.members if m.required)
    assert refusal(event, {k: v for k, v in data.items() if k != f"{required}_1"}).field == (
        f"{required}_1"
    )
    # Without count, the count is the number of items given.
    del data["count"]
    assert validate(event, data)["count"] == 3


def test_station_ids_are_integers_and_required_where_the_seed_names_a_station() -> None:
    for name in CONTRACT_PROCEDURES - {"station_status", "agent_installation"}:
        f = CATALOGUE[name].field("id")
        assert f is not None, name
        assert f.type == "integer", name
    # The installation id is not a station id (the seed warns about it).
    installation = CATALOGUE["agent_installation"].field("id")
    assert installation is not None
    assert installation.type == "string"


def test_the_limacharlie_sensor_events_exist() -> None:
    lima = {e.name for e in ALL if e.source == "limacharlie-sensor-events.txt"}
    assert lima == LIMACHARLIE
    connected = CATALOGUE["CONNECTED"]
    assert {f.name: f.type for f in connected.fields} == {
        "HOST_NAME": "string",
        "IS_SEGREGATED": "boolean",
        "KERNEL_ACQ_AVAILABLE": "boolean",
        "MAC_ADDRESS": "mac",
    }
    for name in ("DISCONNECTED", "SHUTTING_DOWN"):
        assert [(f.name, f.type) for f in CATALOGUE[name].fields] == [("ts", "timestamp")]
    # Garrison's additions to STARTING_UP: the previous run killed or crashed.
    assert [(f.name, f.type) for f in CATALOGUE["STARTING_UP"].fields] == [
        ("ts", "timestamp"),
        ("UNCLEAN_STOP", "boolean"),
        ("PREVIOUS_PID", "integer"),
    ]
    assert CATALOGUE["DISCONNECTED"].origin == "server"


def test_the_limacharlie_connected_sample_validates() -> None:
    sample = {
        "HOST_NAME": "demo-win-2016",
        "IS_SEGREGATED": 0,
        "KERNEL_ACQ_AVAILABLE": 1,
        "MAC_ADDRESS": "42-01-0A-80-00-02",
    }
    assert validate(CATALOGUE["CONNECTED"], sample) == {
        "HOST_NAME": "demo-win-2016",
        "IS_SEGREGATED": False,
        "KERNEL_ACQ_AVAILABLE": True,
        "MAC_ADDRESS": "42-01-0A-80-00-02",
    }


@pytest.mark.parametrize("name", sorted(KASPERSKY))
def test_kaspersky_telemetry_type_has_the_common_fields(name: str) -> None:
    event = CATALOGUE[name]
    assert event.source == "kaspersky-edr-data-between-components.txt"
    assert event.telemetry is True
    assert event.time_field == "time"
    types = {f.name: f.type for f in event.fields}
    assert {k: types.get(k) for k in COMMON} == COMMON
    time_field = event.field("time")
    assert time_field is not None
    assert time_field.required is True


def test_kaspersky_types_are_exactly_the_seed_list() -> None:
    assert {e.name for e in ALL if e.source == "kaspersky-edr-data-between-components.txt"} == (
        KASPERSKY
    )


def test_os_log_event_header_and_body_hold_the_seed_fields() -> None:
    event = CATALOGUE["os_log_event"]
    header, body = event.field("header"), event.field("body")
    assert header is not None
    assert header.type == "object"
    assert body is not None
    assert body.type == "object"
    assert len(OS_LOG_HEADER) == 14
    assert len(OS_LOG_BODY) == 99
    assert header.keys == tuple(OS_LOG_HEADER)
    assert body.keys == tuple(OS_LOG_BODY)
    clean = validate(
        event,
        {
            "time": EPOCH,
            "header": {"ProviderName": "Security", "EventId": 4624, "Computer": "pc1"},
            "body": {"LogonType": 3, "TargetUserName": "alice", "AccessFiles mask": "0x1"},
        },
    )
    assert clean["header"] == {"ProviderName": "Security", "EventId": 4624, "Computer": "pc1"}
    assert refusal(event, {"time": EPOCH, "header": {"Nope": 1}}).field == "header.Nope"
    assert refusal(event, {"time": EPOCH, "body": {"LogonType": [3]}}).field == "body.LogonType"


def test_the_seven_eset_export_types_are_each_some_events_eset_type() -> None:
    assert {e.eset_type for e in ALL if e.eset_type} == ESET_TYPES
    eset = [e for e in ALL if e.source == "eset-protect-json-export.txt"]
    assert len(eset) == 7
    assert {e.eset_type for e in eset} == ESET_TYPES


def test_names_are_unique_and_procedures_only_on_drweb_events() -> None:
    # + Garrison's own: sensor_health, port_closed, terminal_session_started and _ended,
    # prevention_status, isolation_tampered
    assert len(CATALOGUE) == len(ALL) == 22 + 8 + 12 + 7 + 1 + 5
    assert {e.name for e in ALL if e.procedure} == CONTRACT_PROCEDURES


# -- validate() on every type -------------------------------------------------------------


@TYPES
def test_a_valid_sample_is_accepted_and_normalised(event: EventType) -> None:
    sent, expected = valid_sample(event)
    assert validate(event, sent) == expected


@TYPES
def test_only_the_required_fields_are_enough(event: EventType) -> None:
    sent, expected = valid_sample(event)
    required = {f.name for f in event.fields if f.required}
    minimal = {k: v for k, v in sent.items() if k in required}
    counts = {fam.count: 0 for fam in event.families}
    assert validate(event, minimal) == {
        **{k: v for k, v in expected.items() if k in required},
        **counts,
    }


@TYPES
def test_each_missing_required_field_is_refused_by_name(event: EventType) -> None:
    sent, _ = valid_sample(event)
    required = [f.name for f in all_fields(event) if f.required]
    for name in required:
        error = refusal(event, {k: v for k, v in sent.items() if k != name})
        assert error.field == name
        assert error.problem == "is required"
        assert str(error) == f"{name}: is required"


@TYPES
def test_each_field_with_a_wrong_type_is_refused_by_name(event: EventType) -> None:
    sent, _ = valid_sample(event)
    for f in all_fields(event):
        error = refusal(event, {**sent, f.name: INVALID[f.type]})
        assert error.field == f.name, (f.name, str(error))
        assert str(error).startswith(f"{f.name}: ")


@TYPES
def test_an_unknown_field_is_refused_by_name(event: EventType) -> None:
    sent, _ = valid_sample(event)
    error = refusal(event, {**sent, "no_such_field": "x"})
    assert error.field == "no_such_field"
    assert str(error) == f"no_such_field: is not a field of {event.name}"


@TYPES
def test_data_that_is_not_an_object_is_refused(event: EventType) -> None:
    assert refusal(event, ["not", "an", "object"]).field == "data"  # type: ignore[arg-type]


def test_the_catalogue_has_a_required_field_or_a_typed_field_in_every_type() -> None:
    # So that "missing required" or "wrong type" really is testable for every type.
    for event in ALL:
        assert all_fields(event), event.name


# -- timestamps ---------------------------------------------------------------------------

WHEN = dt.datetime(2023, 11, 14, 22, 13, 20, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "value",
    [
        1700000000,
        1700000000.0,
        "1700000000",
        1700000000000,
        "1700000000000",
        "2023-11-14T22:13:20Z",
        "2023-11-14T22:13:20+00:00",
        "2023-11-14T23:13:20+01:00",
        "2023-11-14T22:13:20",
    ],
)
def test_timestamps_in_seconds_milliseconds_and_iso_8601(value: Any) -> None:
    assert parse_timestamp(value) == WHEN
    clean = validate(CATALOGUE["STARTING_UP"], {"ts": value})
    assert clean == {"ts": EPOCH_ISO}


@pytest.mark.parametrize("value", ["yesterday", "", "2023-13-45T99:00:00Z", True, [1], {"a": 1}])
def test_unparseable_timestamps_are_refused(value: Any) -> None:
    with pytest.raises(EventInvalidError) as caught:
        parse_timestamp(value, "ts")
    assert caught.value.field == "ts"
    error = refusal(CATALOGUE["process_started"], {"time": value, "unique_pid": "1"})
    assert error.field == "time"


def test_yesterday_is_refused_with_its_text() -> None:
    error = refusal(CATALOGUE["process_started"], {"time": "yesterday", "unique_pid": "1"})
    assert str(error) == "time: cannot parse timestamp 'yesterday'"


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:00:00-05:00"])
def test_an_iso_time_outside_the_utc_range_is_refused_not_crashing(value: str) -> None:
    error = refusal(CATALOGUE["amsi_scan"], {"time": value, "content": "x"})
    assert error.field == "time"
