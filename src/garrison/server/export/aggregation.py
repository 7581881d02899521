"""ESET-style aggregation: identical firewall and HIPS events of one station within a window
travel as one record with ``aggregate_count``."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

from garrison.server.events.models import Event
from garrison.server.export.mapping import AGGREGATE_KEYS, Record
from garrison.server.store.base import utcnow


def ready(batch: Sequence[Event], window: float) -> Sequence[Event]:
    """What of ``batch`` can go now.  With aggregation, a batch is cut only once its first
    event is a window old, so identical events of that window travel as one (ESET aggregates
    per replication); its events past the window wait for the next batch."""
    if window <= 0 or not batch:
        return batch
    if batch[0].received_at > utcnow() - dt.timedelta(seconds=window):
        return []
    horizon = batch[0].received_at + dt.timedelta(seconds=window)
    return [e for e in batch if e.received_at <= horizon]


def _counted(record: Record, count: int) -> Record:
    return dataclasses.replace(record, fields={**record.fields, "aggregate_count": count})


def fold(
    records: Sequence[tuple[int, int | None, Record]], window: float
) -> list[tuple[int, Record]]:
    """``(index in the batch, station id, record)`` in order → ``(index of the first event
    it stands for, record)``: every aggregable record gets ``aggregate_count``, and with a
    window the later identical ones are folded into the first."""
    out: list[tuple[int, Record]] = []
    folded: dict[tuple[Any, ...], int] = {}
    for index, station_id, record in records:
        keys = AGGREGATE_KEYS.get(record.event_type)
        if keys is None:
            out.append((index, record))
            continue
        count = int(record.fields.get("aggregate_count") or 1)
        signature = (station_id, record.event_type, *(repr(record.fields.get(k)) for k in keys))
        slot = folded.get(signature) if window > 0 else None
        if slot is not None:
            first_index, first = out[slot]
            out[slot] = (first_index, _counted(first, int(first.fields["aggregate_count"]) + count))
            continue
        folded[signature] = len(out)
        out.append((index, _counted(record, count)))
    return out
