"""POST /api/events: the shapes and encodings a batch may come in, what is stored, and
idempotent retries."""

from __future__ import annotations

import gzip
import json
from typing import Any

from sqlalchemy import select

from garrison.server.events.models import Event
from tests.conftest import Server
from tests.events.helpers import MD5, SHA256, events, post_events


def process_started(uid: str, pid: int = 7, **extra: Any) -> dict[str, Any]:
    return {
        "id": uid,
        "type": "process_started",
        "data": {
            "time": 1700000000,
            "unique_pid": f"u{pid}",
            "pid": pid,
            "file_path": "/usr/bin/nc",
            "md5": MD5,
            **extra,
        },
    }


def stored(response: Any, n: int) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["stored"] == n, body
    return body


def test_a_json_array_is_stored_and_each_event_answered(server: Server) -> None:
    agent = server.enrolled_agent()
    batch = [process_started("a1", 1), process_started("a2", 2), process_started("a3", 3)]
    body = stored(post_events(server, agent, batch), 3)
    assert body["duplicates"] == 0
    assert body["refused"] == 0
    assert [r["index"] for r in body["results"]] == [0, 1, 2]
    assert [r["status"] for r in body["results"]] == ["stored"] * 3
    seqs = [r["seq"] for r in body["results"]]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == 3
    kept = events(server, type="process_started")
    assert sorted(e["id"] for e in kept) == ["a1", "a2", "a3"]
    first = next(e for e in kept if e["id"] == "a1")
    assert first["seq"] == seqs[0]
    assert first["station_id"] == agent.agent_id
    assert first["origin"] == "station"
    assert first["time"].startswith("2023-11-14T22:13:20")
    assert first["data"] == {
        "time": "2023-11-14T22:13:20Z",
        "unique_pid": "u1",
        "pid": 1,
        "file_path": "/usr/bin/nc",
        "md5": MD5,
    }
    # Committed before the answer: a fresh session sees the acknowledged positions.
    with server.db.reading() as session:
        uids = session.scalars(select(Event.uid).where(Event.seq.in_(seqs)).order_by(Event.seq))
        # Stored scoped to the station, so another station's ids cannot shadow them.
        assert list(uids) == [
            f"s{agent.agent_id}:a1",
            f"s{agent.agent_id}:a2",
            f"s{agent.agent_id}:a3",
        ]


def test_ndjson_is_accepted(server: Server) -> None:
    agent = server.enrolled_agent()
    lines = b"\n".join(json.dumps(process_started(f"n{i}", i)).encode() for i in range(4))
    response = post_events(
        server, agent, lines + b"\n\n", **{"Content-Type": "application/x-ndjson"}
    )
    body = stored(response, 4)
    assert [r["index"] for r in body["results"]] == [0, 1, 2, 3]
    assert sorted(e["id"] for e in events(server, type="process_started")) == [
        "n0",
        "n1",
        "n2",
        "n3",
    ]


def test_a_gzip_body_is_accepted(server: Server) -> None:
    agent = server.enrolled_agent()
    raw = json.dumps([process_started("g1", 1), process_started("g2", 2)]).encode()
    response = post_events(server, agent, gzip.compress(raw), **{"Content-Encoding": "gzip"})
    stored(response, 2)
    assert sorted(e["id"] for e in events(server, type="process_started")) == ["g1", "g2"]
    # gzip NDJSON too.
    raw = b"\n".join(json.dumps(process_started(f"z{i}", i)).encode() for i in range(3))
    response = post_events(
        server,
        agent,
        gzip.compress(raw),
        **{"Content-Encoding": "gzip", "Content-Type": "application/x-ndjson"},
    )
    stored(response, 3)
    assert len(events(server, type="process_started")) == 5


def test_the_limacharlie_shape_and_the_seeds_type_wrapped_samples(server: Server) -> None:
    agent = server.enrolled_agent()
    batch = [
        {
            "routing": {"event_type": "CONNECTED", "event_id": "lc-1", "event_time": 1455674775000},
            "event": {
                "HOST_NAME": "demo-win-2016",
                "IS_SEGREGATED": 0,
                "KERNEL_ACQ_AVAILABLE": 1,
                "MAC_ADDRESS": "42-01-0A-80-00-02",
            },
        },
        # The seed's samples wrap the data in the event type's name.
        {
            "routing": {"event_type": "STARTING_UP", "event_id": "lc-2"},
            "event": {"STARTING_UP": {"ts": 1455674775}},
        },
        {
            "routing": {"event_type": "SHUTTING_DOWN", "this": "lc-3"},
            "event": {"SHUTTING_DOWN": {"ts": 1455674775}},
        },
        {
            "routing": {"event_type": "RECEIPT", "event_id": "lc-4", "investigation_id": "inv-9"},
            "event": {"ERROR": 0},
        },
    ]
    body = stored(post_events(server, agent, batch), 4)
    assert body["refused"] == 0
    connected = events(server, type="CONNECTED")
    assert [(e["id"], e["data"]) for e in connected] == [
        (
            "lc-1",
            {
                "HOST_NAME": "demo-win-2016",
                "IS_SEGREGATED": False,
                "KERNEL_ACQ_AVAILABLE": True,
                "MAC_ADDRESS": "42-01-0A-80-00-02",
            },
        )
    ]
    # routing.event_time (epoch milliseconds) is the event's time.
    assert connected[0]["time"].startswith("2016-02-17T02:06:15")
    starting = events(server, type="STARTING_UP")
    assert [(e["id"], e["data"]) for e in starting] == [("lc-2", {"ts": "2016-02-17T02:06:15Z"})]
    assert starting[0]["time"].startswith("2016-02-17T02:06:15")
    assert [e["id"] for e in events(server, type="SHUTTING_DOWN")] == ["lc-3"]
    receipt = events(server, type="RECEIPT")
    assert [e["data"] for e in receipt] == [{"ERROR": 0, "INVESTIGATION_ID": "inv-9"}]


