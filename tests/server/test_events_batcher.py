"""Group commit of POST /api/events (events/batcher.py): concurrent requests share a
transaction, each gets its own answer, one refused request does not undo the others, and
past the bound a request is refused with 503 before anything is stored."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from sqlalchemy import func, select

from garrison.server.agentapi.routes import AgentApi
from garrison.server.errors import NotAuthenticatedError, OverloadedError
from garrison.server.events.batcher import IngestBatcher
from garrison.server.events.models import Event
from garrison.server.stations import service as stations
from garrison.server.stations.credentials import AgentCredential
from garrison.server.stations.models import Station
from garrison.server.store.engine import Database
from tests.conftest import ServerFactory


def _stations(db: Database, count: int) -> list[AgentCredential]:
    out = []
    with db.transaction() as session:
        for i in range(count):
            identity = stations.Identity(
                uuid=f"{i:08d}-1111-4000-8000-000000000000".upper(),
                hostname=f"ws-{i}",
                antivirus_name="Garrison",
                os_name="linux",
                address="127.0.0.1",
            )
            station, _, _ = stations.enroll(session, identity, None)
            out.append(AgentCredential("token", station.id, station.uuid))
    return out


def _batch(tag: str, n: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"{tag}-{i}",
            "type": "process_started",
            "data": {"time": 1764700000, "unique_pid": f"{tag}-{i}", "pid": 100 + i},
        }
        for i in range(n)
    ]


def _stored(db: Database) -> int:
    with db.reading() as session:
        return int(session.scalar(select(func.count()).select_from(Event)) or 0)


def test_concurrent_requests_share_transactions_and_keep_their_answers(db: Database) -> None:
    creds = _stations(db, 3)
    with db.transaction() as session:  # the third station is deleted before it sends
        session.delete(session.get(Station, creds[2].station_id))
    batcher = IngestBatcher(db)
    release = threading.Event()
    real_write = batcher._write

    def slow_first(batch: list[Any]) -> None:
        release.wait(10)  # the first batch holds the writer while the others queue
        real_write(batch)

    batcher._write = slow_first  # type: ignore[method-assign]

    async def main() -> list[Any]:
        first = asyncio.ensure_future(batcher.ingest(creds[0], "10.0.0.1", _batch("a", 3)))
        while not batcher._writing or batcher._pending:  # the writer took it, and waits
            await asyncio.sleep(0.01)
        rest = [
            asyncio.ensure_future(batcher.ingest(cred, "10.0.0.2", _batch(f"b{i}", 2)))
            for i, cred in enumerate([creds[1], creds[1], creds[2]])
        ]
        while len(batcher._pending) < 3:  # queued behind the first batch
            await asyncio.sleep(0.01)
        release.set()
        return await asyncio.gather(first, *rest, return_exceptions=True)

    answers = asyncio.run(main())
    assert [a.stored for a in answers[:3]] == [3, 2, 2]
    assert answers[0].station_id == creds[0].station_id
    assert isinstance(answers[3], NotAuthenticatedError)  # only the deleted station's
    assert batcher.batches == 2  # the first alone, the three queued in one transaction
    assert _stored(db) == 7


def hold_writes(batcher: IngestBatcher) -> threading.Event:
    """The batcher's writes wait (up to 10 s) until the returned event is set."""
    release = threading.Event()
    real_write = batcher._write

    def held(batch: list[Any]) -> None:
        release.wait(10)
        real_write(batch)

    batcher._write = held  # type: ignore[method-assign]
    return release


def test_past_the_bound_a_request_is_refused_before_anything_is_stored(db: Database) -> None:
    (cred,) = _stations(db, 1)
    batcher = IngestBatcher(db, max_pending_events=4)
    release = hold_writes(batcher)

    async def main() -> None:
        first = asyncio.ensure_future(batcher.ingest(cred, "", _batch("x", 3)))
        while not batcher._writing or batcher._pending:
            await asyncio.sleep(0.01)
        queued = asyncio.ensure_future(batcher.ingest(cred, "", _batch("y", 3)))
        while not batcher._pending:
            await asyncio.sleep(0.01)
        with pytest.raises(OverloadedError):
            await batcher.ingest(cred, "", _batch("z", 2))  # 3 waiting + 2 > 4
        release.set()
        await asyncio.gather(first, queued)

    asyncio.run(main())
    assert _stored(db) == 6


def test_past_the_time_bound_a_request_is_refused_and_the_rate_is_measured(
    db: Database,
) -> None:
    """Refused when the events ahead of it (the batch being written and those waiting)
    would take longer than ``max_wait_seconds`` at the writer's rate: a client waiting
    past its own timeout holds its connection for nothing."""
    (cred,) = _stations(db, 1)
    batcher = IngestBatcher(db, max_wait_seconds=0.05)
    release = hold_writes(batcher)

    async def main() -> None:
        first = asyncio.ensure_future(batcher.ingest(cred, "", _batch("x", 3)))
        while not batcher._writing or batcher._pending:
            await asyncio.sleep(0.01)
        assert batcher.rate is None  # nothing written yet: no estimate, no time bound
        queued = asyncio.ensure_future(batcher.ingest(cred, "", _batch("y", 3)))
        while not batcher._pending:
            await asyncio.sleep(0.01)
        batcher.rate = 100.0  # (3 being written + 3 waiting + 2) / 100 = 0.08 s > 0.05 s
        with pytest.raises(OverloadedError):
            await batcher.ingest(cred, "", _batch("z", 2))
        batcher.rate = 1000.0  # 0.008 s: it fits
        fits = asyncio.ensure_future(batcher.ingest(cred, "", _batch("w", 2)))
        release.set()
        await asyncio.gather(first, queued, fits)

    asyncio.run(main())
    assert _stored(db) == 8
    assert batcher.refused == 1
    assert batcher.rate is not None  # measured from the batches written
    assert batcher.rate > 0
    assert batcher._in_flight_events == 0


def test_the_operator_settings_bound_the_agent_apis_writer(server_factory: ServerFactory) -> None:
    """GARRISON_EVENTS_MAX_PENDING and GARRISON_EVENTS_MAX_WAIT_SECONDS reach the writer the
    agent API builds (the bounds themselves are proven above)."""
    server = server_factory(events_max_pending=7, events_max_wait_seconds=3.5)
    writer = AgentApi(server.ctx).events_writer
    assert (writer.max_pending_events, writer.max_wait_seconds) == (7, 3.5)
