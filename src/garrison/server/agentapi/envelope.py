"""Parsing of the Armadito request envelope, with every observed quirk absorbed.

The envelope's strings are the station's identity: NUL characters are removed from them
rather than refused (a station must be able to enroll, and a refused enrollment must still
be recorded), and their limits are the lengths of the station's columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from garrison.common.wire import WireValueError, as_int, as_str, normalize_uuid
from garrison.server.agentapi.bodies import check_depth
from garrison.server.errors import InvalidInputError, MalformedRequestError
from garrison.server.stations.service import IDENTITY_LENGTHS, Identity


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
        """Garrison agents' ``hostname``, ``mac`` and ``platform`` are kept as sent (a MAC in
        an unusual form too), cut to their columns (``Identity.cleaned``)."""
        try:
            platform = _text(self.extra.get("platform"), "platform")
            hostname = _text(self.extra.get("hostname"), "hostname")
            mac = _text(self.extra.get("mac"), "mac")
        except WireValueError as exc:
            raise wire_error(exc) from None
        return Identity(
            uuid=self.uuid,
            agent_version=self.agent_version,
            antivirus_name=self.antivirus_name,
            antivirus_version=self.antivirus_version,
            os_name=self.os_name,
            os_platform=platform or self.os_libpath,
            hostname=hostname,
            mac=mac,
            address=address,
            agent_kind=agent_kind,
        ).cleaned()


def _text(value: Any, field: str, max_len: int = 4096) -> str:
    """An optional envelope string, NUL characters removed."""
    return as_str(value, field, required=False, max_len=max_len).replace("\x00", "")


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise MalformedRequestError("request body is empty; a JSON body is required")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequestError(f"request body is not valid JSON: {exc}") from None
    check_depth(data)
    return data


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
            agent_version=_text(
                data.get("agent_version"), "agent_version", IDENTITY_LENGTHS["agent_version"]
            ),
            task_name=_text(task.get("name"), "task.name", 64),
            antivirus_name=_text(
                antivirus.get("name"), "task.antivirus.name", IDENTITY_LENGTHS["antivirus_name"]
            ),
            antivirus_version=_text(
                antivirus.get("version"),
                "task.antivirus.version",
                IDENTITY_LENGTHS["antivirus_version"],
            ),
            os_name=_text(
                os_info.get("name"), "task.antivirus.os_info.name", IDENTITY_LENGTHS["os_name"]
            ),
            os_libpath=_text(
                os_info.get("libpath"),
                "task.antivirus.os_info.libpath",
                IDENTITY_LENGTHS["os_platform"],
            ),
            obj=task.get("obj"),
            extra={k: v for k, v in data.items() if k in ("hostname", "mac", "platform")},
        )
    except WireValueError as exc:
        raise wire_error(exc) from None
