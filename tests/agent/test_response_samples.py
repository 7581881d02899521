"""Alert samples: kept at detection when ``[response] upload_samples`` is on, uploaded with
``PUT /api/files/<sha256>?alert=<event_uuid>`` once the alerts went, dropped on 403."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from garrison.agent import samples
from garrison.agent.context import Agent
from garrison.agent.jobs.scan import run_scan
from garrison.agent.state import StateDir
from garrison.agent.tasks import alerts, enrollment
from tests.agent.content_fake import FakeContentServer
from tests.agent.helpers import EICAR_SHA256, eicar, write_eicar


@pytest.fixture
def fake() -> Iterator[FakeContentServer]:
    server = FakeContentServer()
    yield server
    server.close()


@pytest.fixture
def agent(tmp_path: Path, fake: FakeContentServer, monkeypatch: pytest.MonkeyPatch) -> Agent:
    monkeypatch.setenv("GARRISON_AGENT_UUID", "AAAAAAAA-0000-0000-0000-00000005A4B1")
    agent = Agent(StateDir(tmp_path / "state", explicit=True))
    agent.config.server.url = fake.url
    enrollment.run(agent, "AAAAA-AAAAA-AAAAA-AAAAA-AAAAA")
    return agent


def posted_alerts(fake: FakeContentServer) -> list[dict[str, object]]:
    return [a for p, b in fake.posted if p == "/api/alerts" for a in b["task"]["obj"]["alerts"]]


def test_a_sample_goes_up_with_its_alert(
    agent: Agent, fake: FakeContentServer, tmp_path: Path
) -> None:
    agent.config.response.upload_samples = True
    write_eicar(tmp_path / "scan" / "eicar.com")
    result = run_scan(agent, [str(tmp_path / "scan")], None)
    assert result.detections[0].action == "quarantined"  # gone from disk; the copy stays
    assert samples.waiting(agent)
    fake.upload_alerts.add("pending")  # replaced below by the real uuid
    agent.flush()
    (alert,) = posted_alerts(fake)
    event = alert["info"]["event_uuid"]  # type: ignore[index]
    fake.upload_alerts = {event}
    counts = alerts.run(agent)
    assert counts.error is None
    assert fake.uploads[EICAR_SHA256] == eicar()
    assert fake.upload_queries[-1] == {"alert": [event]}
    assert not samples.waiting(agent)
    assert list((agent.state.path / samples.DIR).glob("*.bin")) == []


def test_a_403_drops_the_sample_and_an_unreachable_server_keeps_it(
    agent: Agent, fake: FakeContentServer, tmp_path: Path
) -> None:
    agent.config.response.upload_samples = True
    write_eicar(tmp_path / "scan" / "eicar.com")
    run_scan(agent, [str(tmp_path / "scan")], None)
    agent.flush()
    fake.close()
    assert samples.upload_pending(agent) == {"sent": 0, "refused": 0, "left": 1}
    assert samples.waiting(agent)
    server = FakeContentServer()  # back, on another port; its group takes no samples (403)
    try:
        creds = agent.credentials()
        creds.server_url = server.url
        agent.state.save_credentials(creds)
        assert samples.upload_pending(agent) == {"sent": 0, "refused": 1, "left": 0}
        assert not samples.waiting(agent)
        assert server.uploads == {}
    finally:
        server.close()


def test_no_sample_and_no_event_uuid_when_the_policy_is_off(
    agent: Agent, fake: FakeContentServer, tmp_path: Path
) -> None:
    assert agent.config.response.upload_samples is False
    write_eicar(tmp_path / "scan" / "eicar.com")
    run_scan(agent, [str(tmp_path / "scan")], None)
    agent.flush()
    (alert,) = posted_alerts(fake)
    assert "event_uuid" not in alert["info"]  # type: ignore[operator]
    assert not samples.waiting(agent)
    assert samples.upload_pending(agent) == {"sent": 0, "refused": 0, "left": 0}
