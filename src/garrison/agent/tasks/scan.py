"""Scan run by hand (``-t Scan``): scan the given paths (or the configured ones), act per the
configuration, send alerts and results without a job id."""

from __future__ import annotations

from garrison.agent.context import Agent
from garrison.agent.jobs.scan import run_scan
from garrison.agent.scan.engine import Progress, ScanResult


def run(agent: Agent, paths: list[str], ui: Progress | None = None) -> ScanResult:
    return run_scan(agent, paths or agent.config.scan.paths, None, ui)
