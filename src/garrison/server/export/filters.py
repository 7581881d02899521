"""Which events a target forwards: its types, severities and station groups."""

from __future__ import annotations

from collections.abc import Set

from garrison.common.vocabulary import is_severity, severity_rank
from garrison.server.events.models import Event
from garrison.server.export.config import TargetOptions

HIPS_TYPES = ("hips_event", "preventive_protection_report")


def forwarded(options: TargetOptions, event: Event, groups: Set[str]) -> bool:
    """Whether ``event``, of a station in ``groups``, passes the target's filters."""
    o = options
    if o.event_types and event.type not in o.event_types:
        return False
    if event.severity < severity_rank(o.min_severity):
        return False
    if event.type in HIPS_TYPES:
        # A HIPS event's own level, when it gives one, says more than the type's severity.
        level = event.data.get("severity") if event.type == "hips_event" else None
        rank = severity_rank(level) if is_severity(level) else event.severity
        if rank < severity_rank(o.hips_min_severity):
            return False
    return not (o.groups and not (groups & set(o.groups)))
