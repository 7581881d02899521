"""Fixtures of the security regression tests: two enrolled agents, A and B."""

from __future__ import annotations

import pytest

from tests.conftest import Server
from tests.support import ArmaditoAgent


@pytest.fixture
def agent_a(server: Server) -> ArmaditoAgent:
    return server.enrolled_agent()


@pytest.fixture
def agent_b(server: Server, agent_a: ArmaditoAgent) -> ArmaditoAgent:
    agent = server.enrolled_agent()
    assert agent.agent_id != agent_a.agent_id
    return agent
