"""Task objects (``task.obj``) of each agent request, read leniently.

Text an agent reports is refused when it holds a NUL character (PostgreSQL cannot store one,
and no antivirus names a threat or a module with one), with the field named; the one
exception is a job's result message, whose NUL characters are removed so that the job still
leaves ``downloaded``.  Length limits come from the columns that store each value.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson

from garrison.common import geolocation
from garrison.common.wire import (
    WireValueError,
    as_int,
    as_optional_int,
    as_str,
    decode_mime_base64,
    parse_duration,
    unwrap,
)
from garrison.server.agentapi.envelope import wire_error
from garrison.server.alerts import service as alerts_service
from garrison.server.alerts.service import AlertReport
from garrison.server.configs import service as configs_service
from garrison.server.errors import InvalidInputError, PayloadTooLargeError
from garrison.server.jobs.service import JobResult
from garrison.server.scans.service import ScanReport
from garrison.server.states.service import GLOBAL_STATUS_LENGTH, MAX_MODULES

MAX_ALERTS = 10_000


def _text(value: Any, field: str, max_len: int, required: bool = True) -> str:
    text = as_str(value, field, required=required, max_len=max_len)
    if "\x00" in text:
        raise WireValueError(field, "must not contain NUL characters")
    return text


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInputError(f"task.obj must be a JSON object for {what}", field="task.obj")
    return value


def _epoch_time(value: Any, field: str) -> dt.datetime | None:
    seconds = as_optional_int(value, field)
    if seconds is None or seconds <= 0:
        return None
    try:
        return dt.datetime.fromtimestamp(seconds, dt.UTC)
    except (OverflowError, OSError, ValueError):
        raise WireValueError(field, "is not a valid epoch time") from None


def enrollment_key(obj: Any) -> str:
    try:
        return as_str(_obj(obj, "Enrollment").get("key"), "task.obj.key", max_len=64)
    except WireValueError as exc:
        raise wire_error(exc) from None


def enrollment_installation(obj: Any) -> dict[str, str] | None:
    """``task.obj.installation`` of ``garrison-agent install``'s enrollment: ``{"id",
    "sessionid"}`` (at most 64 characters each), or None for an ordinary enrollment."""
    value = _obj(obj, "Enrollment").get("installation")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInputError(
            "task.obj.installation must be a JSON object", field="task.obj.installation"
        )
    try:
        return {
            name: _text(value.get(name), f"task.obj.installation.{name}", 64, required=False)
            for name in ("id", "sessionid")
        }
    except WireValueError as exc:
        raise wire_error(exc) from None


MAX_RESULT_BYTES = 1 << 20


def _structured_result(value: Any) -> dict[str, Any] | None:
    """A Garrison agent's ``result`` (RESPONSE-WIRE.md): a JSON object of at most 1 MiB
    serialised (the agent shortens its lists to fit and says ``truncated``)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInputError("task.obj.result must be a JSON object", field="task.obj.result")
    size = len(orjson.dumps(value))
    if size > MAX_RESULT_BYTES:
        raise PayloadTooLargeError(
            f"task.obj.result is {size} bytes serialised; at most {MAX_RESULT_BYTES} "
            "(shorten its lists and set truncated)",
            field="task.obj.result",
        )
    return value


def job_result(obj: Any) -> JobResult:
    data = _obj(obj, "Runjobs")
    structured = _structured_result(data.get("result"))
    try:
        code = as_int(data.get("code"), "task.obj.code")
        message = as_str(data.get("message"), "task.obj.message", required=False, max_len=1 << 20)
        # Failures carry the error text MIME-base64 encoded.
        text = decode_mime_base64(message) if code != 0 else message
        return JobResult(
            job_id=as_int(data.get("job_id"), "task.obj.job_id"),
            code=code,
            message=text.replace("\x00", ""),
            start_time=as_optional_int(data.get("start_time"), "task.obj.start_time"),
            end_time=as_optional_int(data.get("end_time"), "task.obj.end_time"),
            result=structured,
        )
    except WireValueError as exc:
        raise wire_error(exc) from None


