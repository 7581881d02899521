"""The words the server, the agent and the CLI share: severities, roles, job types, job
statuses, job priorities and agent kinds, each declared once.

The values are the strings (and numbers) on the wire, in the database and in JSON: a
``StrEnum`` member *is* its string, so comparing with, storing or serialising a member gives
the same bytes as the literal it replaces.  Declaration order is the order messages list them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import TypeGuard


def spoken(words: Iterable[str]) -> str:
    """``a, b or c``: how help texts and messages list a vocabulary."""
    items = list(words)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


class Severity(enum.StrEnum):
    """An event's severity, least to most severe; the event log stores its rank."""

    INFORMATION = "Information"
    NOTICE = "Notice"
    WARNING = "Warning"
    ERROR = "Error"
    CRITICAL = "Critical"
    FATAL = "Fatal"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]

    @classmethod
    def of_rank(cls, rank: int) -> Severity:
        """The severity stored as ``rank``; IndexError for a rank no severity has."""
        return _SEVERITY_BY_RANK[rank]


_SEVERITY_BY_RANK: tuple[Severity, ...] = tuple(Severity)
_SEVERITY_RANK: dict[str, int] = {s.value: i for i, s in enumerate(_SEVERITY_BY_RANK)}


def is_severity(name: object) -> TypeGuard[str]:
    """Whether ``name`` is a severity's name (``x in Severity`` raises on Python 3.11)."""
    return isinstance(name, str) and name in _SEVERITY_RANK


def severity_rank(name: str) -> int:
    """0 for Information up to 5 for Fatal; ValueError for a name that is no severity.

    A dict look-up, not an enum conversion: it runs once per ingested event.
    """
    try:
        return _SEVERITY_RANK[name]
    except KeyError:
        raise ValueError(f"unknown severity {name!r}") from None


class Role(enum.StrEnum):
    """What an admin-API user may do; each role may also do what the roles below it may."""

    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"

    @property
    def rank(self) -> int:
        return _ROLE_RANK[self]


_ROLE_RANK: dict[str, int] = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


class JobType(enum.StrEnum):
    """What a job asks an agent to do (the Armadito ``job_type``)."""

    SCAN = "Scan"
    UPDATE_SIGNATURES = "UpdateSignatures"
    ISOLATE_NETWORK = "IsolateNetwork"
    REJOIN_NETWORK = "RejoinNetwork"
    SELF_TEST = "SelfTest"
    UNINSTALL = "Uninstall"
    # Live response and hunts (issue 17; RESPONSE-WIRE.md): Garrison agents only.
    KILL_PROCESS = "KillProcess"
    LIST_PROCESSES = "ListProcesses"
    LIST_CONNECTIONS = "ListConnections"
    LIST_SERVICES = "ListServices"
    LIST_SESSIONS = "ListSessions"
    GET_FILE = "GetFile"
    DELETE_FILE = "DeleteFile"
    QUARANTINE_FILE = "QuarantineFile"
    LIST_QUARANTINE = "ListQuarantine"
    RESTORE_QUARANTINED = "RestoreQuarantined"
    RUN_SCRIPT = "RunScript"
    HUNT = "Hunt"
    # Signed self-update (issue 21): Garrison agents only.
    UPGRADE_AGENT = "UpgradeAgent"


class JobStatus(enum.StrEnum):
    """Where a job stands on one target station."""

    QUEUED = "queued"
    # Handed to a Garrison agent by Getjobs, not yet acknowledged by its CLOUD_NOTIFICATION
    # (an Armadito agent's jobs go from queued straight to downloaded).
    SENT = "sent"
    DOWNLOADED = "downloaded"
    SUCCESSFUL = "successful"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobPriority(enum.IntEnum):
    """A job's priority: the number is stored and sent (Armadito ``job_priority``)."""

    LOW = 0
    MEDIUM = 1
    HIGH = 2
    URGENT = 3

    @property
    def label(self) -> str:
        return self.name.lower()


class AgentKind(enum.StrEnum):
    """Which agent a station runs: it decides which job types the station can be sent."""

    ARMADITO = "armadito"
    GARRISON = "garrison"

    @property
    def job_types(self) -> frozenset[JobType]:
        return _JOB_TYPES_BY_KIND[self]


# An Armadito agent only knows Scan, and must never be handed a job it cannot parse.
_JOB_TYPES_BY_KIND: dict[AgentKind, frozenset[JobType]] = {
    AgentKind.ARMADITO: frozenset({JobType.SCAN}),
    AgentKind.GARRISON: frozenset(JobType),
}
