"""Request and response shapes of the admin API (they make its OpenAPI document)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from garrison.common.vocabulary import JobPriority, JobType, Role, spoken
from garrison.server.adminapi.inputs import Id

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FromRow(BaseModel):
    """A response read from a row's attributes (``model_validate(row)``); the fields a row
    does not hold are computed in ``adminapi/convert.py``."""

    model_config = ConfigDict(from_attributes=True)


class LoginIn(Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class LoginOut(BaseModel):
    token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (the scheme name)
    expires_at: dt.datetime
    username: str
    role: str


class Me(BaseModel):
    username: str
    role: str


class KeyIn(Strict):
    uses: int = Field(default=1, ge=1, le=1_000_000)
    expires_in: int = Field(
        default=7 * 86400, ge=60, le=10 * 365 * 86400, description="seconds until the key expires"
    )
    description: str = Field(default="", max_length=255)


class InstallCommandOut(BaseModel):
    command: str = Field(description="the one-line install, run as root on the endpoint")
    server_url: str
    ca_sha256: str | None = Field(
        description="SHA-256 (hex, of the DER) of <data-dir>/tls/ca.pem; null without one"
    )
    key_included: bool = Field(
        description="false when asked for by id: the key is stored hashed, so the command "
        "holds its first group and XXXXX groups to fill in; ask by the key's text for all"
    )


class KeyOut(FromRow):
    id: int
    key: str | None = Field(
        default=None,
        description="the full key: in the answer to its creation only (it is stored hashed)",
    )
    prefix: str = Field(description="the key's first group, e.g. ABCDE: tells keys apart")
    uses: int
    used: int
    expires_at: dt.datetime
    revoked_at: dt.datetime | None
    status: str
    description: str
    created_at: dt.datetime
    created_by: str


class GroupRef(FromRow):
    id: int
    name: str


class StationOut(FromRow):
    id: int
    uuid: str
    hostname: str
    os_name: str
    os_platform: str
    address: str
    mac: str
    antivirus_name: str
    antivirus_version: str
    agent_version: str
    agent_kind: str
    enrolled_at: dt.datetime
    last_seen: dt.datetime
    last_alert_at: dt.datetime | None
    online: bool
    denied_at: dt.datetime | None = Field(
        description="when the station_authorization_in_progress procedure denied the station "
        "as it came back; its requests are refused (403 station_denied) until it is allowed "
        "(POST /stations/{id}/allow). null: allowed"
    )
    latitude: float | None = Field(
        default=None, description="the station's latitude, DD.DDDDDD degrees (null: unknown)"
    )
    longitude: float | None = Field(
        default=None, description="the station's longitude, DD.DDDDDD degrees (null: unknown)"
    )
    groups: list[GroupRef]


class StationPatchIn(Strict):
    """What an administrator may change on a station: its location (both coordinates, or
    both null to clear it).  Range-checked, at most six decimals (``DD.DDDDDD``)."""

    latitude: Any = Field(default=None, description="-90 to 90, at most 6 decimals; null")
    longitude: Any = Field(default=None, description="-180 to 180, at most 6 decimals; null")


class GroupIn(Strict):
    name: str = Field(min_length=1, max_length=128)
    description: str = Field(default="", max_length=255)


class GroupOut(FromRow):
    id: int
    name: str
    description: str
    stations: int


class MembershipIn(Strict):
    add: list[Id] = Field(default_factory=list, max_length=100_000)
    remove: list[Id] = Field(default_factory=list, max_length=100_000)


class MembershipOut(BaseModel):
    group: str
    station_ids: list[int]


class JobIn(Strict):
    type: str = Field(description=spoken(JobType))
    station_ids: list[Id] = Field(default_factory=list, max_length=100_000)
    group: str | None = Field(default=None, description="also target every station of a group")
    priority: int = Field(
        default=JobPriority.MEDIUM.value,
        ge=min(JobPriority).value,
        le=max(JobPriority).value,
        description=", ".join(f"{p.value} {p.label}" for p in JobPriority),
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description='Scan: {"path": …, "options": …, "name": …}'
    )


class JobTargetOut(FromRow):
    station_id: int
    status: str
    downloaded_at: dt.datetime | None
    start_time: dt.datetime | None
    end_time: dt.datetime | None
    code: int | None
    message: str | None
    result: dict[str, Any] | None = Field(
        default=None,
        description="a Garrison agent's structured result (GetFile: path, sha256, size); "
        "partial: true marks what a failed job did before it failed",
    )


class JobOut(FromRow):
    id: int
    type: str
    priority: int
    params: dict[str, Any]
    created_at: dt.datetime
    created_by: str
    expires_at: dt.datetime | None = None
    status_counts: dict[str, int]
    targets: list[JobTargetOut]


class FileOut(FromRow):
    """One upload of a stored file: which station brought it, for which job or alert."""

    sha256: str
    size: int
    station_id: int | None
    job_id: int | None
    alert_uid: str | None
    path: str
    created_at: dt.datetime


class HuntIn(Strict):
    question: dict[str, Any] = Field(
        description="type: FindFile (sha256 | glob | yara, roots, max_depth), FindProcess "
        "(name, sha256, cmdline), CollectFile (path), RunScript (script, sha256, args, "
        "timeout, output_cap); on server telemetry: SearchEvents (hash, process, path, "
        "user, host, ip, types), IocSweep (hashes)"
    )
    target: dict[str, Any] = Field(
        description='{"all": true} | {"group": name} | {"label": name} | {"os": name}'
    )
    expires_in: int = Field(ge=60, le=30 * 86400, description="seconds the hunt reaches stations")
    priority: int = Field(default=JobPriority.MEDIUM.value, ge=0, le=3)


class HuntProgress(BaseModel):
    targeted: int
    received: int
    done: int
    failed: int
    pending: int
    cancelled: int
    found: int


class HuntStationOut(BaseModel):
    station_id: int
    hostname: str
    status: str
    found: bool | None = Field(description="null: no complete answer (yet)")
    paths: list[str]
    sha256s: list[str]
    code: int | None
    message: str | None
    result: dict[str, Any] | None


class HuntOut(BaseModel):
    id: int
    question: dict[str, Any]
    target: dict[str, Any]
    state: Literal["active", "stopped", "expired"]
    job_id: int | None
    created_at: dt.datetime
    created_by: str
    expires_at: dt.datetime
    stopped_at: dt.datetime | None
    progress: HuntProgress


class HuntDetailOut(HuntOut):
    results: list[HuntStationOut]
    aggregate: dict[str, Any]


class CancelIn(Strict):
    station_ids: list[Id] | None = Field(default=None, max_length=100_000)


class CancelOut(BaseModel):
    job_id: int
    cancelled: int


class AlertOut(FromRow):
    id: int
    station_id: int
    job_id: int | None
    threat_name: str
    filepath: str
    action: str
    module_name: str
    antivirus: str
    detection_time: dt.datetime
    received_at: dt.datetime
    acknowledged_at: dt.datetime | None
    acknowledged_by: str | None
    assigned_to: str | None
    assigned_at: dt.datetime | None
    info: dict[str, Any]


class AckIn(Strict):
    alert_ids: list[Id] = Field(min_length=1, max_length=10_000)


class AssignIn(Strict):
    alert_ids: list[Id] = Field(min_length=1, max_length=10_000)
    assignee: str | None = Field(
        min_length=1, max_length=64, description="a username; null to unassign"
    )


class CommentIn(Strict):
    body: str = Field(min_length=1, max_length=10_000)


class CommentOut(FromRow):
    id: int
    alert_id: int
    author: str
    body: str
    created_at: dt.datetime


class AlertDetailOut(AlertOut):
    comments: list[CommentOut]


class ScanOut(FromRow):
    id: int
    station_id: int
    job_id: int | None
    progress: int
    duration_seconds: int
    scanned_count: int
    malware_count: int
    suspicious_count: int
    started_at: dt.datetime
    updated_at: dt.datetime
    completed_at: dt.datetime | None


class StateOut(FromRow):
    station_id: int
    global_status: str
    global_update_time: dt.datetime | None
    modules: list[Any]
    avdetails: list[Any]
    updated_at: dt.datetime


class ConfigOut(BaseModel):
    kind: str
    attributes: dict[str, str | None]


class StationConfigOut(BaseModel):
    station_id: int
    kind: str
    name: str
    reported_at: dt.datetime | None
    baseline: dict[str, str]
    differences: dict[str, str | None]
    effective: dict[str, str]


class ProcessNodeOut(BaseModel):
    """One process of a station's tree; times as the agent reported them (UTC)."""

    unique_pid: str
    pid: int | None = None
    parent_unique_pid: str | None = None
    parent_pid: int | None = None
    path: str | None = None
    command_line: str | None = None
    user: str | None = None
    start_time: dt.datetime | None = None
    end_time: dt.datetime | None = None
    exit_code: int | None = None
    exit_signal: int | None = None
    execs: int = Field(description="process_started events seen (0: seen only at its stop)")
    children: list[ProcessNodeOut] = Field(default_factory=list)