def scan_report(obj: Any) -> ScanReport:
    data = _obj(obj, "Scan")
    try:
        return ScanReport(
            job_id=as_optional_int(data.get("job_id"), "task.obj.job_id"),
            progress=as_int(data.get("progress"), "task.obj.progress", required=False, default=100),
            duration_seconds=parse_duration(data.get("duration"), "task.obj.duration"),
            scanned_count=as_int(
                data.get("scanned_count"), "task.obj.scanned_count", required=False, default=0
            ),
            malware_count=as_int(
                data.get("malware_count"), "task.obj.malware_count", required=False, default=0
            ),
            suspicious_count=as_int(
                data.get("suspicious_count"), "task.obj.suspicious_count", required=False, default=0
            ),
            quarantined_count=as_optional_int(
                data.get("quarantined_count"), "task.obj.quarantined_count"
            ),
            deleted_count=as_optional_int(data.get("deleted_count"), "task.obj.deleted_count"),
        )
    except WireValueError as exc:
        raise wire_error(exc) from None


def alert_info(info: Any) -> dict[str, Any]:
    """The agent's ``info`` as stored: an object as it came, anything else under ``info``
    (the column holds an object; wrapping an object too nested it in itself)."""
    if info is None:
        return {}
    return info if isinstance(info, dict) else {"info": info}


def alerts(obj: Any) -> tuple[int | None, list[AlertReport]]:
    data = _obj(obj, "Alerts")
    raw = data.get("alerts", [])
    if not isinstance(raw, list):
        raise InvalidInputError("task.obj.alerts must be an array", field="task.obj.alerts")
    if len(raw) > MAX_ALERTS:
        raise InvalidInputError(f"at most {MAX_ALERTS} alerts per request", field="task.obj.alerts")
    reports = []
    try:
        job_id = as_optional_int(data.get("job_id"), "task.obj.job_id")
        for i, item in enumerate(raw):
            field = f"task.obj.alerts[{i}]"
            if not isinstance(item, dict):
                raise InvalidInputError(f"{field} must be a JSON object", field=field)
            info = alert_info(item.get("info"))
            sha256 = info.get("sha256")
            if sha256 is not None and not (
                isinstance(sha256, str) and alerts_service.SHA256_RE.match(sha256)
            ):
                raise InvalidInputError(
                    f"{field}.info.sha256 must be 64 hexadecimal digits",
                    field=f"{field}.info.sha256",
                )
            reports.append(
                AlertReport(
                    threat_name=_text(
                        item.get("name"), f"{field}.name", alerts_service.THREAT_NAME_LENGTH
                    ),
                    filepath=_text(
                        item.get("filepath"), f"{field}.filepath", alerts_service.FILEPATH_LENGTH
                    ),
                    action=_text(
                        item.get("action"),
                        f"{field}.action",
                        alerts_service.ACTION_LENGTH,
                        required=False,
                    ),
                    module_name=_text(
                        item.get("module_name"),
                        f"{field}.module_name",
                        alerts_service.MODULE_NAME_LENGTH,
                        required=False,
                    ),
                    # Some backends send no detection_time: the receive time stands in.
                    detection_time=_epoch_time(
                        item.get("detection_time"), f"{field}.detection_time"
                    ),
                    info=info,
                )
            )
    except WireValueError as exc:
        raise wire_error(exc) from None
    return job_id, reports


def location(obj: Any) -> tuple[float, float] | None:
    """A State's ``location`` (Garrison agents: the ``[location]`` of agent.toml), checked
    like an administrator's; None when the State has none."""
    data = obj.get("location") if isinstance(obj, dict) else None
    if data is None:
        return None
    if not isinstance(data, dict):
        raise InvalidInputError(
            "task.obj.location must be a JSON object", field="task.obj.location"
        )
    try:
        place = geolocation.location(data.get("latitude"), data.get("longitude"))
    except geolocation.CoordinateError as exc:
        field = f"task.obj.location.{exc.field}"
        raise InvalidInputError(f"{field}: {exc}", field=field) from None
    if place is None:
        raise InvalidInputError(
            "task.obj.location needs latitude and longitude", field="task.obj.location"
        )
    return place


