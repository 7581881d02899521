"""The response fields a row does not hold.

Response models read rows themselves (``FromRow``: pydantic's ``from_attributes``); this
module is only for the responses that add computed fields, which it supplies with
:class:`Computed`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from garrison.common.vocabulary import Severity
from garrison.server.adminapi import schemas as s
from garrison.server.enrollment.models import EnrollmentKey
from garrison.server.enrollment.service import key_status
from garrison.server.events.models import Event
from garrison.server.export.service import TargetView, shown_options
from garrison.server.jobs.service import JobView
from garrison.server.stations.models import Station
from garrison.server.stations.service import is_online


class Computed:
    """A row as a response model reads it, with some attributes computed or renamed:
    ``Computed(row, online=True).online`` is ``True``, any other attribute is the row's."""

    __slots__ = ("_extra", "_row")

    def __init__(self, row: object, **extra: Any) -> None:
        self._row = row
        self._extra = extra

    def __getattr__(self, name: str) -> Any:
        if name in self._extra:
            return self._extra[name]
        return getattr(self._row, name)


def key(k: EnrollmentKey, text: str | None = None) -> s.KeyOut:
    """``text``: the full key, given only when it has just been created."""
    return s.KeyOut.model_validate(
        Computed(
            k,
            key=text,
            prefix=k.key_prefix,
            uses=k.uses_total,
            used=k.uses_count,
            status=key_status(k),
        )
    )


def station(st: Station, offline_after: int, seen: dt.datetime | None = None) -> s.StationOut:
    """``seen``: a check-in this node has noted but not yet written (see PresenceTracker)."""
    last_seen = max(st.last_seen, seen) if seen is not None else st.last_seen
    return s.StationOut.model_validate(
        Computed(st, last_seen=last_seen, online=is_online(st, offline_after, seen))
    )


def job(view: JobView) -> s.JobOut:
    return s.JobOut.model_validate(
        Computed(view.job, status_counts=view.status_counts, targets=view.targets)
    )


def public_id(e: Event) -> str:
    """A station's event ids are stored scoped to it (``s<station>:<id>``); show its own."""
    scope = f"s{e.station_id}:"
    return e.uid[len(scope) :] if e.origin == "station" and e.uid.startswith(scope) else e.uid


def event(e: Event) -> s.EventOut:
    return s.EventOut.model_validate(
        Computed(e, id=public_id(e), severity=Severity.of_rank(e.severity))
    )


def export_target(view: TargetView) -> s.ExportTargetOut:
    t = view.target
    return s.ExportTargetOut.model_validate(
        Computed(
            t,
            options=shown_options(t),
            position=view.position,
            lag=view.lag,
        )
    )
