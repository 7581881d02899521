"""The ``eset`` profile's record: ESET PROTECT's keys, vocabulary and spellings.

What real ESET PROTECT servers export and the parsers built for them (Microsoft Sentinel,
Wazuh, Elastic, Sekoia, Datadog, QRadar, Exabeam) read, beyond the keys the types share with
Garrison's own profile: ``group_name``, ``group_description`` and ``os_name`` on every type,
``action``/``handled`` on firewall events, ``handled`` on HIPS events, the two severity scores
on Enterprise Inspector alerts, the server's own identity on ``Audit_Event`` and the audit log
in ESET's words, ``object_type`` ``File`` and upper-case hashes.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import socket
import uuid
from dataclasses import dataclass
from typing import Any

from garrison.common.vocabulary import Severity

INSPECT_TYPE = "EnterpriseInspectorAlert_Event"
# The order ESET writes the common keys in.
COMMON_ORDER = (
    "event_type",
    "ipv4",
    "ipv6",
    "hostname",
    "group_name",
    "os_name",
    "group_description",
    "source_uuid",
    "occured",
    "severity",
)
# ESET's "All" static group holds every computer; a Garrison group is one level below it.
ALL_GROUP = "All"
# Enterprise Inspector's 0-100 scores, from the alert's severity when the station gave none.
SEVERITY_SCORE: dict[str, int] = {
    Severity.INFORMATION: 10,
    Severity.NOTICE: 30,
    Severity.WARNING: 50,
    Severity.ERROR: 70,
    Severity.CRITICAL: 90,
    Severity.FATAL: 100,
}
_ALLOWED_WORDS = ("allow", "permit", "accept", "pass")
_HANDLED_WORDS = ("block", "deny", "denied", "drop", "reject", "prevent", "kill", "quarantin")


@dataclass(frozen=True)
class ServerIdentity:
    """The ESET server's own keys on ``Audit_Event``: its host name, address and UUID."""

    hostname: str
    ipv4: str | None
    uuid: str


def _own_ipv4(hostname: str) -> str | None:
    try:
        infos = socket.getaddrinfo(hostname, None, socket.AF_INET)
    except OSError:
        return None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_loopback:
            return str(address)
    return None


def server_identity(hostname: str) -> ServerIdentity:
    """This server as an ESET server describes itself; the UUID is stable per host name."""
    return ServerIdentity(
        hostname, _own_ipv4(hostname), str(uuid.uuid5(uuid.NAMESPACE_DNS, hostname or "garrison"))
    )


@functools.cache
def local_server() -> ServerIdentity:
    """This server's identity (looked up once: its address needs a resolver call)."""
    return server_identity(socket.gethostname() or "garrison")


def pid() -> int:
    return os.getpid()


def group_path(group: str) -> str:
    return f"{ALL_GROUP}/{group}" if group else ALL_GROUP


def firewall_action(data: dict[str, Any]) -> str:
    """ESET's firewall ``action``: ``Allowed`` when the event says so, else ``Blocked`` (the
    personal firewall logs what it stopped)."""
    said = " ".join(str(data.get(k) or "") for k in ("action", "event")).lower()
    return "Allowed" if any(w in said for w in _ALLOWED_WORDS) else "Blocked"


def hips_handled(action: Any) -> bool:
    text = str(action or "").lower()
    return any(w in text for w in _HANDLED_WORDS)


# The audit log in ESET's words.  Garrison tags an entry ``<domain>.<action>``.
AUDIT_DOMAINS: dict[str, str] = {
    "auth": "Native user",
    "user": "Native user",
    "group": "Static group",
    "station": "Computer",
    "job": "Client task",
    "enrollment_key": "Enrollment",
    "export_target": "Server settings",
    "settings": "Server settings",
    "events": "Server settings",
    "procedure": "Server task",
    "sensor_policy": "Policy",
    "config": "Policy",
    "alert": "Detection",
}
# Garrison's action → (ESET's action, the verb its detail sentence starts with).
AUDIT_ACTIONS: dict[str, tuple[str, str]] = {
    "create": ("Create", "Creating"),
    "delete": ("Delete", "Deleting"),
    "update": ("Edit", "Editing"),
    "set": ("Edit", "Editing"),
    "unset": ("Edit", "Editing"),
    "desired": ("Edit", "Editing"),
    "retention": ("Edit", "Editing"),
    "enable": ("Edit", "Enabling"),
    "disable": ("Edit", "Disabling"),
    "move": ("Edit", "Moving"),
    "assign": ("Edit", "Assigning"),
    "login": ("Login attempt", "Authenticating"),
    "login_failed": ("Login attempt", "Authenticating"),
    "login_locked": ("Login attempt", "Locking out"),
    "login_throttled": ("Login attempt", "Throttling"),
    "logout": ("Logout", "Logging out"),
    "cancel": ("Cancel", "Cancelling"),
    "revoke": ("Delete", "Revoking"),
    "acknowledge": ("Mark as resolved", "Resolving"),
    "test": ("Run", "Running"),
    "bootstrap": ("Create", "Creating"),
    "admin_token": ("Create", "Issuing a token for"),
}


def _words(tag: str) -> str:
    return tag.replace("_", " ")


def audit(data: dict[str, Any]) -> dict[str, Any]:
    """An audit entry (Garrison's ``group.create`` tags) in ESET's vocabulary: a domain such
    as ``Native user``, an action such as ``Login attempt`` or ``Create``, a sentence as the
    detail (``Creating static group 'audited'.``)."""
    tag = str(data.get("action") or "")
    prefix, _, suffix = tag.partition(".")
    domain = AUDIT_DOMAINS.get(prefix) or _words(prefix).capitalize() or "Server"
    action, verb = AUDIT_ACTIONS.get(suffix) or (
        _words(suffix).capitalize() or "Edit",
        _words(suffix).capitalize() or "Editing",
    )
    target = str(data.get("target") or "")
    user = str(data.get("user") or "")
    if prefix == "auth":  # ESET: the account tried is the target, no one acted yet
        target, user = target or user, ""
    subject = domain.lower()
    detail = f"{verb} {subject} '{target}'." if target else f"{verb} {subject}."
    result = str(data.get("result") or "Success")
    return {
        "domain": domain,
        "action": action,
        "target": target,
        "detail": detail,
        "user": user,
        "result": result,
    }
