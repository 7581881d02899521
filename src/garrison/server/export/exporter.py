"""Delivering the event log to export targets.

One worker thread per enabled target reads the log through the target's own cursor,
filters, aggregates, formats and sends, then advances the cursor past exactly what was
delivered: a SIEM that is down or slow builds a backlog that drains, in order, when it
returns.  On PostgreSQL the cursor row stays locked while a batch is sent, so with several
nodes one node at a time feeds a target; on SQLite (one node) the batch is sent outside any
write transaction, so a slow SIEM never holds up ingestion.
"""

from __future__ import annotations

import datetime as dt
import functools
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from garrison.common.catalogue import CATALOGUE
from garrison.common.vocabulary import is_severity, severity_rank
from garrison.server.events.models import ConsumerCursor, Event
from garrison.server.events.service import last_position, read_after
from garrison.server.export import formats, syslog
from garrison.server.export.config import TargetOptions
from garrison.server.export.mapping import AGGREGATE_KEYS, Record, StationInfo, build
from garrison.server.export.models import ExportTarget
from garrison.server.export.service import cursor_name
from garrison.server.export.transports import (
    FileTransport,
    HttpTransport,
    RelpTransport,
    StreamTransport,
    Transport,
    TransportError,
    UdpTransport,
    tls_context,
)
from garrison.server.metrics import Metrics
from garrison.server.stations.models import Group, Station, station_groups
from garrison.server.store.base import utcnow
from garrison.server.store.engine import Database

log = structlog.get_logger("garrison.export")
HIPS_TYPES = ("hips_event", "preventive_protection_report")
SYSLOG_TRANSPORTS = ("udp", "tcp", "tls", "relp")
# Transports that carry one message per unit (no newline or octet framing of their own).
UNFRAMED = ("udp", "relp")


@dataclass(frozen=True)
class Target:
    id: int
    name: str
    format: str
    transport: str
    host: str
    port: int
    path: str
    url: str
    options: TargetOptions
    version: dt.datetime

    @classmethod
    def of(cls, row: ExportTarget) -> Target:
        return cls(
            row.id,
            row.name,
            row.format,
            row.transport,
            row.host,
            row.port,
            row.path,
            row.url,
            TargetOptions.model_validate(row.options),
            row.updated_at,
        )


def make_transport(target: Target) -> Transport:
    """The target's transport; a TLS file that cannot be read is a TransportError (retried,
    and named in the test-send answer)."""
    try:
        return _make_transport(target)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise TransportError(f"cannot set up the {target.transport} transport: {exc}") from exc


def _make_transport(target: Target) -> Transport:
    o = target.options
    if target.transport == "udp":
        return UdpTransport(target.host, target.port)
    if target.transport == "tcp":
        return StreamTransport(target.host, target.port)
    if target.transport == "tls":
        return StreamTransport(target.host, target.port, tls_context(o.model_dump()))
    if target.transport == "relp":
        tls = tls_context(o.model_dump()) if o.relp_tls else None
        return RelpTransport(target.host, target.port, tls)
    if target.transport == "file":
        return FileTransport(target.path, o.file_max_bytes, o.file_keep)
    return HttpTransport(target.url, o.http_headers, verify=o.tls_ca or o.tls_verify)


