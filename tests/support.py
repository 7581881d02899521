"""Test helpers: an Armadito-style agent that replays the real agent's request bodies, an
admin client and the check of an error answer.  Used by interop, security and server tests
alike."""

from __future__ import annotations

import base64
import json
import random
import time
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import pytest
from starlette.testclient import TestClient

T = TypeVar("T")

# What a loaded machine may add to a timed step, in seconds.  A timing bound is the setting
# under test plus this slack, so that the bound follows the setting.
SLACK_SECONDS = 5.0

# Runs a test on SQLite only (as ``@sqlite_only`` or ``pytestmark = sqlite_only``), for what
# does not depend on the database: the PostgreSQL variant is not even collected.
sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def wait_for(
    probe: Callable[[], T],
    until: Callable[[T], object] = bool,
    *,
    timeout: float = 10.0,
    what: str = "the condition",
    every: float = 0.02,
) -> T:
    """Call ``probe`` until ``until`` holds for what it returns (by default: until it returns
    something truthy) and return that value; fail naming ``what`` and the last value once
    ``timeout`` seconds have passed.  Background threads and other processes do the work the
    tests wait for, so a test polls for the outcome instead of sleeping and hoping."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if until(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s (last value: {value!r})")
        time.sleep(every)


def shuffled(data: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """The Armadito agent's JSON has random key order (Perl hashes); so do ours."""
    items = list(data.items())
    rng.shuffle(items)
    return {k: shuffled(v, rng) if isinstance(v, dict) else v for k, v in items}


def assert_json_error(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, Any]:
    """An error answer as every path gives it (the Armadito agent parses every error body as
    JSON; docs/admin-api.md promises a ``code``): ``status``, a JSON object body whose
    ``error``, ``message`` and ``code`` are non-empty strings, ``code`` equal to ``code`` when
    given, and no trace or HTML.  Returns the body."""
    assert response.status_code == status, (response.status_code, response.text)
    content_type = response.headers.get("content-type", "")
    assert content_type.startswith("application/json"), (content_type, response.text)
    text = response.text
    assert "Traceback" not in text, text
    assert "<html" not in text.lower(), text
    body = json.loads(text)
    assert isinstance(body, dict), body
    for name in ("error", "message", "code"):
        assert isinstance(body.get(name), str), (name, body)
        assert body[name], (name, body)
    if code is not None:
        assert body["code"] == code, body
    return body


def new_uuid(lower: bool = False) -> str:
    text = str(uuidlib.uuid4())
    return text if lower else text.upper()


