"""Interop fixtures: a server configured as an Armadito fleet is (shared Basic credentials),
and Armadito agents sending it the real agent's requests, literally."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import Server, ServerFactory, token_cache_off_and_on
from tests.interop.armadito import BASIC, WireAgent

# Interop holds with the token cache off and on (a real node caches tokens).
token_cache_seconds = token_cache_off_and_on()


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
