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
from garrison.server.events.tree import ProcessNode, ProcessTree
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
            handled=view.counters.handled,
            failures=view.counters.failures,
            last_error=view.counters.last_error,
            last_error_at=view.counters.last_error_at,
        )
    )


def process_node(node: ProcessNode) -> s.ProcessNodeOut:
    """Recursive: the tree is at most ``events.tree.MAX_DEPTH`` deep."""
    return s.ProcessNodeOut(
        unique_pid=node.unique_pid,
        pid=node.pid,
        parent_unique_pid=node.parent_unique_pid,
        parent_pid=node.parent_pid,
        path=node.path,
        command_line=node.command_line,
        user=node.user,
        start_time=node.start_time,
        end_time=node.end_time,
        exit_code=node.exit_code,
        exit_signal=node.exit_signal,
        execs=node.execs,
        children=[process_node(child) for child in node.children],
    )


def process_tree(tree: ProcessTree) -> s.ProcessTreeOut:
    return s.ProcessTreeOut(
        station_id=tree.station_id,
        root=tree.root,
        limit=tree.limit,
        nodes=tree.nodes,
        truncated=tree.truncated,
        reason=tree.reason,
        roots=[process_node(node) for node in tree.roots],
    )
