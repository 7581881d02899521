"""Enrollment is the one public agent endpoint: only a valid key lets a station in.

A key of the wrong format, an unknown, expired, revoked or exhausted key is refused with 403
and a JSON body whose ``error`` and ``message`` say why (the Armadito agent shows
``message``), no station is created, and the key's use counter never passes its limit, even
when agents race for the last use.
"""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import update

from garrison.server.enrollment import service as enrollment
from garrison.server.enrollment.models import EnrollmentKey
from garrison.server.errors import EnrollmentRefusedError
from garrison.server.store.base import utcnow
from tests.conftest import Server
from tests.security.checks import key_info, station_total, station_uuids
from tests.support import ArmaditoAgent, assert_json_error

UNKNOWN_KEY = "ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ-ZZZZ9"


def assert_refused(
    server: Server, agent: ArmaditoAgent, key: str, reason: str, stations_before: int
) -> None:
    response = agent.enroll(key)
    body = assert_json_error(response, 403, "enrollment_refused")
    assert body.get("field") == "key", body
    assert reason in body["error"].lower(), body
    assert reason in body["message"].lower(), body
    assert "agent_id" not in body
    assert "agent_token" not in body
    assert agent.agent_id == 0
    assert agent.token is None
    assert station_total(server) == stations_before
    assert agent.uuid not in station_uuids(server)


@pytest.mark.parametrize(
    "bad",
    [
        "ABCDE",
        "ABCDE-ABCDE-ABCDE-ABCDE",
        "ABCDE-ABCDE-ABCDE-ABCDE-ABCDE-ABCDE",
        "ABCDE_ABCDE_ABCDE_ABCDE_ABCDE",
        "ABCDE-ABCDE-ABCDE-ABCDE-ABCD!",
        "' OR '1'='1",
        "%",
    ],
)
def test_wrong_format_is_refused(server: Server, bad: str) -> None:
    assert_refused(server, server.agent(), bad, "format", 0)


def test_unknown_key_is_refused(server: Server) -> None:
    assert_refused(server, server.agent(), UNKNOWN_KEY, "unknown", 0)


def test_expired_key_is_refused(server: Server) -> None:
    key = server.admin.new_key(uses=5, expires_in=60)
    with server.db.transaction() as session:
        session.execute(
            update(EnrollmentKey)
            .where(EnrollmentKey.key_hash == enrollment.key_digest(key))
            .values(expires_at=utcnow() - dt.timedelta(seconds=1))
        )

    assert_refused(server, server.agent(), key, "expired", 0)
    info = key_info(server, key)
    assert info["status"] == "expired"
    assert info["used"] == 0


def test_revoked_key_is_refused(server: Server) -> None:
    key = server.admin.new_key(uses=5)
    first = server.agent()
    assert first.enroll(key).status_code == 200

    revoked = server.admin.delete(f"/enrollment-keys/{key}")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["status"] == "revoked"

    assert_refused(server, server.agent(), key, "revoked", 1)
    assert key_info(server, key)["used"] == 1


def test_exhausted_key_is_refused_and_counter_stops_at_uses(server: Server) -> None:
    key = server.admin.new_key(uses=1)
    assert server.agent().enroll(key).status_code == 200

    for _ in range(3):
        assert_refused(server, server.agent(), key, "no uses left", 1)

    info = key_info(server, key)
    assert info["used"] == 1
    assert info["status"] == "exhausted"


def test_refused_reenrollment_keeps_the_station_and_its_token(server: Server) -> None:
    """A refused key for a known uuid must not rotate (or drop) that station's token."""
    agent = server.enrolled_agent()
    key = server.admin.new_key(uses=5)
    assert server.admin.delete(f"/enrollment-keys/{key}").status_code == 200

    impostor = server.agent(uuid=agent.uuid)
    body = assert_json_error(impostor.enroll(key), 403)
    assert "revoked" in body["message"]
    assert_json_error(impostor.enroll(UNKNOWN_KEY), 403)

    assert agent.state().status_code == 200
    assert station_total(server) == 1


@pytest.mark.parametrize("racers", [2, 8])
def test_racing_for_the_last_use_only_one_wins(server: Server, racers: int) -> None:
    key = server.admin.new_key(uses=2)
    assert server.agent().enroll(key).status_code == 200  # one use left

    agents = [server.agent() for _ in range(racers)]
    start = threading.Barrier(racers)

    def enroll(agent: ArmaditoAgent) -> httpx.Response:
        start.wait(timeout=30)
        return agent.enroll(key)

    with ThreadPoolExecutor(max_workers=racers) as pool:
        responses = list(pool.map(enroll, agents))

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [403] * (racers - 1), [r.text for r in responses]
    for response in responses:
        if response.status_code == 403:
            # (Which reason a loser is told is checked in the next test.)
            assert assert_json_error(response, 403).get("code") == "enrollment_refused"
    winners = [a for a in agents if a.agent_id > 0]
    assert len(winners) == 1
    assert station_total(server) == 2
    uuids = station_uuids(server)
    assert winners[0].uuid in uuids
    assert not any(a.uuid in uuids for a in agents if a is not winners[0])
    info = key_info(server, key)
    assert info["used"] == 2
    assert info["status"] == "exhausted"


def test_loser_of_a_race_is_told_the_key_is_exhausted(server: Server) -> None:
    """The interleaving of two racing enrollments, made deterministic with two transactions:
    the loser checks the key, the winner takes the last use and commits, the loser consumes."""
    if server.db.backend != "postgresql":
        pytest.skip("SQLite runs one enrollment transaction at a time: no interleaving")
    key = server.admin.new_key(uses=1)
    with server.db.transaction() as loser:
        # Held, as enrollment/reports.py holds it (the identity map only keeps live objects).
        checked = enrollment.check(loser, key)
        assert checked.key_prefix == key[:5]
        with server.db.transaction() as winner:
            enrollment.check(winner, key)
            enrollment.consume(winner, key)
        with pytest.raises(EnrollmentRefusedError) as refused:
            enrollment.consume(loser, key)
    assert refused.value.message == "enrollment key has no uses left"
    assert key_info(server, key)["used"] == 1
