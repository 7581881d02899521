"""Scheduler: fetch the schedule an administrator pushed (``GET /api/schedulers``), apply it,
then report the local one: ``{"name": "Cron", "confdetails": [{"attr":
"scheduler:task:Getjobs:freq", "value": "* * * * *"}, …]}``."""

from __future__ import annotations

from garrison.agent import config as configmod
from garrison.agent.context import Agent
from garrison.agent.tasks.avconfig import pushed_pairs


def run(agent: Agent) -> list[str]:
    with agent.transport() as transport:
        pairs = pushed_pairs(transport.get("schedulers"), "confdetails")
    problems = configmod.apply_scheduler(agent.config, pairs)
    if pairs:
        agent.save_config()
    agent.send(
        "schedulers",
        "Scheduler",
        {"name": "Cron", "confdetails": configmod.scheduler_pairs(agent.config)},
    )
    return problems
