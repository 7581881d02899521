"""Alerts: alerts are queued in the spool when a scan detects something; this task sends what
is still queued (everything queued leaves in order) and reports how many went."""

from __future__ import annotations

from garrison.agent.context import Agent
from garrison.agent.spool import FlushResult


def run(agent: Agent) -> FlushResult:
    return agent.flush_or_raise()
