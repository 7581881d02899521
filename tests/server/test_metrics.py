from __future__ import annotations

import datetime as dt

from tests.conftest import Server


def test_metrics_count_agent_requests_and_stations(server: Server) -> None:
    agent = server.enrolled_agent()
    agent.getjobs()
    agent.getjobs()
    body = server.client.get("/metrics").text
    assert 'garrison_agent_requests_total{status="200",task="Getjobs"} 2.0' in body
    assert 'garrison_enrollments_total{outcome="created"} 1.0' in body
    assert "garrison_stations 1.0" in body
    assert "garrison_stations_online 1.0" in body


def test_check_ins_are_written_in_batches(server: Server) -> None:
    agent = server.enrolled_agent()

    def last_seen() -> dt.datetime:
        text = server.admin.get(f"/stations/{agent.agent_id}").json()["last_seen"]
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))

    before = last_seen()
    agent.getjobs()
    # Seen by this node at once (the admin API merges pending check-ins)...
    assert last_seen() > before
    server.flush_presence()
    # ...and in the database after the flush.
    from garrison.server.stations.models import Station

    with server.db.reading() as session:
        station = session.get(Station, agent.agent_id)
        assert station is not None
        assert station.last_seen > before
