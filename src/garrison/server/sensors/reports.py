"""The agent's side: a Garrison agent fetches its effective sensor policy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from garrison.common.vocabulary import AgentKind
from garrison.server.errors import ForbiddenError, NotFoundError
from garrison.server.sensors import service
from garrison.server.stations.credentials import AgentCredential, named_station
from garrison.server.store.engine import Database


@dataclass(frozen=True)
class AgentPolicy:
    station_id: int
    version: str
    settings: dict[str, Any]


def policy_for_agent(db: Database, credential: AgentCredential) -> AgentPolicy:
    """The effective policy of the calling station: one read-only transaction (the station,
    its groups' policies, the default).  Only a Garrison agent has sensors to apply it to:
    for an Armadito station the policy does not exist."""
    if credential.station_id is None:
        raise ForbiddenError("the sensor policy needs a station's own credential (its token)")
    with db.reading() as session:
        station = named_station(session, credential.station_id)
        if station.agent_kind != AgentKind.GARRISON:
            raise NotFoundError("sensor policies are for Garrison agents only")
        found = service.effective(session, station.id)
        return AgentPolicy(station.id, found.version, found.settings)
