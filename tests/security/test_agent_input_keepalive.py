"""The inputs of issue 22 (items 5, 7, 8) against a real ``garrison serve``, on one keep-alive
connection: each gets a 4xx or is accepted, none a 500, and the connection survives them all
(a 500 dropped it)."""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import urllib.parse
from pathlib import Path
from typing import Any

from tests.interop import armadito
from tests.live import start_server

UNKNOWN_KEY = "ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ-ZZZZ9"


class Connection:
    """One HTTP/1.1 connection; fails if the server ever closes it."""

    def __init__(self, url: str) -> None:
        parsed = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(parsed.hostname or "", parsed.port, timeout=30)
        self.conn.connect()
        self.sock = self.conn.sock

    def send(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, Any]:
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        assert self.conn.sock is self.sock, f"{method} {path}: the server closed the connection"
        return response.status, json.loads(data) if data else None


def envelope(task: str, obj: Any, uuid: str, **extra: Any) -> bytes:
    body = json.loads(armadito.envelope(task, "null", uuid=uuid, agent_id=0))
    body["task"]["obj"] = obj
    return json.dumps({**body, **extra}).encode()


def test_no_input_of_the_findings_answers_500_or_drops_the_connection(
    tmp_path: Path, database_url: str
) -> None:
    live = start_server(tmp_path / "data", database_url)
    conn = Connection(live.url)
    try:
        admin = {"Authorization": f"Bearer {live.token}", "Content-Type": "application/json"}
        status, key = conn.send(
            "POST", "/admin/v1/enrollment-keys", json.dumps({"uses": 100}).encode(), admin
        )
        assert status == 201, key
        uuid = armadito.new_uuid()
        json_type = {"Content-Type": "application/json"}
        status, enrolled = conn.send(
            "POST",
            "/api/agents",
            envelope("Enrollment", {"key": key["key"]}, uuid, mac="m" * 200, hostname="a\0b"),
            json_type,
        )
        assert status == 200, enrolled
        agent = {**json_type, "Authorization": f"Bearer {enrolled['agent_token']}"}
        job = {"type": "Scan", "station_ids": [enrolled["agent_id"]], "params": {"path": "/t"}}
        status, created = conn.send("POST", "/admin/v1/jobs", json.dumps(job).encode(), admin)
        assert status == 201, created
        assert conn.send("GET", "/api/jobs", None, agent)[0] == 200

        deep: Any = 1
        for _ in range(300):
            deep = {"a": deep}
        events = json.dumps(
            [{"id": "e1", "type": "process_started", "data": {"time": 1, "pid": 1}}]
        ).encode()
        failure = base64.encodebytes(b"failed\0here").decode()
        cases: list[tuple[str, str, bytes, dict[str, str]]] = [
            ("alert NUL", "/api/alerts", envelope("Alerts", {"alerts": [
                {"name": "a\0b", "filepath": "/x", "detection_time": 1}]}, uuid), agent),
            ("sha256", "/api/alerts", envelope("Alerts", {"alerts": [
                {"name": "a", "filepath": "/x", "info": {"sha256": "z" * 64}}]}, uuid), agent),
            ("modules", "/api/states", envelope("State", {"dbinfo": {"modules": [
                {"name": f"m{i}"} for i in range(1001)]}}, uuid), agent),
            ("module NUL", "/api/states", envelope("State", {"dbinfo": {"modules": [
                {"name": "m\0"}]}}, uuid), agent),
            ("runjobs NUL", "/api/jobs", envelope("Runjobs", {
                "job_id": created["id"], "code": 1, "message": failure}, uuid), agent),
            ("mac", "/api/agents", envelope("Enrollment", {"key": key["key"]},
                armadito.new_uuid(), mac="not-a-mac"), json_type),
            ("refused NUL", "/api/agents", envelope("Enrollment", {"key": UNKNOWN_KEY},
                armadito.new_uuid(), hostname="x\0y"), json_type),
            ("hostname object", "/api/agents", envelope("Enrollment", {"key": key["key"]},
                armadito.new_uuid(), hostname={"a": 1}), json_type),
            ("platform object", "/api/agents", envelope("Enrollment", {"key": key["key"]},
                armadito.new_uuid(), platform={"a": 1}), json_type),
            ("deep event", "/api/events", json.dumps(
                [{"id": "d", "type": "process_started", "data": deep}]).encode(), agent),
            ("two members", "/api/events", gzip.compress(events) * 2,
                {**agent, "Content-Encoding": "gzip"}),
            ("cut gzip", "/api/events", gzip.compress(events)[:-8],
                {**agent, "Content-Encoding": "gzip"}),
        ]  # fmt: skip
        for what, path, body, headers in cases:
            status, answer = conn.send("POST", path, body, headers)
            assert status < 500, (what, status, answer)
            assert status == 200 or isinstance(answer.get("code"), str), (what, answer)
    finally:
        conn.conn.close()
        live.stop()
