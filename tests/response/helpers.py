"""A Garrison agent as the response wire (RESPONSE-WIRE.md) has it: Getjobs, the receipt
(CLOUD_NOTIFICATION), the file upload and Runjobs with a result.  Works with the in-process
TestClient and with httpx against a real ``garrison serve``."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from tests.support import Admin, ArmaditoAgent


@dataclass
class ResponseAgent(ArmaditoAgent):
    def headers(self) -> dict[str, str]:
        return {**super().headers(), "X-Garrison-Agent": "test"}

    def jobs(self) -> list[dict[str, Any]]:
        response = self.getjobs()
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()["jobs"]
        return found

    def notify(self, job: dict[str, Any], notification_id: str | None = None) -> httpx.Response:
        """The receipt the agent sends for a job it stored."""
        investigation = job["obj"]["investigation_id"]
        event = {
            "id": notification_id or str(uuid.uuid4()),
            "type": "CLOUD_NOTIFICATION",
            "time": int(time.time()),
            "data": {
                "NOTIFICATION_ID": notification_id or str(uuid.uuid4()),
                "INVESTIGATION_ID": investigation,
                "NOTIFICATION": {"INVESTIGATION_ID": investigation},
                "JOB_ID": job["job_id"],
            },
        }
        return self.client.post(
            self.url("events"), content=json.dumps([event]), headers=self.headers()
        )

    def upload(
        self,
        data: bytes,
        job_id: int | None = None,
        alert: str | None = None,
        sha256: str | None = None,
        length: int | None = None,
    ) -> httpx.Response:
        digest = sha256 or hashlib.sha256(data).hexdigest()
        query = f"job_id={job_id}" if job_id is not None else f"alert={alert}"
        headers = {
            **self.headers(),
            "Content-Type": "application/octet-stream",
            "Content-Length": str(len(data) if length is None else length),
        }
        return self.client.put(self.url(f"files/{digest}?{query}"), content=data, headers=headers)

    def report(
        self,
        job_id: int,
        code: int = 0,
        result: dict[str, Any] | None = None,
        message: str = "runJob successful",
    ) -> httpx.Response:
        if code != 0:
            message = base64.encodebytes(message.encode()).decode()
        obj: dict[str, Any] = {
            "job_id": job_id,
            "code": code,
            "message": message,
            "start_time": int(time.time()) - 1,
            "end_time": int(time.time()),
        }
        if result is not None:
            obj["result"] = result
        return self.post("jobs", "Runjobs", obj)


def enroll(client: Any, key: str) -> ResponseAgent:
    agent = ResponseAgent(client)
    response = agent.enroll(key)
    assert response.status_code == 200, response.text
    return agent


def job(admin: Admin, job_id: int) -> dict[str, Any]:
    response = admin.get(f"/jobs/{job_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def target(admin: Admin, job_id: int, station_id: int) -> dict[str, Any]:
    found = [t for t in job(admin, job_id)["targets"] if t["station_id"] == station_id]
    assert len(found) == 1, found
    one: dict[str, Any] = found[0]
    return one


def create_job(admin: Admin, job_type: str, station_ids: list[int], **params: Any) -> int:
    response = admin.post("/jobs", {"type": job_type, "station_ids": station_ids, "params": params})
    assert response.status_code == 201, response.text
    job_id: int = response.json()["id"]
    return job_id