@dataclass
class ArmaditoAgent:
    """Speaks the Armadito wire protocol exactly as the real agent (v0.10.1) was seen to."""

    client: TestClient | httpx.Client
    uuid: str = field(default_factory=new_uuid)
    agent_id: int = 0
    token: str | None = None
    basic: tuple[str, str] | None = None
    antivirus: str = "Armadito"
    av_version: str = "0.12.8"
    prefix: str = ""  # "/" reproduces the double slash of a server URL with a trailing slash
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    def envelope(self, task: str, obj: Any) -> dict[str, Any]:
        return shuffled(
            {
                "agent_id": self.agent_id,
                "agent_version": "0.10.1",
                "uuid": self.uuid,
                "task": {
                    "name": task,
                    "antivirus": {
                        "name": self.antivirus,
                        "version": self.av_version,
                        "program_path": "",
                        "os_info": {"name": "linux", "libpath": "Linux"},
                    },
                    "obj": obj,
                },
            },
            self.rng,
        )

    def headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        elif self.basic:
            raw = base64.b64encode(f"{self.basic[0]}:{self.basic[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {raw}"
        return headers

    def url(self, path: str) -> str:
        # Absolute, so that a "//api/x" prefix is sent as a path, not read as a host name.
        return f"{str(self.client.base_url).rstrip('/')}{self.prefix}/api/{path}"

    def post(self, path: str, task: str, obj: Any) -> httpx.Response:
        body = json.dumps(self.envelope(task, obj))
        return self.client.post(self.url(path), content=body, headers=self.headers())

    def enroll(self, key: str) -> httpx.Response:
        response = self.post("agents", "Enrollment", {"key": key})
        if response.status_code == 200 and response.json().get("agent_id", 0) > 0:
            self.agent_id = response.json()["agent_id"]
            if self.basic is None:
                self.token = response.json()["agent_token"]
        return response

    def getjobs(self) -> httpx.Response:
        # agent_id really appears twice; the order of parameters varies.
        return self.client.get(
            self.url(
                f"jobs?agent_id={self.agent_id}&antivirus={self.antivirus}&agent_id={self.agent_id}"
            ),
            headers=self.headers(),
        )

    def runjob(
        self,
        job_id: int,
        code: int = 0,
        message: str = "runJob successful",
        start: int = 1795303287,
        end: int = 1795303288,
    ) -> httpx.Response:
        if code != 0:
            raw = base64.encodebytes(message.encode()).decode()  # MIME: newline every 76
            message = raw
        return self.post(
            "jobs",
            "Runjobs",
            {
                "job_id": job_id,
                "code": code,
                "message": message,
                "start_time": start,
                "end_time": end,
            },
        )

    def scan(self, obj: dict[str, Any]) -> httpx.Response:
        return self.post("scans", "Scan", obj)

    def alerts(self, alerts: list[dict[str, Any]], job_id: int | None = None) -> httpx.Response:
        obj: dict[str, Any] = {"alerts": alerts}
        if job_id is not None:
            obj["job_id"] = job_id
        return self.post("alerts", "Alerts", obj)

    def state(self, obj: dict[str, Any] | None = None) -> httpx.Response:
        return self.post(
            "states",
            "State",
            obj
            or {
                "dbinfo": {
                    "global_status": "up-to-date",
                    "global_update_timestamp": 1500000000,
                    "modules": [
                        {
                            "name": "clamav",
                            "mod_status": "up-to-date",
                            "mod_update_timestamp": 1499990000,
                        }
                    ],
                },
                "avdetails": [],
            },
        )

    def avconfig(self, pairs: list[tuple[str, str]]) -> httpx.Response:
        return self.post("avconfigs", "AVConfig", [{"attr": a, "value": v} for a, v in pairs])

    def scheduler(self, pairs: list[tuple[str, str]], name: str = "Cron") -> httpx.Response:
        return self.post(
            "schedulers",
            "Scheduler",
            {"name": name, "confdetails": [{"attr": a, "value": v} for a, v in pairs]},
        )


@dataclass
class Admin:
    client: TestClient | httpx.Client
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.client.get(f"/admin/v1{path}", params=params, headers=self.headers)

    def post(self, path: str, body: Any = None) -> httpx.Response:
        return self.client.post(f"/admin/v1{path}", json=body, headers=self.headers)

    def put(self, path: str, body: Any = None) -> httpx.Response:
        return self.client.put(f"/admin/v1{path}", json=body, headers=self.headers)

    def patch(self, path: str, body: Any = None) -> httpx.Response:
        return self.client.patch(f"/admin/v1{path}", json=body, headers=self.headers)

    def delete(self, path: str) -> httpx.Response:
        return self.client.delete(f"/admin/v1{path}", headers=self.headers)

    def new_key(self, uses: int = 10, expires_in: int = 3600) -> str:
        response = self.post("/enrollment-keys", {"uses": uses, "expires_in": expires_in})
        assert response.status_code == 201, response.text
        key: str = response.json()["key"]
        return key

    def as_role(self, username: str, role: str) -> Admin:
        password = f"{username}-password-123"
        created = self.post("/users", {"username": username, "password": password, "role": role})
        assert created.status_code == 201, created.text
        login = self.client.post(
            "/admin/v1/auth/login", json={"username": username, "password": password}
        )
        assert login.status_code == 200, login.text
        return Admin(self.client, login.json()["token"])
