"""A station's process tree, built from its ``process_started`` / ``process_stopped`` events.

Processes are joined by UniquePID (``unique_pid`` to the children's ``parent_unique_pid``),
never by pid, which the kernel reuses.  A process whose parent is not among the processes
read becomes a root.  Two ways to choose the processes:

- ``root``: that process and its descendants, level by level through the indexed search
  terms (``upid`` / ``pupid`` in ``event_terms``), one query per level;
- otherwise the station's process events in a time window, newest first, through the
  (station, time) index.

Both stop at ``limit`` processes and say so; a chain deeper than ``MAX_DEPTH`` is cut there
too (a fork chain would otherwise nest the answer as deep as it goes).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from garrison.server.errors import InvalidInputError, NotFoundError
from garrison.server.events import partitions
from garrison.server.events.models import Event, EventTerm
from garrison.server.events.service import NEWEST_FIRST, holding
from garrison.server.stations import service as stations

TYPES = ("process_started", "process_stopped")
MAX_DEPTH = 64
MAX_NODES = 10_000
PAGES = 5
# Values per IN list: far below SQLite's bound-parameter limit.
CHUNK = 500
# A UniquePID as agents send it: Garrison's "<boot id>-<pid>-<ticks>", a Windows number or
# GUID; the same bound as any search term.
UNIQUE_PID = re.compile(r"[0-9A-Za-z][0-9A-Za-z._:{}-]{0,254}")


@dataclass
class ProcessNode:
    unique_pid: str
    pid: int | None = None
    parent_unique_pid: str | None = None
    parent_pid: int | None = None
    path: str | None = None
    command_line: str | None = None
    user: str | None = None
    start_time: Any = None
    end_time: Any = None
    exit_code: int | None = None
    exit_signal: int | None = None
    execs: int = 0  # process_started events: a process that exec'd again has several
    children: list[ProcessNode] = field(default_factory=list)
    _started_seq: int = 0

    def take(self, event: Event) -> None:
        """Fold one event in: the latest exec names the image; the stop gives the end."""
        data = event.data
        if event.type == "process_started":
            self.execs += 1
            if event.seq < self._started_seq:
                self._fill(data, overwrite=False)
                return
            self._started_seq = event.seq
            self._fill(data, overwrite=True)
        else:
            self.end_time = data.get("end_time", self.end_time)
            self.exit_code = data.get("exit_code", self.exit_code)
            self.exit_signal = data.get("exit_signal", self.exit_signal)
            # A process seen only at its stop (forked without exec, or started before
            # the window) takes what its stop event knows.
            self._fill(data, overwrite=False)

    def _fill(self, data: dict[str, Any], overwrite: bool) -> None:
        for name, key in (
            ("pid", "pid"),
            ("parent_unique_pid", "parent_unique_pid"),
            ("parent_pid", "parent_pid"),
            ("path", "file_path"),
            ("command_line", "command_line"),
            ("user", "user"),
            ("start_time", "start_time"),
        ):
            value = data.get(key)
            if value is not None and (overwrite or getattr(self, name) is None):
                setattr(self, name, value)


@dataclass
class ProcessTree:
    station_id: int
    roots: list[ProcessNode]
    nodes: int
    limit: int
    truncated: bool
    reason: str | None
    root: str | None = None


def check_unique_pid(value: str) -> str:
    text = value.strip()
    if not UNIQUE_PID.fullmatch(text):
        raise InvalidInputError(
            f"not a UniquePID: {value[:80]!r} (letters, digits and . _ : {{ }} -, "
            "at most 255 characters)",
            field="root",
        )
    return text.lower()  # search terms are stored lower-case


class _Builder:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.nodes: dict[str, ProcessNode] = {}
        self.folded: set[int] = set()
        self.truncated = False
        self.reason: str | None = None

    def add(self, events: Iterable[Event]) -> list[str]:
        """Fold events in; returns the UniquePIDs new to the tree.  Past the limit, the
        events of processes not yet in the tree are left out and the tree says so."""
        new: list[str] = []
        for event in events:
            if event.seq in self.folded:
                continue  # read again by another term (its own UniquePID and its parent's)
            self.folded.add(event.seq)
            upid = str(event.data.get("unique_pid", "")).lower()
            if not upid:
                continue
            node = self.nodes.get(upid)
            if node is None:
                if len(self.nodes) >= self.limit:
                    self.cut(f"more than {self.limit} processes: the limit")
                    continue
                node = self.nodes[upid] = ProcessNode(unique_pid=str(event.data["unique_pid"]))
                new.append(upid)
            node.take(event)
        return new

    def cut(self, reason: str) -> None:
        if not self.truncated:
            self.truncated, self.reason = True, reason

    def link(self, root: str | None) -> list[ProcessNode]:
        """Children under their parents, each list in start order; the roots."""
        roots: list[ProcessNode] = []
        for upid, node in self.nodes.items():
            parent_key = (node.parent_unique_pid or "").lower()
            parent = self.nodes.get(parent_key) if upid != root else None
            if parent is not None and parent_key != upid:
                parent.children.append(node)
            else:
                roots.append(node)
        for node in self.nodes.values():
            node.children.sort(key=_start_key)
        roots.sort(key=_start_key)
        for top in roots:
            self._prune(top)
        return roots

    def _prune(self, top: ProcessNode) -> None:
        """Cut what lies deeper than MAX_DEPTH (iteratively: the chain may be long), and
        any cycle that bad data could make."""
        seen = {id(top)}
        stack = [(top, 1)]
        while stack:
            node, depth = stack.pop()
            if depth >= MAX_DEPTH and node.children:
                node.children = []
                self.cut(f"deeper than {MAX_DEPTH} levels: cut there")
                continue
            kept = []
            for child in node.children:
                if id(child) not in seen:
                    seen.add(id(child))
                    kept.append(child)
                    stack.append((child, depth + 1))
            node.children = kept


def _start_key(node: ProcessNode) -> tuple[str, str]:
    when = node.start_time
    return (when.isoformat() if isinstance(when, dt.datetime) else str(when or ""), node.unique_pid)


def _events_by_term(
    session: Session, station_id: int, role: str, values: list[str], window: _Window
) -> list[Event]:
    found: list[Event] = []
    by_time = partitions.is_postgresql(session)
    for i in range(0, len(values), CHUNK):
        terms = select(EventTerm.seq).where(
            EventTerm.role == role, EventTerm.value.in_(values[i : i + CHUNK])
        )
        query = select(Event).where(
            holding(terms, by_time), Event.station_id == station_id, Event.type.in_(TYPES)
        )
        found += session.scalars(window.apply(query).order_by(Event.seq))
    return found


@dataclass(frozen=True)
class _Window:
    since: dt.datetime | None
    until: dt.datetime | None

    def apply(self, query: Any) -> Any:
        if self.since is not None:
            query = query.where(Event.time >= self.since)
        if self.until is not None:
            query = query.where(Event.time < self.until)
        return query


def _newest(session: Session, station_id: int, window: _Window, builder: _Builder) -> None:
    """The newest processes of the window: its process events newest first, in pages, until
    the tree is full.  Each process has a few events (an exec or two, a stop), so at most
    ``PAGES`` pages of twice the limit are read; past that the tree says it was cut."""
    query = window.apply(select(Event).where(Event.station_id == station_id, Event.type.in_(TYPES)))
    page = 2 * builder.limit
    for number in range(PAGES):
        rows = list(
            session.scalars(query.order_by(*NEWEST_FIRST).limit(page).offset(number * page))
        )
        builder.add(rows)
        if len(rows) < page or builder.truncated:
            return
    builder.cut(f"only the newest {PAGES * page} process events were read")


def process_tree(
    session: Session,
    station_id: int,
    *,
    root: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int = 1000,
) -> ProcessTree:
    stations.get(session, station_id)  # NotFoundError for an unknown station
    window = _Window(since, until)
    builder = _Builder(limit)
    wanted = check_unique_pid(root) if root is not None else None
    if wanted is not None:
        frontier = builder.add(_events_by_term(session, station_id, "upid", [wanted], window))
        if not frontier:
            raise NotFoundError(f"no process {root!r} on station {station_id}")
        seen = set(frontier)
        while frontier and not builder.truncated:
            children = _events_by_term(session, station_id, "pupid", frontier, window)
            frontier = [u for u in builder.add(children) if u not in seen]
            seen.update(frontier)
            # A stop event may lack the parent (the agent did not know it): the children's
            # own events by their UniquePID complete them.
            builder.add(_events_by_term(session, station_id, "upid", frontier, window))
    else:
        _newest(session, station_id, window, builder)
    roots = builder.link(wanted)
    return ProcessTree(
        station_id=station_id,
        roots=roots,
        nodes=len(builder.nodes),
        limit=limit,
        truncated=builder.truncated,
        reason=builder.reason,
        root=root,
    )
