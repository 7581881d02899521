"""Helpers of the event-pipeline tests: a Garrison agent, event look-ups, procedure set-up
and polling for what the procedures consumer (a background thread) does."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from sqlalchemy import func, select, update
from starlette.testclient import TestClient

from garrison.server.events.models import ConsumerCursor, Event
from garrison.server.stations.models import Station
from garrison.server.store.base import utcnow
from tests.conftest import Server
from tests.support import ArmaditoAgent, wait_for

T = TypeVar("T")
EICAR = "Eicar-Test-Signature"
MD5 = "0123456789abcdef0123456789abcdef"
SHA1 = "0123456789abcdef0123456789abcdef01234567"
SHA256 = "0123456789abcdef" * 4


@dataclass
class GarrisonAgent(ArmaditoAgent):
    """An agent that enrolls as a Garrison agent (it can run IsolateNetwork jobs)."""

    hostname: str = ""

    def headers(self) -> dict[str, str]:
        headers = super().headers()
        headers["X-Garrison-Agent"] = "0.1.0"
        return headers

    def envelope(self, task: str, obj: Any) -> dict[str, Any]:
        body = super().envelope(task, obj)
        if self.hostname:
            body["hostname"] = self.hostname
        return body


def garrison_agent(server: Server, client: TestClient | None = None, **kw: Any) -> GarrisonAgent:
    agent = GarrisonAgent(client or server.client, **kw)
    response = agent.enroll(server.first_key)
    assert response.status_code == 200, response.text
    return agent


def other_machine(server: Server, address: str) -> TestClient:
    """A client of the same app whose requests come from ``address`` (no second lifespan:
    the consumers of ``server`` keep running)."""
    return TestClient(server.client.app, client=(address, 40000), raise_server_exceptions=False)


def post_events(server: Server, agent: ArmaditoAgent, items: Any, **headers: str) -> httpx.Response:
    all_headers = {**agent.headers(), **headers}
    body = items if isinstance(items, bytes) else json.dumps(items)
    response: httpx.Response = server.client.post("/api/events", content=body, headers=all_headers)
    return response


def events(server: Server, **params: Any) -> list[dict[str, Any]]:
    # Not Admin.get: its first parameter is called ``path``, like the path filter.
    response = server.client.get(
        "/admin/v1/events", params={"limit": 1000, **params}, headers=server.admin.headers
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def one_event(server: Server, event_type: str, **params: Any) -> dict[str, Any]:
    found = events(server, type=event_type, **params)
    assert len(found) == 1, found
    return found[0]


def put_procedure(server: Server, name: str, source: str, enabled: bool = True) -> dict[str, Any]:
    response = server.admin.put(f"/procedures/{name}", {"source": source, "enabled": enabled})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def audit_targets(server: Server, action: str) -> list[str]:
    """Targets of the audit entries with this action, oldest first."""
    response = server.admin.get("/audit", action=action)
    assert response.status_code == 200, response.text
    return [e["target"] for e in reversed(response.json())]


def procedure_errors(server: Server, procedure: str | None = None) -> list[dict[str, Any]]:
    params = {"procedure": procedure} if procedure else {}
    response = server.admin.get("/procedures/errors", **params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()
    return items


def cursor(server: Server, name: str = "procedures") -> int:
    with server.db.reading() as session:
        value = session.scalar(select(ConsumerCursor.position).where(ConsumerCursor.name == name))
    return int(value or 0)


def wait_processed(server: Server, seq: int, timeout: float = 10.0) -> None:
    """Wait until the procedures consumer has handled the event at log position ``seq``."""
    wait_for(lambda: cursor(server) >= seq, timeout=timeout, what=f"procedures cursor at {seq}")


def last_seq(server: Server) -> int:
    with server.db.reading() as session:
        return int(session.scalar(select(func.max(Event.seq))) or 0)


def alert(
    name: str = EICAR, path: str = "/tmp/scanme/eicar.com", when: int = 1500000100
) -> dict[str, Any]:
    return {
        "name": name,
        "filepath": path,
        "action": "none",
        "module_name": "clamav",
        "detection_time": when,
    }


def set_last_seen(server: Server, station_id: int, ago: dt.timedelta) -> None:
    with server.db.transaction() as session:
        session.execute(
            update(Station).where(Station.id == station_id).values(last_seen=utcnow() - ago)
        )


def station_ids(server: Server) -> list[int]:
    with server.db.reading() as session:
        return sorted(session.scalars(select(Station.id)))
