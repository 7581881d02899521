"""The sensor policy: fetch it (``GET /api/sensor-policy``, conditional on the version in
force, so an unchanged policy is an empty 304) and hand it to the sensors.

The daemon asks at each check-in (after every Getjobs poll).  The last policy applied is
kept in the state dir (``sensor-policy.json``), so an agent restarted while the server is
away starts with it; an agent that never got one runs agent.toml's ``[sensors]``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from garrison.agent.context import Agent
from garrison.agent.errors import RefusedError, ServerError

log = logging.getLogger("garrison.agent.sensors")
PATH = "sensor-policy"
FILE = "sensor-policy.json"


@dataclass(frozen=True)
class Policy:
    version: str
    settings: Any  # checked by the sensors when applied, not here


def _version(etag: str, body: Any) -> str:
    if isinstance(body, dict) and isinstance(body.get("version"), str):
        return str(body["version"])
    return etag.strip().removeprefix("W/").strip('"')


def fetch(agent: Agent, known: list[str]) -> Policy | None:
    """The server's policy when it is none of the ``known`` versions (the one in force, and
    one refused: not fetched and refused again each check-in); None when it is unchanged,
    or when this server has no sensor policy for the agent (404: an older server), in which
    case what is in force stays."""
    tags = ", ".join(f'"{version}"' for version in known if version)
    try:
        with agent.transport() as transport:
            answer = transport.get_if_changed(PATH, tags)
    except RefusedError as exc:
        if exc.status == 404:
            return None
        raise
    if answer is None:
        return None
    etag, body = answer
    if not isinstance(body, dict):
        raise ServerError("the server's sensor policy is not a JSON object")
    # "settings" is passed on as it came: the sensors refuse a broken one with its reason.
    return Policy(_version(etag, body), body.get("settings"))


def saved(agent: Agent) -> Policy | None:
    data = agent.state.read_json(agent.state.path / FILE, None)
    if not isinstance(data, dict) or not isinstance(data.get("version"), str):
        return None
    return Policy(data["version"], data.get("settings"))


def save(agent: Agent, policy: Policy) -> None:
    agent.state.write_json(
        agent.state.path / FILE, {"version": policy.version, "settings": policy.settings}
    )
