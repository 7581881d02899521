"""The params of the live-response job types (RESPONSE-WIRE.md), checked when a job is
created: a bad one is refused with the field named, so an agent is never handed a job it
would have to refuse for its shape (it re-checks anyway).

``GetFile``'s ``max_bytes`` is not given by the administrator: Getjobs adds the station's cap
at the time it hands the job out (``garrison.server.files``)."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from typing import Any

from garrison.common.vocabulary import JobType
from garrison.server.errors import InvalidInputError

SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")
MAX_ARGS = 32
MAX_ARG_LENGTH = 1024
MAX_PATH_LENGTH = 4096
DEFAULT_TIMEOUT = 60
MAX_TIMEOUT = 3600
DEFAULT_OUTPUT_CAP = 1 << 20
MAX_OUTPUT_CAP = 16 << 20
# Job types whose obj the agent gets as these params plus ``investigation_id``.
RESPONSE_TYPES = frozenset(
    {
        JobType.KILL_PROCESS,
        JobType.LIST_PROCESSES,
        JobType.LIST_CONNECTIONS,
        JobType.LIST_SERVICES,
        JobType.LIST_SESSIONS,
        JobType.GET_FILE,
        JobType.DELETE_FILE,
        JobType.QUARANTINE_FILE,
        JobType.LIST_QUARANTINE,
        JobType.RESTORE_QUARANTINED,
        JobType.RUN_SCRIPT,
        JobType.HUNT,
    }
)
# Checks that a RunScript names an approved script version: (script, sha256) -> None or raise.
ScriptCheck = Callable[[str, str], None]


def _bad(field: str, message: str) -> InvalidInputError:
    return InvalidInputError(f"{field} {message}", field=field)


def _only(params: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(params) - allowed - {"investigation_id"})
    if unknown:
        known = ", ".join(sorted(allowed)) or "none"
        raise _bad(f"{where}.{unknown[0]}", f"is not a parameter of this job (known: {known})")


def _int(value: Any, field: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _bad(field, f"must be an integer from {low} to {high}")
    return value


def _bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise _bad(field, "must be true or false")
    return value


def sha256(value: Any, field: str) -> str:
    if not isinstance(value, str) or not SHA256_RE.match(value):
        raise _bad(field, "must be 64 hexadecimal digits")
    return value.lower()


def absolute_path(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise _bad(field, "must be an absolute path")
    if len(value) > MAX_PATH_LENGTH or "\x00" in value:
        raise _bad(field, f"must be at most {MAX_PATH_LENGTH} characters, without NUL")
    if ".." in value.split("/"):
        raise _bad(field, "must not contain a '..' component")
    return posixpath.normpath(value) if value != "/" else value


def _text(value: Any, field: str, max_len: int) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= max_len or "\x00" in value:
        raise _bad(field, f"must be a string of 1-{max_len} characters")
    return value


def script(params: dict[str, Any], where: str, check: ScriptCheck | None) -> dict[str, Any]:
    """RunScript's params (also a hunt's RunScript question): an approved version's sha256."""
    name = _text(params.get("script"), f"{where}.script", 64)
    digest = sha256(params.get("sha256"), f"{where}.sha256")
    args = params.get("args", [])
    if not isinstance(args, list) or len(args) > MAX_ARGS:
        raise _bad(f"{where}.args", f"must be a list of at most {MAX_ARGS} strings")
    for i, arg in enumerate(args):
        if not isinstance(arg, str) or len(arg) > MAX_ARG_LENGTH or "\x00" in arg:
            raise _bad(f"{where}.args[{i}]", f"must be a string of at most {MAX_ARG_LENGTH}")
    clean = {
        "script": name,
        "sha256": digest,
        "args": list(args),
        "timeout": _int(params.get("timeout", DEFAULT_TIMEOUT), f"{where}.timeout", 1, MAX_TIMEOUT),
        "output_cap": _int(
            params.get("output_cap", DEFAULT_OUTPUT_CAP), f"{where}.output_cap", 1, MAX_OUTPUT_CAP
        ),
    }
    if check is not None:
        check(name, digest)
    return clean


def _kill(params: dict[str, Any]) -> dict[str, Any]:
    _only(params, {"pid", "unique_pid", "sha256", "tree"}, "params")
    given = [key for key in ("pid", "unique_pid", "sha256") if key in params]
    if len(given) != 1:
        raise _bad("params", "must hold exactly one of pid, unique_pid or sha256")
    clean: dict[str, Any] = {"tree": _bool(params.get("tree", False), "params.tree")}
    key = given[0]
    if key == "pid":
        clean["pid"] = _int(params["pid"], "params.pid", 2, 2**31 - 1)
    elif key == "unique_pid":
        clean["unique_pid"] = _text(params["unique_pid"], "params.unique_pid", 128)
    else:
        clean["sha256"] = sha256(params["sha256"], "params.sha256")
    return clean


def check(job_type: str, params: dict[str, Any], scripts: ScriptCheck | None) -> dict[str, Any]:
    """The clean params of a live-response job; ``investigation_id`` is kept when given."""
    if job_type == JobType.HUNT:
        raise InvalidInputError(
            "Hunt jobs are made by hunts: use POST /admin/v1/hunts", field="type"
        )
    clean: dict[str, Any]
    if job_type == JobType.KILL_PROCESS:
        clean = _kill(params)
    elif job_type in (JobType.GET_FILE, JobType.DELETE_FILE, JobType.QUARANTINE_FILE):
        _only(params, {"path"}, "params")
        clean = {"path": absolute_path(params.get("path"), "params.path")}
    elif job_type == JobType.RESTORE_QUARANTINED:
        _only(params, {"id"}, "params")
        clean = {"id": _text(params.get("id"), "params.id", 128)}
    elif job_type == JobType.RUN_SCRIPT:
        _only(params, {"script", "sha256", "args", "timeout", "output_cap"}, "params")
        clean = script(params, "params", scripts)
    else:  # the List* jobs take nothing
        _only(params, set(), "params")
        clean = {}
    investigation = params.get("investigation_id")
    if investigation is not None:
        clean["investigation_id"] = _text(investigation, "params.investigation_id", 128)
    return clean
