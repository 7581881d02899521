"""The effective sensor policy is cached per node: an agent's unchanged poll reads no
database, and every change (a policy set or removed, a station moved between groups, a group
deleted) reaches the agent at its next poll, on this node at once and on another node
within ``sensor_policy_watch_seconds``.  Both backends."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from garrison.server.sensors.cache import AgentPolicy, PolicyCache
from tests.conftest import Server, ServerFactory
from tests.server.test_sensor_policy_api import GarrisonAgent, garrison_agent
from tests.support import wait_for

# What reading a station's effective policy touches (and its token, uncached).
POLICY_TABLES = re.compile(r"\b(stations|groups|station_groups|sensor_policies|options)\b")
# Background work that reads those tables, pushed out of the test's way.
QUIET = {
    "token_cache_seconds": 120.0,
    "last_seen_flush_seconds": 3600.0,
    "disconnect_sweep_seconds": 3600.0,
    "sensor_policy_watch_seconds": 3600.0,
}


@contextmanager
def statements(server: Server) -> Iterator[list[str]]:
    """The SQL statements on the policy's tables while the block runs."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        if POLICY_TABLES.search(sql):
            seen.append(sql)

    event.listen(server.db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(server.db.engine, "before_cursor_execute", record)


def _version(agent: GarrisonAgent, etag: str | None = None) -> tuple[int, str]:
    response = agent.policy(etag)
    return response.status_code, response.headers["ETag"]


def test_unchanged_polls_read_no_database(server_factory: ServerFactory) -> None:
    server = server_factory(**QUIET)
    agent = garrison_agent(server)
    server.admin.put("/sensor-policy", {"settings": {"ports": False}})
    first = agent.policy()
    assert first.status_code == 200
    assert first.json()["settings"] == {"ports": False}
    etag = first.headers["ETag"]
    with statements(server) as seen:
        for _ in range(5):
            assert agent.policy(etag).status_code == 304
        again = agent.policy()
    assert seen == []
    assert again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["ETag"] == etag


def test_every_change_reaches_the_agent_at_its_next_poll(server_factory: ServerFactory) -> None:
    server = server_factory(**QUIET)
    agent = garrison_agent(server)
    _, etag = _version(agent)
    assert _version(agent, etag) == (304, etag)

    def changed(before: str) -> str:
        status, now = _version(agent, before)
        assert status == 200, "the change did not reach the agent at its next poll"
        assert now != before
        assert _version(agent, now) == (304, now)  # and is cached again
        return now

    server.admin.put("/sensor-policy", {"settings": {"burst": 7}})
    etag = changed(etag)
    assert server.admin.post("/groups", {"name": "web"}).status_code == 201
    server.admin.put("/groups/web/sensor-policy", {"settings": {"burst": 8}})
    assert _version(agent, etag) == (304, etag)  # a group the station is not in
    add = server.admin.post("/groups/web/stations", {"add": [agent.agent_id]})
    assert add.status_code == 200
    etag = changed(etag)
    assert agent.policy().json()["settings"] == {"burst": 8}
    server.admin.put("/groups/web/sensor-policy", {"settings": {"burst": 9}})
    etag = changed(etag)
    remove = server.admin.post("/groups/web/stations", {"remove": [agent.agent_id]})
    assert remove.status_code == 200
    etag = changed(etag)
    assert agent.policy().json()["settings"] == {"burst": 7}
    server.admin.post("/groups/web/stations", {"add": [agent.agent_id]})
    etag = changed(etag)
    assert server.admin.delete("/groups/web").status_code == 204
    etag = changed(etag)
    assert agent.policy().json()["settings"] == {"burst": 7}


def test_a_change_on_another_node_reaches_this_nodes_agents(
    server_factory: ServerFactory,
) -> None:
    """Two nodes of one database: the change is made on the first; the agent polls the
    second, whose cache holds the old policy until its watcher sees the marker move."""
    first = server_factory(token_cache_seconds=120.0)
    second = server_factory(token_cache_seconds=120.0, sensor_policy_watch_seconds=0.2)
    agent = garrison_agent(first)
    agent.client = second.client
    status, etag = _version(agent)
    assert status == 200
    assert _version(agent, etag) == (304, etag)
    assert len(second.ctx.sensor_policies) == 1

    first.admin.put("/sensor-policy", {"settings": {"module": False}})
    wait_for(
        lambda: _version(agent, etag)[0] == 200,
        timeout=5,
        what="the other node's change at this node's agent",
        every=0.05,
    )
    assert agent.policy().json()["settings"] == {"module": False}
    assert first.admin.post("/groups", {"name": "db"}).status_code == 201
    first.admin.put("/groups/db/sensor-policy", {"settings": {"module": True}})
    _, etag = _version(agent)
    first.admin.post("/groups/db/stations", {"add": [agent.agent_id]})
    wait_for(
        lambda: agent.policy().json()["settings"] == {"module": True},
        timeout=5,
        what="the other node's group membership at this node's agent",
        every=0.05,
    )


def test_a_read_begun_before_a_change_is_not_cached_after_it() -> None:
    cache = PolicyCache()
    since = cache.generation
    cache.forget()  # a change commits while the read is under way
    cache.put(AgentPolicy(1, "old", {}), since)
    assert cache.get(1) is None
    cache.put(AgentPolicy(1, "new", {}), cache.generation)
    found = cache.get(1)
    assert found is not None
    assert found.version == "new"
    cache.forget([2])
    assert cache.get(1) == found  # another station forgotten: this one stays
    cache.forget([1])
    assert cache.get(1) is None


def test_the_watcher_drops_the_cache_when_a_marker_moves() -> None:
    cache = PolicyCache()
    assert cache.observe_markers({}) is True  # the first read: whatever was cached may be old
    cache.put(AgentPolicy(1, "v", {}), cache.generation)
    assert cache.observe_markers({}) is False
    assert cache.get(1) is not None
    assert cache.observe_markers({"sensor_policy": "abc"}) is True
    assert cache.get(1) is None
