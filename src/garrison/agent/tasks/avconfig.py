"""AVConfig: fetch the configuration an administrator pushed (``GET /api/avconfigs``), apply
it to the local TOML file, then report the local configuration as attr/value pairs."""

from __future__ import annotations

from typing import Any

from garrison.agent import config as configmod
from garrison.agent.context import Agent
from garrison.agent.errors import ServerError


def pushed_pairs(answer: Any, key: str) -> list[tuple[str, str]]:
    items = answer.get(key) if isinstance(answer, dict) else None
    if items is None:
        return []
    if not isinstance(items, list):
        raise ServerError(f"the server's {key} is not an array")
    return [
        (str(i["attr"]), str(i.get("value", "")))
        for i in items
        if isinstance(i, dict) and isinstance(i.get("attr"), str)
    ]


def run(agent: Agent) -> list[str]:
    with agent.transport() as transport:
        pairs = pushed_pairs(transport.get("avconfigs"), "avconfig")
    problems = configmod.apply_avconfig(agent.config, pairs)
    if pairs:
        agent.save_config()
    agent.send("avconfigs", "AVConfig", configmod.avconfig_pairs(agent.config))
    return problems
