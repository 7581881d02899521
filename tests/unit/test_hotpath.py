"""The check-in hot path's query reader agrees with Starlette's parser on every query it
accepts, and hands escaped ones to it; the fixed response sends fresh messages each time."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import pytest
from starlette.datastructures import QueryParams

from garrison.server.agentapi.hotpath import FixedResponse, agent_query


@pytest.mark.parametrize(
    "query",
    [
        b"agent_id=1&antivirus=Armadito&agent_id=1",  # what the Armadito agent really sends
        b"agent_id=7",
        b"",
        b"agent_id=&agent_id=3",
        b"agent_id",
        b"antivirus=Armadito",
        b"agent_id=2&wait=30",
        b"wait=&agent_id=2",
        b"wait",
        b"agent_id=abc&&agent_id=4",
        b"Agent_id=1",
        b"agent_id=1=2",
    ],
)
def test_agrees_with_starlette(query: bytes) -> None:
    full = QueryParams(query.decode("latin-1"))
    assert agent_query(query) == (full.getlist("agent_id"), "wait" in full)


@pytest.mark.parametrize("query", [b"agent_id=%31", b"agent_id=1+2", b"w%61it=5&agent_id=1"])
def test_escaped_queries_go_to_the_full_parser(query: bytes) -> None:
    assert agent_query(query) is None


def test_fixed_response_sends_fresh_messages() -> None:
    response = FixedResponse(b'{"jobs":[]}', media_type="application/json")
    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.start":
            message["headers"].append((b"x-added", b"downstream"))

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request"}

    for _ in range(2):
        asyncio.run(response({"type": "http"}, receive, send))
    first, second = sent[0], sent[2]
    assert first is not second
    assert second["headers"].count((b"x-added", b"downstream")) == 1
    assert second["status"] == 200
    assert (b"content-type", b"application/json") in second["headers"]
    assert (b"content-length", b"11") in second["headers"]
    assert sent[1] == sent[3] == {"type": "http.response.body", "body": b'{"jobs":[]}'}
