"""IsolateNetwork / RejoinNetwork (nftables)."""

from __future__ import annotations

from garrison.agent import isolation
from garrison.agent.context import Agent
from garrison.agent.errors import JobError
from garrison.agent.jobstore import Job


def isolate(agent: Agent, job: Job) -> str:
    try:
        isolation.isolate(agent.state, agent.server_url)
    except isolation.IsolationError as exc:
        agent.event("SEGREGATE_NETWORK", {"INVESTIGATION_ID": job.investigation_id, "ERROR": 1})
        raise JobError(str(exc)) from None
    agent.event("SEGREGATE_NETWORK", {"INVESTIGATION_ID": job.investigation_id, "ERROR": 0})
    data = isolation.saved(agent.state) or {}
    return (
        f"isolated: only {', '.join(data.get('addresses', []))} port {data.get('port')} "
        "and loopback are reachable"
    )


def rejoin(agent: Agent, job: Job) -> str:
    try:
        isolation.rejoin(agent.state)
    except isolation.IsolationError as exc:
        raise JobError(str(exc)) from None
    return "network isolation removed"