class ProcessTreeOut(BaseModel):
    station_id: int
    root: str | None
    limit: int
    nodes: int = Field(description="processes in the answer")
    truncated: bool = Field(description="the tree was cut (see reason)")
    reason: str | None = None
    roots: list[ProcessNodeOut]


class AttrValue(Strict):
    attr: str = Field(min_length=1, max_length=255)
    value: str = Field(max_length=65536)


class DesiredIn(Strict):
    attributes: list[AttrValue] = Field(max_length=5000)


class UserIn(Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    role: Role


class UserPatch(Strict):
    role: Role | None = None
    password: str | None = Field(default=None, min_length=1, max_length=1024)
    disabled: bool | None = None


class UserOut(FromRow):
    id: int
    username: str
    role: str
    disabled: bool
    created_at: dt.datetime


class AuditOut(FromRow):
    id: int
    at: dt.datetime
    actor: str
    action: str
    target: str
    details: dict[str, Any]
    address: str


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    database: str


class EventOut(FromRow):
    seq: int
    id: str
    type: str
    station_id: int | None
    origin: str
    severity: str
    time: dt.datetime
    received_at: dt.datetime
    data: dict[str, Any]


class IocIn(Strict):
    hashes: list[str] = Field(
        min_length=1, max_length=10_000, description="MD5, SHA-1 or SHA-256 digests"
    )
    limit: int = Field(default=1000, ge=1, le=10_000)


class IocOut(BaseModel):
    events: list[EventOut]
    station_ids: list[int]


class EventTypeOut(BaseModel):
    name: str
    source: str
    origin: str
    procedure: str | None
    severity: str
    eset_type: str | None
    telemetry: bool
    fields: list[dict[str, Any]]


PROCEDURE_VERSION = (
    "rises by one at every PUT, across a DELETE too: the history of a deleted procedure is "
    "kept, so a procedure set again goes on from its last version instead of starting at 1"
)


class ProcedureOut(FromRow):
    name: str
    set_name: str = Field(
        serialization_alias="set", description="the procedure set holding it (default: default)"
    )
    order: int = Field(description="its set's order: the chain runs sets in this order")
    set_enabled: bool = Field(description="whether its set is enabled")
    enabled: bool
    version: int = Field(description=PROCEDURE_VERSION)
    updated_at: dt.datetime
    updated_by: str
    source: str


class ProcedureChainOut(ProcedureOut):
    """One set's procedure of the event (``?set=``, or the ``default`` set's, or with none
    there the first in set order) and, in ``procedures``, all of the event's procedures
    with their sets, in set order."""

    procedures: list[ProcedureOut] = Field(
        description="every procedure of this event, one per set, in set order"
    )


class ProcedureVersionOut(FromRow):
    set_name: str = Field(serialization_alias="set")
    version: int = Field(description=PROCEDURE_VERSION)
    created_at: dt.datetime
    created_by: str
    source: str


class ProcedureSetIn(Strict):
    order: int | None = Field(
        default=None,
        ge=-1_000_000,
        le=1_000_000,
        strict=True,
        description="where the set runs in every event's chain (lowest first); required "
        "to create a set; no two sets share one",
    )
    enabled: bool | None = Field(default=None, strict=True, description="default: true")


class ProcedureSetOut(BaseModel):
    name: str
    order: int
    enabled: bool
    procedures: int = Field(description="how many event procedures the set holds")
    updated_at: dt.datetime
    updated_by: str


class ProcedureTestIn(Strict):
    args: dict[str, Any] = Field(default_factory=dict)
    source: str | None = Field(
        default=None, description="test this source instead of the stored one"
    )


class ProcedureWriteOut(BaseModel):
    action: str = Field(
        description="the host function: create_job, allow_station, raise_alert, audit"
    )
    args: list[Any]


class ProcedureChainStepOut(BaseModel):
    set_name: str = Field(serialization_alias="set")
    order: int
    version: int | None
    called: bool = Field(description="false: not run (see skipped)")
    skipped: str | None = Field(
        default=None, description="why it was not run: disabled, or an earlier set answered"
    )
    result: Any = None
    error: str | None = None
    logs: list[str] = Field(default_factory=list)
    writes: list[ProcedureWriteOut] = Field(default_factory=list)
    elapsed_ms: float = 0.0


class ProcedureTestOut(BaseModel):
    result: Any
    error: str | None
    logs: list[str]
    writes: list[ProcedureWriteOut] = Field(
        default_factory=list, description="what the run would have written (nothing is)"
    )
    elapsed_ms: float
    answered_by: str | None = Field(
        default=None,
        description="station_authorization_in_progress: the set whose answer decided",
    )
    chain: list[ProcedureChainStepOut] = Field(
        default_factory=list,
        description="a dry run of the event's chain (no set, no source): each set's part, "
        "in set order",
    )


class ProcedureErrorOut(FromRow):
    id: int
    procedure: str
    set_name: str = Field(serialization_alias="set")
    event_seq: int | None
    error: str
    at: dt.datetime


class ExportTargetIn(Strict):
    name: str = Field(min_length=1, max_length=128)
    format: Literal["eset-json", "leef", "leef2", "cef"]
    transport: Literal["udp", "tcp", "tls", "relp", "file", "http"]
    host: str = Field(default="", max_length=255)
    port: int = Field(default=0, ge=0, le=65535)
    path: str = Field(default="", max_length=4096, description="file transport: NDJSON file")
    url: str = Field(default="", max_length=4096, description="http transport: webhook URL")
    enabled: bool = True
    start_at: Literal["now", "beginning"] = Field(
        default="now", description="export events from now on, or the whole stored log"
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="profile (eset|garrison; unset: eset for eset-json, garrison for the "
        "others), inspect_alert_name, garrison_events, "
        "envelope (rfc5424|rfc3164), framing (newline|octet), bom, "
        "max_message_bytes, leef_delimiter, tls_ca, tls_cert, tls_key, tls_verify, "
        "event_types, min_severity, groups, hips_min_severity, aggregation_window_seconds, "
        "heartbeat_seconds, max_backlog, batch_size, file_max_bytes, file_keep, http_headers",
    )


class ExportTargetPatch(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=128)
    format: Literal["eset-json", "leef", "leef2", "cef"] | None = None
    transport: Literal["udp", "tcp", "tls", "relp", "file", "http"] | None = None
    host: str | None = Field(default=None, max_length=255)
    port: int | None = Field(default=None, ge=0, le=65535)
    path: str | None = Field(default=None, max_length=4096)
    url: str | None = Field(default=None, max_length=4096)
    enabled: bool | None = None
    options: dict[str, Any] | None = None


class ExportTargetOut(FromRow):
    id: int
    name: str
    format: str
    transport: str
    host: str
    port: int
    path: str
    url: str
    enabled: bool
    options: dict[str, Any]
    position: int
    lag: int
    # Counters from every node: events handled (sent, or filtered out), failed sends, the
    # last failure's error and time.
    handled: int
    failures: int
    last_error: str | None
    last_error_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime


class ExportTestOut(BaseModel):
    sent: bool
    message: str


# Sensor policy and status (garrison.server.sensors) -------------------------------------------


class SensorPolicyIn(Strict):
    settings: dict[str, Any] = Field(
        description="the [sensors] keys this policy sets (garrison.common.sensor_policy)"
    )


class GroupSensorPolicyIn(SensorPolicyIn):
    priority: int = Field(
        default=0,
        ge=-1_000_000,
        le=1_000_000,
        description="a station in several groups: the higher priority wins a key both set",
    )


class SensorPolicyOut(BaseModel):
    scope: str  # "default" | "group"
    group: str | None = None
    priority: int = 0
    settings: dict[str, Any]
    version: str
    updated_at: dt.datetime | None = None
    updated_by: str = ""


class EffectiveSensorPolicyOut(BaseModel):
    station_id: int
    version: str
    settings: dict[str, Any]
    sources: dict[str, str] = Field(description='per key: "default" or "group:NAME"')
    layers: list[str] = Field(description="the policies considered, the strongest first")


class SensorStatusOut(BaseModel):
    sensor: str
    state: str
    reason: str = ""
    produced: int = 0
    dropped: int = 0
    dropped_rate_limit: int = 0
    dropped_queue: int = 0
    dropped_spool: int = 0
    overflows: int = 0
    excluded: int = 0
    hash_pending: int = 0


class StationSensorsOut(BaseModel):
    station_id: int
    reported_at: dt.datetime | None = Field(description="the latest sensor_health event's time")
    received_at: dt.datetime | None = None
    policy_version: str = ""
    policy_error: str = ""
    sensors: list[SensorStatusOut]