def state(obj: Any) -> tuple[str, dt.datetime | None, list[dict[str, Any]], list[Any]]:
    data = _obj(obj, "State")
    dbinfo = data.get("dbinfo", {})
    if not isinstance(dbinfo, dict):
        raise InvalidInputError("task.obj.dbinfo must be a JSON object", field="task.obj.dbinfo")
    modules_raw = dbinfo.get("modules", [])
    if not isinstance(modules_raw, list):
        raise InvalidInputError(
            "task.obj.dbinfo.modules must be an array", field="task.obj.dbinfo.modules"
        )
    if len(modules_raw) > MAX_MODULES:
        raise InvalidInputError(
            f"at most {MAX_MODULES} modules per State", field="task.obj.dbinfo.modules"
        )
    avdetails = data.get("avdetails", [])
    if not isinstance(avdetails, list):
        raise InvalidInputError("task.obj.avdetails must be an array", field="task.obj.avdetails")
    try:
        modules = []
        for i, module in enumerate(modules_raw):
            field = f"task.obj.dbinfo.modules[{i}]"
            if not isinstance(module, dict):
                raise InvalidInputError(f"{field} must be a JSON object", field=field)
            updated = _epoch_time(
                module.get("mod_update_timestamp"), f"{field}.mod_update_timestamp"
            )
            entry: dict[str, Any] = {
                "name": _text(module.get("name"), f"{field}.name", 128),
                "mod_status": _text(
                    module.get("mod_status"), f"{field}.mod_status", 64, required=False
                ),
                "mod_update_time": updated.isoformat() if updated else None,
            }
            # Garrison's agent adds the base's version and record count; kept when sent.
            version = _text(module.get("mod_version"), f"{field}.mod_version", 128, required=False)
            if version:
                entry["mod_version"] = version
            records = as_optional_int(module.get("mod_records"), f"{field}.mod_records")
            if records is not None:
                entry["mod_records"] = records
            _content_module(module, entry, field)
            modules.append(entry)
        status = _text(
            dbinfo.get("global_status"),
            "task.obj.dbinfo.global_status",
            GLOBAL_STATUS_LENGTH,
            required=False,
        )
        updated_at = _epoch_time(
            dbinfo.get("global_update_timestamp"), "task.obj.dbinfo.global_update_timestamp"
        )
    except WireValueError as exc:
        raise wire_error(exc) from None
    return status, updated_at, modules, avdetails


def _content_module(module: dict[str, Any], entry: dict[str, Any], field: str) -> None:
    """A Garrison agent's signed-content module (CONTENT-WIRE.md): ``version`` (the rule
    set's), ``records`` and ``sha256`` kept, and the first two as the Armadito
    ``mod_version`` / ``mod_records`` when those are not sent."""
    version = as_optional_int(module.get("version"), f"{field}.version")
    if version is not None:
        entry["version"] = version
        entry.setdefault("mod_version", str(version))
    records = as_optional_int(module.get("records"), f"{field}.records")
    if records is not None:
        entry["records"] = records
        entry.setdefault("mod_records", records)
    digest = module.get("sha256")
    if digest is not None:
        text = _text(digest, f"{field}.sha256", 64)
        if not alerts_service.SHA256_RE.match(text):
            # It becomes the sha256 field of virus_bases_received, which holds only that.
            raise InvalidInputError(
                f"{field}.sha256 must be 64 hexadecimal digits", field=f"{field}.sha256"
            )
        entry["sha256"] = text.lower()


def content_serial(obj: Any) -> int | None:
    """``dbinfo.content_serial`` of a Garrison agent's State (the content it installed)."""
    data = _obj(obj, "State")
    dbinfo = data.get("dbinfo", {})
    if not isinstance(dbinfo, dict):
        return None
    try:
        serial = as_optional_int(dbinfo.get("content_serial"), "task.obj.dbinfo.content_serial")
    except WireValueError as exc:
        raise wire_error(exc) from None
    if serial is not None and not 0 <= serial <= 2**31 - 1:
        raise InvalidInputError(
            "task.obj.dbinfo.content_serial is out of range",
            field="task.obj.dbinfo.content_serial",
        )
    return serial


def _pairs(items: Any, field: str) -> list[tuple[str, str]]:
    if not isinstance(items, list):
        raise InvalidInputError(f"{field} must be an array of {{attr, value}}", field=field)
    pairs = []
    try:
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise InvalidInputError(f"{field}[{i}] must be a JSON object", field=field)
            pairs.append(
                (
                    _text(item.get("attr"), f"{field}[{i}].attr", configs_service.ATTR_LENGTH),
                    _text(unwrap(item.get("value")), f"{field}[{i}].value", 65536, required=False),
                )
            )
    except WireValueError as exc:
        raise wire_error(exc) from None
    return pairs


def avconfig(obj: Any) -> list[tuple[str, str]]:
    return _pairs(obj, "task.obj")


def scheduler(obj: Any) -> tuple[str, list[tuple[str, str]]]:
    data = _obj(obj, "Scheduler")
    try:
        name = _text(data.get("name"), "task.obj.name", configs_service.NAME_LENGTH, required=False)
    except WireValueError as exc:
        raise wire_error(exc) from None
    return name, _pairs(data.get("confdetails", []), "task.obj.confdetails")
