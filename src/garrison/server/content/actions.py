"""Administrative use cases on content, each one transaction (audited)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from garrison.common.clamav_cvd import ClamAVKeys
from garrison.server.audit.actor import Actor
from garrison.server.content import blocklist, clamav_import, devicerules, service, uninstall
from garrison.server.content.delivery import ContentDelivery
from garrison.server.content.models import ContentAssignment, RuleSet, RuleVersion


def add_version(
    content: ContentDelivery,
    actor: Actor,
    kind: Any,
    name: Any,
    text: Any,
    comment: Any = "",
) -> service.Added:
    content.initialise_once()
    with content.db.transaction() as session:
        return service.add_version(session, actor, kind, name, text, comment)


def set_approval(
    content: ContentDelivery, actor: Actor, name: str, version: int, approved: bool
) -> tuple[RuleSet, RuleVersion]:
    content.initialise_once()
    with content.db.transaction() as session:
        found = service.set_approval(session, actor, name, version, approved)
        return service.ruleset_by_name(session, name), found


def set_assignment(
    content: ContentDelivery,
    actor: Actor,
    group: str | None,
    rules: Any,
    allow_unsigned_sources: Any = False,
    priority: Any = 0,
) -> tuple[ContentAssignment, str | None]:
    content.initialise_once()
    with content.db.transaction() as session:
        stored = service.set_assignment(
            session, actor, group, rules, allow_unsigned_sources, priority
        )
        return stored, group


def unset_group_assignment(content: ContentDelivery, actor: Actor, group: str) -> None:
    content.initialise_once()
    with content.db.transaction() as session:
        service.unset_group_assignment(session, actor, group)


def rotate_key(content: ContentDelivery, actor: Actor, overlap_hours: Any) -> dict[str, Any]:
    return content.rotate(actor, overlap_hours)


def import_clamav(
    content: ContentDelivery,
    actor: Actor,
    filename: str,
    data: bytes,
    keys: ClamAVKeys,
    name: str | None = None,
    comment: str = "",
) -> clamav_import.Imported:
    """A ClamAV container's rule sets, all in one transaction (all or none)."""
    content.initialise_once()
    with content.db.transaction() as session:
        return clamav_import.import_container(session, actor, filename, data, keys, name, comment)


def blocklist_add(
    content: ContentDelivery, actor: Actor, sha256: Any, comment: Any
) -> tuple[int, blocklist.Entry]:
    """Put a hash on the fleet block list: a new version of its rule set (a new serial)."""
    content.initialise_once()
    with content.db.transaction() as session:
        return blocklist.add(session, actor, sha256, comment)


def blocklist_remove(content: ContentDelivery, actor: Actor, sha256: Any) -> int:
    content.initialise_once()
    with content.db.transaction() as session:
        return blocklist.remove(session, actor, sha256)


def device_rule_add(
    content: ContentDelivery,
    actor: Actor,
    rule: Any,
    comment: Any,
    position: Any = None,
) -> tuple[int, devicerules.Entry]:
    """Add a device rule (at ``position``, else last): a new version of its rule set."""
    content.initialise_once()
    with content.db.transaction() as session:
        return devicerules.add(session, actor, rule, comment, position)


def device_rule_remove(content: ContentDelivery, actor: Actor, rule_id: int) -> int:
    content.initialise_once()
    with content.db.transaction() as session:
        return devicerules.remove(session, actor, rule_id)


def uninstall_token(
    content: ContentDelivery, actor: Actor, station_id: int, seconds: int
) -> tuple[str, dt.datetime]:
    """A signed per-station uninstall token (audited)."""
    content.initialise_once()
    with content.db.transaction() as session:
        return uninstall.issue(content, session, actor, station_id, seconds)
