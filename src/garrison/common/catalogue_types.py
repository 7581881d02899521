"""The shapes the event catalogue is written in."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Literal

from garrison.common.vocabulary import Severity

FieldType = Literal[
    "string",
    "integer",
    "number",
    "boolean",
    "timestamp",
    "ip",
    "mac",
    "md5",
    "sha1",
    "sha256",
    "object",
]
# Where an event comes from: a station (agent), the server only, or either.
Origin = Literal["station", "server", "both"]
# Field roles searchable with GET /admin/v1/events (hash=, process=, path=, user=, port=,
# unique_pid=, parent_unique_pid=).  A role is at most 8 characters (event_terms.role):
# "upid" is a process's UniquePID, "pupid" its parent's.
Search = Literal["hash", "process", "path", "user", "host", "ip", "port", "upid", "pupid"]


@dataclass(frozen=True)
class Field:
    name: str
    type: FieldType = "string"
    required: bool = False
    doc: str = ""
    search: Search | None = None
    # For "object" fields: the keys it may hold (all strings); None: any.
    keys: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Family:
    """Indexed fields (``component_0``, ``time_0``, ``component_1``…) with a ``count``."""

    count: str
    members: tuple[Field, ...]
    max_items: int = 1000


@dataclass(frozen=True)
class EventType:
    name: str
    source: str  # which seed declares it
    origin: Origin
    doc: str
    fields: tuple[Field, ...] = ()
    families: tuple[Family, ...] = ()
    procedure: str | None = None  # the Lua procedure run for it (Dr.Web events)
    severity: Severity = Severity.INFORMATION
    eset_type: str | None = None  # the ESET PROTECT export type it maps to
    telemetry: bool = False  # endpoint telemetry: short default retention
    # The field that holds the event's time, when the event carries one.
    time_field: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @functools.cached_property
    def _by_name(self) -> dict[str, Field]:
        return {f.name: f for f in self.fields}

    def field(self, name: str) -> Field | None:
        return self._by_name.get(name)
