"""Alerts: alerts are queued in the spool when a scan detects something; this task sends what
is still queued (everything queued leaves in order) and reports how many went.  Then the
samples kept for those alerts (``[response] upload_samples``) go up."""

from __future__ import annotations

from garrison.agent import samples
from garrison.agent.context import Agent
from garrison.agent.spool import FlushResult


def run(agent: Agent) -> FlushResult:
    result = agent.flush_or_raise()
    samples.upload_pending(agent)
    return result
