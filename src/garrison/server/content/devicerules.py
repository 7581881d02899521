"""The fleet's device rules: a thin admin surface over one rule set of the signed content.

As the block list (content/blocklist.py): ``/admin/v1/device-rules`` reads and writes the
rule set ``device-rules`` (kind ``devices``), each change a new version, delivered by the
signed manifest to every scope (``service.FLEET_RULESETS``) and applied by the agents'
device control at their next check-in.  Order matters: the first matching rule decides, so
a rule is appended, or put at ``position``; an allow-list is its allow rules before a
``block`` rule of the class (``allow usb-storage 0781:5567 4C530001``, then
``block usb-storage *:*``).

Each rule is two lines: ``#= {"id", "comment", "added_by", "added_at"}`` and the rule.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from garrison.common import devices
from garrison.server.audit import service as audit
from garrison.server.audit.actor import Actor
from garrison.server.content import service
from garrison.server.content.models import RuleSet, RuleVersion
from garrison.server.errors import InvalidInputError, NotFoundError
from garrison.server.store.base import utcnow

NAME = "device-rules"
KIND = "devices"
META = "#= "
MAX_COMMENT = 500
MAX_RULES = 10_000
HEADER = "# The fleet's device rules (garrison device-rules); the first match decides.\n"


@dataclass(frozen=True)
class Entry:
    id: int
    rule: devices.DeviceRule
    comment: str
    added_by: str
    added_at: str

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "action": self.rule.action,
            "device_class": self.rule.device_class,
            "vendor": self.rule.vendor,
            "product": self.rule.product,
            "serial": self.rule.serial,
            "rule": self.rule.line(),
            "comment": self.comment,
            "added_by": self.added_by,
            "added_at": self.added_at,
        }


def parse(content: str) -> list[Entry]:
    """The entries of a stored version; a rule line without its metadata (written through
    ``/admin/v1/rules``) gets the next free id."""
    entries: list[Entry] = []
    meta: dict[str, Any] = {}
    for line in content.split("\n"):
        if line.startswith(META):
            try:
                loaded = json.loads(line[len(META) :])
            except ValueError:
                loaded = {}
            meta = loaded if isinstance(loaded, dict) else {}
            continue
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            rule = devices.parse_rule(line)
        except devices.RuleError:
            continue  # stored versions were checked; a newer format's line is passed over
        taken = {e.id for e in entries}
        rid = meta.get("id")
        if not isinstance(rid, int) or rid in taken or rid <= 0:
            rid = max(taken, default=0) + 1
        entries.append(
            Entry(
                rid,
                rule,
                str(meta.get("comment", "")),
                str(meta.get("added_by", "")),
                str(meta.get("added_at", "")),
            )
        )
        meta = {}
    return entries


def render(entries: list[Entry]) -> str:
    lines = [HEADER.rstrip("\n")]
    for e in entries:
        meta = {"id": e.id, "comment": e.comment, "added_by": e.added_by, "added_at": e.added_at}
        lines.append(META + json.dumps(meta, sort_keys=True, ensure_ascii=False))
        lines.append(e.rule.line())
    return "\n".join(lines) + "\n"


def entries(session: Session) -> tuple[int, list[Entry]]:
    """The version in force (0: none yet) and its rules, in order."""
    ruleset = session.scalar(select(RuleSet).where(RuleSet.name == NAME))
    if ruleset is None or not ruleset.latest:
        return 0, []
    latest = session.scalar(
        select(RuleVersion).where(
            RuleVersion.ruleset_id == ruleset.id, RuleVersion.version == ruleset.latest
        )
    )
    return (0, []) if latest is None else (latest.version, parse(latest.content))


def _id(value: Any, field: str) -> str:
    text = value.strip().lower() if isinstance(value, str) else ""
    if not devices.ID4.match(text):
        raise InvalidInputError(f"{field} must be 4 hex digits or *", field=field)
    return text


def rule_of(
    action: Any, device_class: Any, vendor: Any, product: Any, serial: Any
) -> devices.DeviceRule:
    if action not in devices.ACTIONS:
        raise InvalidInputError("action must be allow or block", field="action")
    if device_class not in devices.CLASSES:
        raise InvalidInputError(
            f"device_class must be one of {', '.join(devices.CLASSES)}", field="device_class"
        )
    if serial is not None and (not isinstance(serial, str) or not devices.SERIAL.match(serial)):
        raise InvalidInputError(
            "serial must be 1 to 128 printable ASCII characters", field="serial"
        )
    return devices.DeviceRule(
        str(action), str(device_class), _id(vendor, "vendor"), _id(product, "product"), serial
    )


def add(
    session: Session, actor: Actor, rule: devices.DeviceRule, comment: Any, position: Any = None
) -> tuple[int, Entry]:
    if comment is None:
        comment = ""
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT or "\n" in comment:
        raise InvalidInputError(
            f"comment must be one line of at most {MAX_COMMENT} characters", field="comment"
        )
    _version, current = entries(session)
    if len(current) >= MAX_RULES:
        raise InvalidInputError(f"at most {MAX_RULES} device rules", field="rule")
    if position is None:
        position = len(current)
    if not isinstance(position, int) or isinstance(position, bool) or position < 0:
        raise InvalidInputError("position must be an integer from 0", field="position")
    entry = Entry(
        max((e.id for e in current), default=0) + 1,
        rule,
        comment,
        actor.username[:64],
        service.rfc3339(utcnow()),
    )
    rules = [*current[:position], entry, *current[position:]]
    added = service.add_version(
        session, actor, KIND, NAME, render(rules), f"add {rule.line()}: {comment}"[:500]
    )
    audit.record(session, actor, "device_rules.add", rule.line(), comment=comment)
    return added.version.version, entry


def remove(session: Session, actor: Actor, rule_id: int) -> int:
    _version, current = entries(session)
    kept = [e for e in current if e.id != rule_id]
    if len(kept) == len(current):
        raise NotFoundError(f"there is no device rule {rule_id}")
    gone = next(e for e in current if e.id == rule_id)
    added = service.add_version(
        session, actor, KIND, NAME, render(kept), f"remove {gone.rule.line()}"
    )
    audit.record(session, actor, "device_rules.remove", gone.rule.line())
    return added.version.version
