"""PreparedSelect: the check-in's token read without SQLAlchemy's per-call bookkeeping, on
SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import uuid as uuidlib

import pytest
from sqlalchemy import bindparam, select

from garrison.common.tokens import token_hash
from garrison.server.jobs.models import JobTarget
from garrison.server.stations import service as stations
from garrison.server.stations.models import Station
from garrison.server.stations.service import Identity
from garrison.server.store.base import utcnow
from garrison.server.store.engine import Database
from garrison.server.store.prepared import PreparedSelect


def enroll(db: Database) -> tuple[int, str, str]:
    with db.transaction() as session:
        station, token, _ = stations.enroll(
            session, Identity(uuid=str(uuidlib.uuid4()).upper()), None
        )
        return station.id, station.uuid, token


def test_the_token_read_finds_the_station_and_only_it(db: Database) -> None:
    lookup = PreparedSelect(db.engine, stations.BY_TOKEN_HASH)
    first = enroll(db)
    second = enroll(db)
    assert lookup.first(digest=token_hash(first[2])) == (first[0], first[1], 0)
    assert lookup.first(digest=token_hash(second[2])) == (second[0], second[1], 0)
    # The third column says whether the station is denied.
    with db.transaction() as session:
        stations.get(session, second[0]).denied_at = utcnow()
    assert lookup.first(digest=token_hash(second[2])) == (second[0], second[1], 1)
    assert lookup.first(digest=token_hash("not a token")) is None
    # An injection attempt is a value, not SQL.
    assert lookup.first(digest="' OR 1=1 --") is None


def test_each_read_sees_what_was_committed_before_it(db: Database) -> None:
    lookup = PreparedSelect(db.engine, stations.BY_TOKEN_HASH)
    station_id, _, token = enroll(db)
    assert lookup.first(digest=token_hash(token)) is not None
    with db.transaction() as session:
        stations.get(session, station_id).token_hash = token_hash("rotated")
    assert lookup.first(digest=token_hash(token)) is None
    assert lookup.first(digest=token_hash("rotated")) is not None


def test_connections_go_back_to_the_pool(db: Database) -> None:
    lookup = PreparedSelect(db.engine, stations.BY_TOKEN_HASH)
    _, _, token = enroll(db)
    for _ in range(200):
        lookup.first(digest=token_hash(token))
    pool = db.engine.pool
    assert pool.checkedout() == 0  # type: ignore[attr-defined]


def test_binds_are_converted_for_the_driver(db: Database) -> None:
    # A DateTime bind goes through the column type's processor: an equality only matches
    # when the value is sent in the form the ORM stored it in.
    station_id, _, _ = enroll(db)
    with db.reading() as session:
        enrolled = stations.get(session, station_id).enrolled_at
    lookup = PreparedSelect(
        db.engine,
        select(Station.id).where(
            Station.id == bindparam("sid"),
            Station.enrolled_at == bindparam("t", type_=Station.enrolled_at.type),
        ),
    )
    assert lookup.first(sid=station_id, t=enrolled) == (station_id,)
    assert lookup.first(sid=station_id, t=enrolled + dt.timedelta(microseconds=1)) is None


def test_columns_the_driver_cannot_decode_are_refused(db: Database) -> None:
    with pytest.raises(ValueError, match="needs decoding"):
        PreparedSelect(db.engine, select(JobTarget.updated_at))
