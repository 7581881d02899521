"""The live stream is driven by the database: a page open on one node hears of a station
that enrolled through another node (two apps on one database; on PostgreSQL, two nodes as
deployed)."""

from __future__ import annotations

import json

from garrison.server.console.live import topics_of
from tests.conftest import ServerFactory
from tests.console.support import login, make_user


def test_topics_name_what_changed() -> None:
    assert topics_of(set()) == []
    assert topics_of({"station_created", "threat_detected"}) == ["alerts", "stations", "events"]
    assert topics_of({"file_created"}) == ["events"]
    assert topics_of({"task_executed"}) == ["jobs", "events"]


def test_a_page_on_one_node_hears_of_an_enrollment_on_another(
    server_factory: ServerFactory,
) -> None:
    node_a = server_factory(console_live_seconds=0.1)
    node_b = server_factory(console_live_seconds=0.1)
    password = make_user(node_a.admin, "liv", "viewer")
    login(node_b.client, "liv", password)
    seen: list[dict[str, list[str]]] = []
    with node_b.client.stream("GET", "/live") as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        event = ""
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event == "hello":
                node_a.enrolled_agent()  # through the other node
            elif line.startswith("data: ") and event == "changed":
                seen.append(json.loads(line.removeprefix("data: ")))
                if "stations" in seen[-1]["topics"]:
                    break
    assert "stations" in seen[-1]["topics"]


def test_the_stream_says_ended_when_the_session_is_gone(server_factory: ServerFactory) -> None:
    node = server_factory(console_live_seconds=0.1)
    password = make_user(node.admin, "gone", "viewer")
    login(node.client, "gone", password)
    with node.client.stream("GET", "/live") as stream:
        for line in stream.iter_lines():
            if line == "event: hello":
                assert node.admin.patch("/users/gone", {"disabled": True}).status_code == 200
            if line == "event: ended":
                break
        else:
            raise AssertionError("the stream did not say it ended")
