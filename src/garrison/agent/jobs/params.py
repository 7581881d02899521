"""The agent's own check of a response job's parameters (the server validated them when the
job was created; an agent never trusts that): each reader raises a ``BAD_JOB`` JobError
naming the parameter."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from garrison.agent.errors import JobError
from garrison.agent.jobs import codes
from garrison.agent.jobstore import Job

HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class Reply:
    """What a response job answers: the Runjobs message and its structured ``result``."""

    message: str
    result: dict[str, Any] = field(default_factory=dict)


def bad(message: str) -> JobError:
    return JobError(message, codes.BAD_JOB)


def obj(job: Job) -> dict[str, Any]:
    if not isinstance(job.obj, dict):
        raise bad(f"the {job.type} job has no parameters object")
    return job.obj


def integer(
    params: dict[str, Any],
    key: str,
    default: int | None = None,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad(f"{key} must be an integer")
    if minimum is not None and value < minimum:
        raise bad(f"{key} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise bad(f"{key} must be at most {maximum}")
    return value


def boolean(params: dict[str, Any], key: str, default: bool = False) -> bool:
    value = params.get(key, default)
    if not isinstance(value, bool):
        raise bad(f"{key} must be true or false")
    return value


def text(params: dict[str, Any], key: str, *, max_length: int = 4096) -> str:
    value = params.get(key)
    if not isinstance(value, str) or not value:
        raise bad(f"{key} must be a non-empty string")
    if len(value) > max_length or "\x00" in value:
        raise bad(f"{key} is longer than {max_length} characters or holds a NUL")
    return value


def sha256(params: dict[str, Any], key: str = "sha256") -> str:
    value = params.get(key)
    if not isinstance(value, str) or not HEX64.match(value.lower()):
        raise bad(f"{key} must be 64 hex digits")
    return value.lower()


def absolute_path(params: dict[str, Any], key: str = "path") -> str:
    value = text(params, key)
    if not value.startswith("/"):
        raise bad(f"{key} must be an absolute path: {value[:200]!r}")
    return value


def string_list(
    params: dict[str, Any], key: str, *, max_items: int, max_length: int, default: list[str]
) -> list[str]:
    value = params.get(key, default)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad(f"{key} must be a list of strings")
    if len(value) > max_items:
        raise bad(f"{key} has {len(value)} items, more than {max_items}")
    for item in value:
        if len(item) > max_length or "\x00" in item:
            raise bad(f"an item of {key} is longer than {max_length} characters or holds a NUL")
    return list(value)


def exactly_one(params: dict[str, Any], keys: tuple[str, ...]) -> str:
    given = [k for k in keys if params.get(k) is not None]
    if len(given) != 1:
        raise bad(f"give exactly one of {', '.join(keys)} (given: {', '.join(given) or 'none'})")
    return given[0]
