"""Delivering the event log to export targets: one consumer of the event-log runtime
(:mod:`garrison.server.events.consumers`) per enabled target.

Each target's consumer reads the log through the target's own cursor, filters, aggregates and
encodes in the batch's read transaction, then sends once that transaction has ended
(``outside_transaction``): a SIEM that is down or slow builds a backlog that drains, in order,
when it returns, and never holds a transaction open.  The cursor advances past exactly what
was delivered.  :class:`ExportManager` follows the targets table (changes made on any node)
and adds, replaces and removes consumers as targets come, change and go.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from garrison.common.catalogue import CATALOGUE
from garrison.server.events.consumers import Consumer, ConsumerRunner, Progress, Send
from garrison.server.events.models import Event
from garrison.server.export import aggregation
from garrison.server.export.encoding import TargetEncoder, heartbeat
from garrison.server.export.filters import forwarded
from garrison.server.export.mapping import Record, StationInfo
from garrison.server.export.models import ExportTarget
from garrison.server.export.policy import ExportPolicy
from garrison.server.export.service import cursor_name
from garrison.server.export.target import Target, make_transport
from garrison.server.export.transports import Transport, TransportError
from garrison.server.metrics import Metrics
from garrison.server.stations import service as stations
from garrison.server.store.engine import Database

log = structlog.get_logger("garrison.export")
NO_GROUPS: frozenset[str] = frozenset()


class ExportConsumer(Consumer):
    """One target's consumer."""

    outside_transaction = True
    # The target's cursor is made with the target and deleted with it.
    create_cursor = False

    def __init__(self, target: Target, metrics: Metrics, policy: ExportPolicy) -> None:
        o = target.options
        self.target = target
        self.policy = policy
        self.name = cursor_name(target.id)
        self.batch_size = o.batch_size
        self.max_backlog = o.max_backlog
        # Half the aggregation window, so a batch goes soon after its window has passed.
        self.poll_seconds = min(max((o.aggregation_window_seconds or 1.0) / 2, 0.2), 1.0)
        # The target's profile, formatter and framing, settled once for every batch.
        self.encoder = TargetEncoder(target)
        self.transport: Transport | None = None
        self.last_send = time.monotonic()
        labels = (target.name,)
        self.sent = metrics.export_sent.labels(*labels)
        self.failed_sends = metrics.export_failed.labels(*labels)
        self.dropped = metrics.export_dropped.labels(*labels)
        self.lag = metrics.export_lag.labels(*labels)

    def wanted_types(self, session: Session) -> frozenset[str] | None:
        types = self.target.options.event_types
        return frozenset(types) if types else None

    def handle(self, session: Session, batch: Sequence[Event]) -> Progress | Send:
        ready = aggregation.ready(batch, self.target.options.aggregation_window_seconds)
        if not ready:
            return Progress(0)
        records = self._records(session, ready)
        if not records:
            return Progress(len(ready))
        messages = self.encoder.encode_batch([record for _, record in records])
        return lambda: self._send(messages, [index for index, _ in records], len(ready))

    def _records(self, session: Session, batch: Sequence[Event]) -> list[tuple[int, Record]]:
        """(index of the first event it stands for, record), filtered and aggregated."""
        o = self.target.options
        ids = {e.station_id for e in batch if e.station_id}
        encoder = self.encoder
        # The eset profile names each station's group (ESET's group_name).
        eset_profile = encoder.profile == "eset"
        known = stations.export_info(session, ids, with_groups=bool(o.groups) or eset_profile)
        # One StationInfo per station of the batch, not one per event.
        infos = {
            station_id: StationInfo(
                s.uuid, s.hostname, s.address, s.os_name, s.group, s.group_description
            )
            for station_id, s in known.items()
        }
        unknown = StationInfo()
        built: list[tuple[int, int | None, Record]] = []
        for index, event in enumerate(batch):
            if event.type not in CATALOGUE:
                continue
            station = known.get(event.station_id) if event.station_id else None
            if not forwarded(o, event, station.groups if station else NO_GROUPS):
                continue
            info = infos.get(event.station_id or 0, unknown)
            record = encoder.record(event.type, event.severity, event.time, event.data, info)
            if not encoder.sends(record):
                continue
            built.append((index, event.station_id, record))
        return aggregation.fold(built, o.aggregation_window_seconds)

    def _send(self, messages: list[bytes], firsts: list[int], ready: int) -> Progress:
        """Runs outside any transaction.  ``firsts``: each message's first event's index."""
        try:
            sent = self._transport().send(messages)
        except TransportError as exc:
            self.sent.inc(exc.sent)
            # Resume at the first event of the first message not delivered.
            done = firsts[exc.sent] if exc.sent < len(firsts) else ready
            return Progress(done, f"export target {self.target.name!r} unreachable: {exc}")
        self.sent.inc(sent)
        self.last_send = time.monotonic()
        return Progress(ready)

    def _transport(self) -> Transport:
        if self.transport is None:
            self.transport = make_transport(self.target, self.policy.confinement)
        return self.transport

    def measured(self, behind: int, dropped: int) -> None:
        self.lag.set(behind)
        if dropped:
            self.dropped.inc(dropped)

    def idle(self) -> None:
        """A heartbeat once the target has had nothing for ``heartbeat_seconds``."""
        every = self.target.options.heartbeat_seconds
        if every <= 0 or time.monotonic() - self.last_send < every:
            return
        try:
            self._transport().send([heartbeat(self.target)])
            self.last_send = time.monotonic()
        except TransportError as exc:
            self.failed_sends.inc()
            log.warning("export heartbeat failed", target=self.target.name, error=str(exc))

    def failed(self) -> None:
        self.failed_sends.inc()
        self.close()  # a fresh connection for the retry

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None


class ExportManager:
    """Keeps one consumer per enabled target in ``runner``, following changes made on any
    node (the targets table is read every ``refresh_seconds``)."""

    def __init__(
        self,
        db: Database,
        runner: ConsumerRunner,
        metrics: Metrics,
        policy: ExportPolicy,
        refresh_seconds: float = 2.0,
    ) -> None:
        self.db = db
        self.policy = policy
        self.runner = runner
        self.metrics = metrics
        self.refresh_seconds = refresh_seconds
        self.consumers: dict[int, ExportConsumer] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="export-targets", daemon=True)

    def refresh(self) -> None:
        with self.db.reading() as session:
            rows = session.scalars(select(ExportTarget).where(ExportTarget.enabled.is_(True)))
            targets = {row.id: Target.of(row, self.policy) for row in rows}
        for target_id, consumer in list(self.consumers.items()):
            current = targets.get(target_id)
            if current is None or current.version != consumer.target.version:
                del self.consumers[target_id]
                self.runner.remove(consumer.name)
        for target_id, target in targets.items():
            if target_id not in self.consumers:
                consumer = ExportConsumer(target, self.metrics, self.policy)
                self.consumers[target_id] = consumer
                self.runner.add(consumer)

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
        """Stop following the targets, and remove their consumers."""
        self._stop.set()
        self._thread.join(10)
        for consumer in self.consumers.values():
            self.runner.remove(consumer.name)
        self.consumers.clear()
