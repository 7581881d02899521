"""An Armadito agent on the wire.

The request bodies below are the ones observed from the real agent (v0.10.1), copied literally; only
the uuid, ``agent_id`` and ``job_id`` of the example are substituted.  Requests go out the way
the real agent (v0.10.1, Perl LWP) sends them: ``Content-Type: application/json`` on every
request (GET too), no credentials until a ``401`` carries a ``WWW-Authenticate: Basic``
challenge, and paths ``/api/x``, ``/api/x/`` or ``//api/x`` depending on how the server URL was
written in the agent's configuration.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid as uuidlib
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.testclient import TestClient

from tests.support import Admin

# An absolute URL: httpx would read a relative "//api/x" as a host named "api".
BASE = "http://testserver"
BASIC = ("armadito", "armadito-fleet-password")

# -- the real agent's requests, literally ------------------------------------------------------

EXAMPLE_UUID = "4C4C4544-0033-4A10-8051-FFFFFFFFFFFF"
ENVELOPE = (
    '{"agent_id": 12, "agent_version": "0.10.1", "uuid": "4C4C4544-0033-4A10-8051-FFFFFFFFFFFF",\n'
    ' "task": {"name": "<Task>",\n'
    '          "antivirus": {"name": "Armadito", "version": "0.12.8", "program_path": "",\n'
    '                        "os_info": {"name": "linux", "libpath": "Linux"}},\n'
    '          "obj": <task-specific>}}'
)
ENROLLMENT = '{"key": "0RV2V-2RYTX-NX4OW-7LARZ-KZQAJ"}'
GETJOBS_PATH = "/api/jobs?agent_id=12&antivirus=Armadito&agent_id=12"
RUNJOBS_SUCCESS = (
    '{"job_id":7,"code":0,"message":"runJob successful",'
    '"start_time":1795303287,"end_time":1795303288}'
)
# Failure: code != 0 and the message is the error text in MIME base64.
RUNJOBS_FAILURE = (
    '{"job_id":7,"code":1,"message":"<base64>","start_time":1795303287,"end_time":1795303288}'
)
SCAN = (
    '{"job_id":7,"progress":100,"duration":"PT0H0M0S","scanned_count":42,'
    '"malware_count":1,"suspicious_count":0}'
)
ALERTS = (
    '{"job_id":7,"alerts":[{"name":"Eicar-Test-Signature","filepath":"/tmp/scanme/eicar.com",'
    '"action":"none","module_name":"clamav","detection_time":1500000100}]}'
)
# "job_id absent when run standalone"
ALERTS_STANDALONE = (
    '{"alerts":[{"name":"Eicar-Test-Signature","filepath":"/tmp/scanme/eicar.com",'
    '"action":"none","module_name":"clamav","detection_time":1500000100}]}'
)
STATE = (
    '{"dbinfo":{"global_status":"up-to-date","global_update_timestamp":1500000000,'
    '"modules":[{"name":"clamav","mod_status":"up-to-date","mod_update_timestamp":1499990000}]},'
    '"avdetails":[]}'
)
AVCONFIG = (
    '[{"attr":"on-access:enabled","value":"1"}, '
    '{"attr":"on-access:mount-points","value":"/home"}, '
    '{"attr":"on-demand:archives","value":"0"}]'
)
SCHEDULER = (
    '{"name":"Cron","confdetails":[{"attr":"scheduler:task:Getjobs:freq","value":"* * * * *"}, '
    '{"attr":"scheduler:task:Runjobs:freq","value":"*/5 * * * *"}]}'
)
JOBS_REPLY = (
    '{"jobs":[{"job_id":7,"job_type":"Scan","job_priority":"2",'
    '"obj":{"scanconfig_id":1,"scan_name":"quick","scan_path":"L3RtcC9zY2FubWU=",'
    '"scan_options":""}}]}'
)

# Times of the examples above, as the server must store them.
START_TIME = dt.datetime(2026, 11, 21, 23, 21, 27, tzinfo=dt.UTC)  # 1795303287
END_TIME = dt.datetime(2026, 11, 21, 23, 21, 28, tzinfo=dt.UTC)  # 1795303288
ALERT_TIME = dt.datetime(2017, 7, 14, 2, 41, 40, tzinfo=dt.UTC)  # 1500000100
DB_TIME = dt.datetime(2017, 7, 14, 2, 40, tzinfo=dt.UTC)  # 1500000000


def replace_once(text: str, old: str, new: str) -> str:
    """Substitute one value of an example; fails loudly if the example does not hold it."""
    if text.count(old) != 1:
        raise AssertionError(f"{old!r} occurs {text.count(old)} times in {text!r}")
    return text.replace(old, new)


def with_job(obj: str, job_id: int | str) -> str:
    value = json.dumps(job_id)
    return replace_once(obj, '"job_id":7', f'"job_id":{value}')


def with_key(key: str) -> str:
    return replace_once(ENROLLMENT, "0RV2V-2RYTX-NX4OW-7LARZ-KZQAJ", key)


def failure(job_id: int, text: str) -> str:
    encoded = base64.encodebytes(text.encode("utf-8")).decode("ascii")  # newline every 76
    return with_job(replace_once(RUNJOBS_FAILURE, '"<base64>"', json.dumps(encoded)), job_id)


def envelope(task: str, obj: str, *, uuid: str, agent_id: int) -> str:
    body = replace_once(ENVELOPE, '"agent_id": 12', f'"agent_id": {agent_id}')
    body = replace_once(body, EXAMPLE_UUID, uuid)
    body = replace_once(body, "<Task>", task)
    return replace_once(body, "<task-specific>", obj)


def new_uuid() -> str:
    return str(uuidlib.uuid4()).upper()


def basic_header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


PATH_STYLES = {
    "plain": "/api/{}",
    "trailing-slash": "/api/{}/",  # the agent's URL ended in a slash, the server kept one too
    "double-slash": "//api/{}",  # "http://server/" + "/api/x"
}

Client = TestClient | httpx.Client


@dataclass
class WireAgent:
    client: Client
    base: str = BASE
    uuid: str = field(default_factory=new_uuid)
    agent_id: int = 0
    credentials: tuple[str, str] | None = BASIC
    style: str = "plain"
    challenges: int = 0

    def url(self, name: str, query: str = "") -> str:
        path = PATH_STYLES[self.style].format(name)
        return f"{self.base}{path}{'?' + query if query else ''}"

    def request(
        self, method: str, url: str, body: str | None = None, client: Client | None = None
    ) -> httpx.Response:
        http = client or self.client
        headers = {"Content-Type": "application/json"}
        response = http.request(method, url, content=body, headers=headers)
        challenge = response.headers.get("www-authenticate", "")
        if response.status_code == 401 and challenge.startswith("Basic ") and self.credentials:
            # LWP answers the Basic challenge with the configuration file's credentials.
            self.challenges += 1
            headers["Authorization"] = basic_header(*self.credentials)
            response = http.request(method, url, content=body, headers=headers)
        return response

    def body(self, task: str, obj: str) -> str:
        return envelope(task, obj, uuid=self.uuid, agent_id=self.agent_id)

    def post(self, name: str, task: str, obj: str, client: Client | None = None) -> httpx.Response:
        return self.request("POST", self.url(name), self.body(task, obj), client)

    def post_raw(self, name: str, body: str) -> httpx.Response:
        return self.request("POST", self.url(name), body)

    def enroll(self, key: str) -> httpx.Response:
        response = self.post("agents", "Enrollment", with_key(key))
        if response.status_code == 200:
            data = response.json()
            if isinstance(data, dict) and data.get("agent_id", 0) > 0:
                self.agent_id = data["agent_id"]  # what the agent stores persistently
        return response

    def getjobs(self, query: str | None = None) -> httpx.Response:
        if query is None:
            # The real agent's query, literally: agent_id really appears twice.
            query = GETJOBS_PATH.partition("?")[2].replace(
                "agent_id=12", f"agent_id={self.agent_id}"
            )
        return self.request("GET", self.url("jobs", query))

    def runjob(self, job_id: int, client: Client | None = None) -> httpx.Response:
        return self.post("jobs", "Runjobs", with_job(RUNJOBS_SUCCESS, job_id), client)

    def runjob_failed(self, job_id: int, text: str) -> httpx.Response:
        return self.post("jobs", "Runjobs", failure(job_id, text))

    def scan(self, obj: str = SCAN, client: Client | None = None) -> httpx.Response:
        return self.post("scans", "Scan", obj, client)

    def alerts(self, obj: str = ALERTS_STANDALONE, client: Client | None = None) -> httpx.Response:
        return self.post("alerts", "Alerts", obj, client)

    def state(self, obj: str = STATE) -> httpx.Response:
        return self.post("states", "State", obj)

    def avconfig(self, obj: str = AVCONFIG) -> httpx.Response:
        return self.post("avconfigs", "AVConfig", obj)

    def scheduler(self, obj: str = SCHEDULER) -> httpx.Response:
        return self.post("schedulers", "Scheduler", obj)


def avconfig_pairs(pairs: list[tuple[str, str]]) -> str:
    return json.dumps([{"attr": a, "value": v} for a, v in pairs])


def scheduler_pairs(pairs: list[tuple[str, str]], name: str = "Cron") -> str:
    return json.dumps({"name": name, "confdetails": [{"attr": a, "value": v} for a, v in pairs]})


# -- the admin side ---------------------------------------------------------------------------


def create_job(admin: Admin, station_ids: list[int], priority: int = 2, **params: Any) -> int:
    body = {
        "type": "Scan",
        "station_ids": station_ids,
        "priority": priority,
        "params": {"path": "/tmp/scanme", **params},
    }
    response = admin.post("/jobs", body)
    assert response.status_code == 201, response.text
    job_id: int = response.json()["id"]
    return job_id


def job_target(admin: Admin, job_id: int, station_id: int) -> dict[str, Any]:
    response = admin.get(f"/jobs/{job_id}")
    assert response.status_code == 200, response.text
    targets: list[dict[str, Any]] = response.json()["targets"]
    (target,) = [t for t in targets if t["station_id"] == station_id]
    return target


def when(text: str | None) -> dt.datetime | None:
    return None if text is None else dt.datetime.fromisoformat(text)