def test_the_seeds_cloud_notification_sample_is_accepted(server: Server) -> None:
    agent = server.enrolled_agent()
    sample = {
        "NOTIFICATION_ID": "ADD_EXFIL_EVENT_REQ",
        "NOTIFICATION": {"INVESTIGATION_ID": "digger-4afdeb2b-a0d8-4a37-83b5-48996117998e"},
        "HCP_IDENT": {
            "HCP_ORG_ID": "c82e5c17d5194ef5a4acc454a95d31db",
            "HCP_SENSOR_ID": "8fc370e6699a49858e75c1316b725570",
            "HCP_INSTALLER_ID": "00000000000000000000000000000000",
            "HCP_ARCHITECTURE": 0,
            "HCP_PLATFORM": 0,
        },
        "EXPIRY": 0,
    }
    response = post_events(
        server,
        agent,
        [{"routing": {"event_type": "CLOUD_NOTIFICATION", "event_id": "cn-1"}, "event": sample}],
    )
    body = stored(response, 1)
    assert body["refused"] == 0
    (event,) = events(server, type="CLOUD_NOTIFICATION")
    assert event["data"]["NOTIFICATION_ID"] == "ADD_EXFIL_EVENT_REQ"
    assert event["data"]["INVESTIGATION_ID"] == "digger-4afdeb2b-a0d8-4a37-83b5-48996117998e"


def test_a_retried_batch_stores_each_event_once(server: Server) -> None:
    agent = server.enrolled_agent()
    batch = [process_started("r1", 1), process_started("r2", 2)]
    first = stored(post_events(server, agent, batch), 2)
    again = post_events(server, agent, [*batch, process_started("r3", 3)])
    body = stored(again, 1)
    assert body["duplicates"] == 2
    assert body["refused"] == 0
    assert [r["status"] for r in body["results"]] == ["duplicate", "duplicate", "stored"]
    assert "seq" not in body["results"][0]
    assert body["results"][2]["seq"] > first["results"][1]["seq"]
    kept = events(server, type="process_started")
    assert sorted(e["id"] for e in kept) == ["r1", "r2", "r3"]
    # The same id twice in one batch is stored once.
    body = stored(post_events(server, agent, [process_started("d1", 4)] * 3), 1)
    assert body["duplicates"] == 2
    assert [r["status"] for r in body["results"]] == ["stored", "duplicate", "duplicate"]
    assert len(events(server, type="process_started")) == 4


def test_events_without_an_id_are_each_stored(server: Server) -> None:
    agent = server.enrolled_agent()
    item = process_started("x", 1)
    del item["id"]
    stored(post_events(server, agent, [item, item]), 2)
    kept = events(server, type="process_started")
    assert len(kept) == 2
    assert kept[0]["id"] != kept[1]["id"]


def test_two_stations_may_use_the_same_event_id(server: Server) -> None:
    a, b = server.enrolled_agent(), server.enrolled_agent()
    stored(post_events(server, a, [process_started("evt-1", 1)]), 1)
    stored(post_events(server, b, [process_started("evt-1", 2)]), 1)
    kept = events(server, type="process_started")
    assert sorted(e["station_id"] for e in kept) == sorted([a.agent_id, b.agent_id])


def test_an_agent_cannot_speak_for_another_station(server: Server) -> None:
    victim = server.enrolled_agent()
    agent = server.enrolled_agent()
    forged = {
        "id": "forged-1",
        "type": "threat_detected",
        "data": {
            "id": victim.agent_id,
            "address": "192.0.2.66",
            "station": "victim-pc",
            "virus": "Fake.Threat",
            "object": "C:\\x.exe",
        },
    }
    body = stored(post_events(server, agent, [forged]), 1)
    assert body["refused"] == 0
    (event,) = events(server, type="threat_detected")
    assert event["station_id"] == agent.agent_id
    assert event["data"] == {
        "id": agent.agent_id,
        "address": "testclient",
        "station": agent.uuid,
        "virus": "Fake.Threat",
        "object": "C:\\x.exe",
    }
    assert events(server, station_id=victim.agent_id, type="threat_detected") == []


def test_hashes_are_lower_cased_and_searchable(server: Server) -> None:
    agent = server.enrolled_agent()
    item = process_started("h1", 1)
    item["data"]["md5"] = MD5.upper()
    item["data"]["sha256"] = SHA256.upper()
    stored(post_events(server, agent, [item]), 1)
    (event,) = events(server, type="process_started")
    assert event["data"]["md5"] == MD5
    assert event["data"]["sha256"] == SHA256
    assert [e["id"] for e in events(server, hash=SHA256.upper())] == ["h1"]
