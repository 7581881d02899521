"""The token cache's bulk load: every allowed station's token is known to each worker
without a read per check-in, a revocation committed in another worker reloads it, a denied
station's token is never loaded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from garrison.server.stations import service as stations
from garrison.server.stations.credentials import AgentAuthenticator
from garrison.server.stations.models import Station
from garrison.server.store.base import utcnow
from garrison.server.store.engine import Database
from tests.conftest import make_settings


def _enroll(db: Database, count: int) -> list[tuple[int, str]]:
    out = []
    with db.transaction() as session:
        for i in range(count):
            identity = stations.Identity(
                uuid=f"{i:08d}-0000-4000-8000-000000000000".upper(),
                hostname=f"ws-{i}",
                antivirus_name="Armadito",
                os_name="linux",
                address="127.0.0.1",
            )
            station, token, _ = stations.enroll(session, identity, None)
            out.append((station.id, token))
    return out


def _no_reads(auth: AgentAuthenticator, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(**_: Any) -> None:
        raise AssertionError("the token was read from the database")

    monkeypatch.setattr(auth._by_token_hash, "first", refuse)


def test_each_worker_loads_every_token_and_reloads_on_a_revocation(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    enrolled = _enroll(db, 5)
    settings = make_settings(tmp_path, db.url, token_cache_seconds=120.0)
    first, second = AgentAuthenticator(settings, db), AgentAuthenticator(settings, db)
    for auth in (first, second):
        assert auth.watch_revocations()  # the first look loads
        assert len(auth.cache) == 5
    _no_reads(second, monkeypatch)
    for station_id, token in enrolled:
        assert second.authenticate(f"Bearer {token}").station_id == station_id
    assert not second.watch_revocations()  # nothing moved, nothing due: no reload

    # Deleted in the other worker: the marker moves, the reload drops that token.
    gone_id, gone_token = enrolled[0]
    with db.transaction() as session:
        session.delete(session.get(Station, gone_id))
        stations.credentials_revoked(session, [gone_id])
    assert second.watch_revocations()
    assert len(second.cache) == 4
    assert second.cache.get(gone_token) is None
    monkeypatch.undo()
    with pytest.raises(Exception, match="invalid agent token"):
        second.authenticate(f"Bearer {gone_token}")


def test_a_denied_station_is_not_loaded_and_the_cap_holds(db: Database, tmp_path: Path) -> None:
    enrolled = _enroll(db, 4)
    with db.transaction() as session:
        station = session.get(Station, enrolled[1][0])
        assert station is not None
        station.denied_at = utcnow()
    auth = AgentAuthenticator(make_settings(tmp_path, db.url, token_cache_seconds=60.0), db)
    auth.watch_revocations()
    assert len(auth.cache) == 3
    capped = AgentAuthenticator(
        make_settings(tmp_path, db.url, token_cache_seconds=60.0, token_cache_preload=2), db
    )
    capped.watch_revocations()
    assert len(capped.cache) == 2


def test_no_load_without_a_cache(db: Database, tmp_path: Path) -> None:
    _enroll(db, 2)
    auth = AgentAuthenticator(make_settings(tmp_path, db.url, token_cache_seconds=0), db)
    auth.watch_revocations()
    assert len(auth.cache) == 0
