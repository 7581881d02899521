"""Parsing of the Armadito request envelope, with every observed quirk absorbed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from garrison.common.wire import WireValueError, as_int, as_str, normalize_uuid
from garrison.server.errors import InvalidInputError, MalformedRequestError
from garrison.server.stations.service import Identity


@dataclass(frozen=True)
class Envelope:
    agent_id: int
    uuid: str
    agent_version: str
    task_name: str
    antivirus_name: str
    antivirus_version: str
    os_name: str
    os_libpath: str
    obj: Any
    extra: dict[str, Any]

    def identity(self, address: str, agent_kind: str) -> Identity:
        return Identity(
            uuid=self.uuid,
            agent_version=self.agent_version,
            antivirus_name=self.antivirus_name,
            antivirus_version=self.antivirus_version,
            os_name=self.os_name,
            os_platform=as_str(self.extra.get("platform"), "platform", required=False)
            or self.os_libpath,
            hostname=as_str(self.extra.get("hostname"), "hostname", required=False),
            mac=as_str(self.extra.get("mac"), "mac", required=False),
            address=address,
            agent_kind=agent_kind,
        )


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise MalformedRequestError("request body is empty; a JSON body is required")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequestError(f"request body is not valid JSON: {exc}") from None


def wire_error(exc: WireValueError) -> InvalidInputError:
    return InvalidInputError(str(exc), field=exc.field)


def _dict(value: Any, field: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInputError(f"{field} must be a JSON object", field=field)
    return value


def parse_envelope(body: bytes) -> Envelope:
    data = parse_json(body)
    if not isinstance(data, dict):
        raise InvalidInputError("request body must be a JSON object (the task envelope)")
    task = _dict(data.get("task"), "task")
    if "task" not in data:
        raise InvalidInputError("task is required", field="task")
    antivirus = _dict(task.get("antivirus"), "task.antivirus")
    os_info = _dict(antivirus.get("os_info"), "task.antivirus.os_info")
    try:
        return Envelope(
            agent_id=as_int(data.get("agent_id"), "agent_id", required=False, default=0),
            uuid=normalize_uuid(data.get("uuid")),
            agent_version=as_str(
                data.get("agent_version"), "agent_version", required=False, max_len=64
            ),
            task_name=as_str(task.get("name"), "task.name", required=False, max_len=64),
            antivirus_name=as_str(
                antivirus.get("name"), "task.antivirus.name", required=False, max_len=64
            ),
            antivirus_version=as_str(
                antivirus.get("version"), "task.antivirus.version", required=False, max_len=64
            ),
            os_name=as_str(
                os_info.get("name"), "task.antivirus.os_info.name", required=False, max_len=64
            ),
            os_libpath=as_str(
                os_info.get("libpath"),
                "task.antivirus.os_info.libpath",
                required=False,
                max_len=128,
            ),
            obj=task.get("obj"),
            extra={k: v for k, v in data.items() if k in ("hostname", "mac", "platform")},
        )
    except WireValueError as exc:
        raise wire_error(exc) from None