def encoder(target: Target) -> Any:
    o = target.options
    formatter = formats.FORMATS[target.format]
    if target.format == "leef2":
        formatter = functools.partial(formats.leef2, delimiter=o.leef_delimiter)

    def wrap(record: Record) -> bytes:
        payload = formatter(record)
        if target.transport not in SYSLOG_TRANSPORTS:
            return payload.encode("utf-8")
        return syslog.envelope(
            payload,
            severity=record.severity,
            time=record.time,
            kind=o.envelope,
            msgid=record.event_type,
            bom=o.bom,
            max_bytes=1 << 30,
        )

    def encode(record: Record) -> bytes:
        message = wrap(record)
        # Too long: shorten the longest text fields rather than cut the record, so the
        # message stays one parseable record of at most max_message_bytes.
        for _ in range(12):
            if len(message) <= o.max_message_bytes:
                break
            texts = [(len(v), k) for k, v in record.fields.items() if isinstance(v, str)]
            if not texts:
                break
            size, longest = max(texts)
            excess = len(message) - o.max_message_bytes
            keep = max(min(size - excess - 16, size // 2), 0)
            fields = {**record.fields, longest: record.fields[longest][:keep] + "…"}
            record = Record(
                record.event_type, record.garrison_type, record.severity, record.time, fields
            )
            message = wrap(record)
        if target.transport not in SYSLOG_TRANSPORTS:
            return message
        if len(message) > o.max_message_bytes:
            message = message[: o.max_message_bytes]
        return syslog.frame(message, "none" if target.transport in UNFRAMED else o.framing)

    return encode


def heartbeat_record() -> Record:
    now = utcnow()
    return Record(
        "HEARTBEAT",
        "HEARTBEAT",
        "Information",
        now,
        {
            "event_type": "HEARTBEAT",
            "hostname": syslog.HOSTNAME,
            "occured": now.strftime("%d-%b-%Y %H:%M:%S"),
            "severity": "Information",
        },
    )


class TargetWorker:
    def __init__(self, db: Database, target: Target, metrics: Metrics) -> None:
        self.db = db
        self.target = target
        self.metrics = metrics
        self.encode = encoder(target)
        self.transport: Transport | None = None
        self.stop_flag = threading.Event()
        self.wake_flag = threading.Event()
        self.last_send = time.monotonic()
        self.thread = threading.Thread(target=self.loop, name=f"export-{target.id}", daemon=True)
        labels = (target.name,)
        self.sent = metrics.export_sent.labels(*labels)
        self.failed = metrics.export_failed.labels(*labels)
        self.dropped = metrics.export_dropped.labels(*labels)
        self.lag = metrics.export_lag.labels(*labels)

    # -- one batch --------------------------------------------------------------------

    def _stations(self, session: Session, ids: set[int]) -> dict[int, tuple[StationInfo, set[str]]]:
        if not ids:
            return {}
        info: dict[int, tuple[StationInfo, set[str]]] = {
            sid: (StationInfo(uuid, hostname, address), set())
            for sid, uuid, hostname, address in session.execute(
                select(Station.id, Station.uuid, Station.hostname, Station.address).where(
                    Station.id.in_(ids)
                )
            )
        }
        if self.target.options.groups:
            for sid, name in session.execute(
                select(station_groups.c.station_id, Group.name)
                .join(Group, Group.id == station_groups.c.group_id)
                .where(station_groups.c.station_id.in_(ids))
            ):
                if sid in info:
                    info[sid][1].add(name)
        return info

    def _wanted(self, event: Event, groups: set[str]) -> bool:
        o = self.target.options
        if o.event_types and event.type not in o.event_types:
            return False
        if event.severity < severity_rank(o.min_severity):
            return False
        if event.type in HIPS_TYPES:
            level = event.data.get("severity") if event.type == "hips_event" else None
            rank = severity_rank(level) if is_severity(level) else event.severity
            if rank < severity_rank(o.hips_min_severity):
                return False
        return not (o.groups and not (groups & set(o.groups)))

    def _records(self, session: Session, batch: Sequence[Event]) -> list[tuple[int, Record]]:
        """(index of the first event it stands for, record), aggregated."""
        stations = self._stations(session, {e.station_id for e in batch if e.station_id})
        out: list[tuple[int, Record]] = []
        folded: dict[tuple[Any, ...], int] = {}
        window = self.target.options.aggregation_window_seconds
        for index, event in enumerate(batch):
            if event.type not in CATALOGUE:
                continue
            station, groups = stations.get(event.station_id or -1, (StationInfo(), set()))
            if not self._wanted(event, groups):
                continue
            record = build(event.type, event.severity, event.time, event.data, station)
            keys = AGGREGATE_KEYS.get(record.event_type)
            if keys is not None:
                count = int(record.fields.get("aggregate_count") or 1)
                record = Record(
                    record.event_type,
                    record.garrison_type,
                    record.severity,
                    record.time,
                    {**record.fields, "aggregate_count": count},
                )
                signature = (
                    event.station_id,
                    record.event_type,
                    *(repr(record.fields.get(k)) for k in keys),
                )
                if window > 0 and signature in folded:
                    slot = folded[signature]
                    first_index, first = out[slot]
                    fields = {
                        **first.fields,
                        "aggregate_count": int(first.fields["aggregate_count"]) + count,
                    }
                    out[slot] = (
                        first_index,
                        Record(
                            first.event_type,
                            first.garrison_type,
                            first.severity,
                            first.time,
                            fields,
                        ),
                    )
                    continue
                folded[signature] = len(out)
            out.append((index, record))
        return out

    def _ready(self, batch: list[Event]) -> list[Event]:
        """With aggregation, a batch is cut only once its first event is a window old, so
        identical events of that window travel as one (ESET aggregates per replication)."""
        window = self.target.options.aggregation_window_seconds
        if window <= 0 or not batch:
            return batch
        cutoff = utcnow() - dt.timedelta(seconds=window)
        if batch[0].received_at > cutoff:
            return []
        horizon = batch[0].received_at + dt.timedelta(seconds=window)
        return [e for e in batch if e.received_at <= horizon]

    def _deliver(self, session: Session, batch: list[Event]) -> tuple[int, str | None]:
        records = self._records(session, batch)
        if not records:
            return len(batch), None
        messages = [self.encode(record) for _, record in records]
        try:
            if self.transport is None:
                self.transport = make_transport(self.target)
            sent = self.transport.send(messages)
        except TransportError as exc:
            self.sent.inc(exc.sent)
            consumed = records[exc.sent][0] if exc.sent < len(records) else len(batch)
            return consumed, str(exc)
        self.sent.inc(sent)
        self.last_send = time.monotonic()
        return len(batch), None

    def _drop_backlog(self, session: Session, position: int) -> int:
        limit = self.target.options.max_backlog
        if limit <= 0:
            return position
        newest = last_position(session)
        if newest - position <= limit:
            return position
        keep_from = int(
            session.scalar(
                select(Event.seq)
                .where(Event.seq > position)
                .order_by(Event.seq.desc())
                .offset(limit)
                .limit(1)
            )
            or position
        )
        dropped = int(
            session.scalar(
                select(func.count())
                .select_from(Event)
                .where(Event.seq > position, Event.seq <= keep_from)
            )
            or 0
        )
        if dropped:
            self.dropped.inc(dropped)
            log.warning(
                "export backlog over its bound: oldest events dropped",
                target=self.target.name,
                dropped=dropped,
            )
        return keep_from

    def run_once(self) -> tuple[int, str | None]:
        name = cursor_name(self.target.id)
        size = self.target.options.batch_size
        if self.db.backend == "postgresql":
            with self.db.transaction() as session:
                position = session.scalar(
                    select(ConsumerCursor.position)
                    .where(ConsumerCursor.name == name)
                    .with_for_update()
                )
                if position is None:
                    return 0, None
                start = self._drop_backlog(session, int(position))
                batch = self._ready(read_after(session, start, size))
                self.lag.set(last_position(session) - start)
                consumed, error = self._deliver(session, batch) if batch else (0, None)
                end = batch[consumed - 1].seq if consumed else start
                if end != position:
                    session.execute(
                        update(ConsumerCursor)
                        .where(ConsumerCursor.name == name)
                        .values(position=end, updated_at=utcnow())
                    )
                return consumed, error
        with self.db.reading() as session:
            position = session.scalar(
                select(ConsumerCursor.position).where(ConsumerCursor.name == name)
            )
            if position is None:
                return 0, None
            start = self._drop_backlog(session, int(position))
            batch = self._ready(read_after(session, start, size))
            self.lag.set(last_position(session) - start)
            consumed, error = self._deliver(session, batch) if batch else (0, None)
        end = batch[consumed - 1].seq if consumed else start
        if end != position:
            with self.db.transaction() as session:
                session.execute(
                    update(ConsumerCursor)
                    .where(ConsumerCursor.name == name, ConsumerCursor.position == position)
                    .values(position=end, updated_at=utcnow())
                )
        return consumed, error

    # -- the thread -----------------------------------------------------------------------

    def heartbeat(self) -> None:
        every = self.target.options.heartbeat_seconds
        if every <= 0 or time.monotonic() - self.last_send < every:
            return
        try:
            if self.transport is None:
                self.transport = make_transport(self.target)
            self.transport.send([self.encode(heartbeat_record())])
            self.last_send = time.monotonic()
        except TransportError as exc:
            self.failed.inc()
            log.warning("export heartbeat failed", target=self.target.name, error=str(exc))

    def loop(self) -> None:
        backoff = 0.5
        while not self.stop_flag.is_set():
            try:
                consumed, error = self.run_once()
            except Exception as exc:  # a database hiccup: retry, never die
                log.exception("export batch failed", target=self.target.name)
                consumed, error = 0, str(exc)
            if error is not None:
                self.failed.inc()
                log.warning(
                    "export target unreachable; will retry",
                    target=self.target.name,
                    error=error,
                    retry_in=backoff,
                )
                if self.transport is not None:
                    self.transport.close()
                    self.transport = None
                self.stop_flag.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            backoff = 0.5
            if consumed == 0:
                self.heartbeat()
                wait = self.target.options.aggregation_window_seconds or 1.0
                self.wake_flag.wait(min(max(wait / 2, 0.2), 1.0))
                self.wake_flag.clear()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stop_flag.set()
        self.wake_flag.set()
        self.thread.join(15)
        if self.transport is not None:
            self.transport.close()


class ExportManager:
    """Keeps one worker per enabled target, following changes made on any node."""

    def __init__(self, db: Database, metrics: Metrics, refresh_seconds: float = 2.0) -> None:
        self.db = db
        self.metrics = metrics
        self.refresh_seconds = refresh_seconds
        self.workers: dict[int, TargetWorker] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="export-manager", daemon=True)

    def wake(self) -> None:
        for worker in list(self.workers.values()):
            worker.wake_flag.set()

    def refresh(self) -> None:
        with self.db.reading() as session:
            rows = list(session.scalars(select(ExportTarget).where(ExportTarget.enabled.is_(True))))
            targets = {row.id: Target.of(row) for row in rows}
        for target_id in list(self.workers):
            current = targets.get(target_id)
            if current is None or current.version != self.workers[target_id].target.version:
                self.workers.pop(target_id).stop()
        for target_id, target in targets.items():
            if target_id not in self.workers:
                worker = TargetWorker(self.db, target, self.metrics)
                self.workers[target_id] = worker
                worker.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:
                log.exception("could not load export targets; will retry")
            self._stop.wait(self.refresh_seconds)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        for worker in self.workers.values():
            worker.stop()
        self.workers.clear()
