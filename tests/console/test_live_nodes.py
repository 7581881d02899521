"""Live updates across server nodes, as deployed: two ``garrison serve`` processes on one
PostgreSQL database.  An alert an agent reports through node A reaches node B's live stream,
and appears, without a reload, on the alerts page of a browser connected to node B."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.console.support import login as form_login
from tests.console.test_browser import ARGS, CHROMIUM, WAIT_MS, login
from tests.live import LiveServer, start_server
from tests.support import ArmaditoAgent

playwright = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.slow

USER = ("nodes", "nodes-password-123")
Nodes = tuple[LiveServer, LiveServer, str]


@pytest.fixture
def nodes(tmp_path: Path, database_url: str) -> Iterator[Nodes]:
    """Two nodes on one PostgreSQL database, a viewer, and an enrollment key."""
    if not database_url.startswith("postgresql"):
        pytest.skip("several nodes share a PostgreSQL database")
    env = {
        "GARRISON_SECRETS_KEY_FILE": str(tmp_path / "secrets.key"),
        "GARRISON_CONSOLE_LIVE_SECONDS": "0.3",
    }
    first = start_server(tmp_path / "a", database_url, env)
    second = start_server(tmp_path / "b", database_url, env)
    try:
        admin = {"Authorization": f"Bearer {first.token}"}
        made = httpx.post(
            f"{first.url}/admin/v1/users",
            headers=admin,
            json={"username": USER[0], "password": USER[1], "role": "viewer"},
        )
        assert made.status_code == 201, made.text
        key = httpx.post(
            f"{first.url}/admin/v1/enrollment-keys",
            headers=admin,
            json={"uses": 5, "expires_in": 3600},
        ).json()["key"]
        yield first, second, key
    finally:
        first.stop()
        second.stop()


def _alert(node: LiveServer, agent: ArmaditoAgent, name: str) -> None:
    with httpx.Client(base_url=node.url) as client:
        agent.client = client
        report = {
            "name": name,
            "filepath": f"/tmp/{name}",
            "action": "none",
            "module_name": "clamav",
            "detection_time": 1500000100,
        }
        assert agent.alerts([report]).status_code == 200


def test_an_alert_through_node_a_is_heard_on_node_b(nodes: Nodes) -> None:
    first, second, key = nodes
    with httpx.Client(base_url=first.url) as client:
        agent = ArmaditoAgent(client)
        assert agent.enroll(key).status_code == 200
    topics: list[list[str]] = []
    with httpx.Client(base_url=second.url, timeout=30) as viewer:
        assert form_login(viewer, *USER).status_code == 303
        with viewer.stream("GET", "/live") as stream:
            event = ""
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: ") and event == "hello":
                    _alert(first, agent, "Node-A-Stream-Threat")
                elif line.startswith("data: ") and event == "changed":
                    topics.append(json.loads(line.removeprefix("data: "))["topics"])
                    if "alerts" in topics[-1]:
                        break
    assert "alerts" in topics[-1]


def test_a_browser_on_node_b_shows_an_alert_reported_to_node_a(nodes: Nodes) -> None:
    first, second, key = nodes
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    with httpx.Client(base_url=first.url) as client:
        agent = ArmaditoAgent(client)
        assert agent.enroll(key).status_code == 200
    with playwright.sync_playwright() as p:
        browser: Any = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.set_default_timeout(WAIT_MS)
            login(page, second.url, USER)
            page.goto(f"{second.url}/alerts")
            page.get_by_text("No alert.").wait_for()
            # The page's live stream is open once it has said hello (console.js marks it).
            page.wait_for_function("document.body.dataset.liveState === 'open'")
            reported = threading.Event()

            def report() -> None:
                _alert(first, agent, "Node-A-Browser-Threat")
                reported.set()

            worker = threading.Thread(target=report)
            worker.start()
            worker.join(30)
            assert reported.is_set()
            page.locator("td.threat", has_text="Node-A-Browser-Threat").wait_for()
            assert page.url.endswith("/alerts")  # no navigation: the region reloaded itself
        finally:
            browser.close()
