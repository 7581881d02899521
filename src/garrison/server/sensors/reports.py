"""The agent's side: a Garrison agent fetches its effective sensor policy."""

from __future__ import annotations

from garrison.common.vocabulary import AgentKind
from garrison.server.errors import ForbiddenError, NotFoundError
from garrison.server.sensors import service
from garrison.server.sensors.cache import AgentPolicy, PolicyCache
from garrison.server.stations.credentials import AgentCredential, named_station
from garrison.server.store.engine import Database

__all__ = ["AgentPolicy", "policy_for_agent", "watch_markers"]


def policy_for_agent(
    db: Database, credential: AgentCredential, cache: PolicyCache | None = None
) -> AgentPolicy:
    """The effective policy of the calling station: from ``cache`` when it has it, otherwise
    one read-only transaction (the station, its groups' policies, the default), then cached.
    Only a Garrison agent has sensors to apply it to: for an Armadito station the policy
    does not exist."""
    station_id = credential.station_id
    if station_id is None:
        raise ForbiddenError("the sensor policy needs a station's own credential (its token)")
    since = 0
    if cache is not None:
        cached = cache.get(station_id)
        if cached is not None:
            return cached
        since = cache.generation
    with db.reading() as session:
        station = named_station(session, station_id)
        if station.agent_kind != AgentKind.GARRISON:
            raise NotFoundError("sensor policies are for Garrison agents only")
        found = service.effective(session, station.id)
        policy = AgentPolicy(station.id, found.version, found.settings)
    if cache is not None:
        cache.put(policy, since)
    return policy


def watch_markers(db: Database, cache: PolicyCache) -> bool:
    """The node's watcher, every ``sensor_policy_watch_seconds``: drops the cache when a
    change committed anywhere since its last read (True then)."""
    with db.reading() as session:
        markers = service.markers(session)
    return cache.observe_markers(markers)
