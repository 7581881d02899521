"""Interop fixtures: a server configured as an Armadito fleet is (shared Basic credentials),
and Armadito agents speaking DESIGN.md's literal requests to it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import Server, ServerFactory
from tests.interop.armadito import BASIC, WireAgent


@pytest.fixture
def armadito(server_factory: ServerFactory) -> Server:
    return server_factory(agent_basic_user=BASIC[0], agent_basic_password=BASIC[1])


@pytest.fixture
def new_agent(armadito: Server) -> Callable[..., WireAgent]:
    """An enrolled Armadito agent (``enrolled=False``: one that has not run Enrollment yet)."""

    def make(enrolled: bool = True, **kwargs: Any) -> WireAgent:
        agent = WireAgent(armadito.client, **kwargs)
        if enrolled:
            response = agent.enroll(armadito.first_key)
            assert response.status_code == 200, response.text
            assert agent.agent_id > 0
        return agent

    return make
