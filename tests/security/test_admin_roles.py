"""Role-based access on the admin API: viewer reads, operator runs jobs, admin administers.

Every refused write answers 403 with a JSON body and leaves every list exactly as it was.
The last active admin can be neither demoted, disabled nor deleted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from garrison.server.alerts.models import Alert
from garrison.server.store.base import utcnow
from tests.conftest import Server
from tests.security.checks import EICAR, create_scan_job
from tests.support import Admin, assert_json_error


@dataclass
class World:
    """One of everything an administrator can change."""

    station_id: int
    job_id: int
    alert_id: int
    key: str
    group: str = "existing-group"


def add_alert(server: Server, station_id: int) -> int:
    """Written directly: these tests are about acknowledging, not about ingestion."""
    now = utcnow()
    with server.db.transaction() as session:
        alert = Alert(
            station_id=station_id,
            threat_name=EICAR["name"],
            filepath=EICAR["filepath"],
            detection_time=now,
            received_at=now,
            checksum="0" * 64,
            info={},
        )
        session.add(alert)
        session.flush()
        alert_id: int = alert.id
    return alert_id


@pytest.fixture
def world(server: Server) -> World:
    agent = server.enrolled_agent()
    alert_id = add_alert(server, agent.agent_id)
    assert server.admin.post("/groups", {"name": "existing-group"}).status_code == 201
    return World(
        station_id=agent.agent_id,
        job_id=create_scan_job(server, agent.agent_id),
        alert_id=alert_id,
        key=server.admin.new_key(uses=5),
    )


def snapshot(server: Server) -> dict[str, Any]:
    """Everything the writes below could change, read back as the bootstrap admin."""
    views: dict[str, Any] = {}
    for path in (
        "/enrollment-keys",
        "/jobs",
        "/alerts",
        "/users",
        "/settings",
        "/stations",
        "/groups",
        "/configs/avconfig/desired",
        "/configs/scheduler/desired",
        "/audit",
    ):
        response = server.admin.get(path)
        assert response.status_code == 200, (path, response.text)
        views[path] = response.json()
    for station in views["/stations"]["items"]:
        # Check-in times move on their own (coalesced last_seen writes).
        station.pop("last_seen")
        station.pop("online")
    return views


def writes(who: Admin, w: World) -> dict[str, httpx.Response]:
    """Each admin API write, once, as ``who``; keys name them for failure messages."""
    return {
        "create key": who.post("/enrollment-keys", {"uses": 1, "expires_in": 3600}),
        "revoke key": who.delete(f"/enrollment-keys/{w.key}"),
        "create job": who.post(
            "/jobs", {"type": "Scan", "station_ids": [w.station_id], "params": {"path": "/"}}
        ),
        "cancel job": who.post(f"/jobs/{w.job_id}/cancel"),
        "ack alert": who.post("/alerts/acknowledge", {"alert_ids": [w.alert_id]}),
        "assign alert": who.post(
            "/alerts/assign", {"alert_ids": [w.alert_id], "assignee": "admin"}
        ),
        "comment alert": who.post(f"/alerts/{w.alert_id}/comments", {"body": "x"}),
        "create user": who.post(
            "/users", {"username": "mallory", "password": "mallory-password", "role": "admin"}
        ),
        "demote admin": who.patch("/users/admin", {"role": "viewer"}),
        "delete user": who.delete("/users/admin"),
        "patch settings": who.patch("/settings", {"getjobs_limit": 1}),
        "delete station": who.delete(f"/stations/{w.station_id}"),
        "create group": who.post("/groups", {"name": "new-group"}),
        "delete group": who.delete(f"/groups/{w.group}"),
        "group members": who.post(f"/groups/{w.group}/stations", {"add": [w.station_id]}),
        "desired config": who.put(
            "/configs/avconfig/desired",
            {"attributes": [{"attr": "on-access:enabled", "value": "0"}]},
        ),
    }


def assert_forbidden(response: httpx.Response, what: str) -> None:
    assert response.status_code == 403, (what, response.status_code, response.text)
    assert_json_error(response, 403, "forbidden")


def test_viewer_cannot_write_anything(server: Server, world: World) -> None:
    viewer = server.admin.as_role("vic", "viewer")
    before = snapshot(server)

    for what, response in writes(viewer, world).items():
        assert_forbidden(response, what)

    assert snapshot(server) == before


# Operations that are not GET but only read, or act on the caller's own session.
NOT_WRITES = {
    ("post", "/admin/v1/auth/login"),
    ("post", "/admin/v1/auth/logout"),
    ("post", "/admin/v1/events/ioc-sweep"),
}
# What an operator may change; every other write needs the admin role.
OPERATOR_WRITES = {
    ("post", "/admin/v1/jobs"),
    ("post", "/admin/v1/jobs/{job_id}/cancel"),
    ("post", "/admin/v1/alerts/acknowledge"),
    ("post", "/admin/v1/alerts/assign"),
    ("post", "/admin/v1/alerts/{alert_id}/comments"),
    ("post", "/admin/v1/groups"),
    ("delete", "/admin/v1/groups/{name}"),
    ("post", "/admin/v1/groups/{name}/stations"),
    ("post", "/admin/v1/hunts"),
    ("post", "/admin/v1/hunts/{hunt_id}/stop"),
}


def write_operations(server: Server) -> list[tuple[str, str]]:
    doc = server.client.get("/admin/v1/openapi.json", headers=server.admin.headers).json()
    ops = sorted(
        (method, path)
        for path, item in doc["paths"].items()
        for method in item
        if method in ("post", "put", "patch", "delete")
    )
    assert len(ops) >= 15, ops
    assert set(ops) >= OPERATOR_WRITES, "update OPERATOR_WRITES: an operation was renamed"
    return [op for op in ops if op not in NOT_WRITES]


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_every_write_operation_checks_the_role(server: Server, world: World, role: str) -> None:
    """Driven by the OpenAPI document, so a new write operation is covered the day it lands:
    a viewer may change nothing, an operator only jobs, alerts and groups."""
    who = server.admin.as_role(f"{role}-user", role)
    before = snapshot(server)
    checked = 0
    for method, path in write_operations(server):
        if role == "operator" and (method, path) in OPERATOR_WRITES:
            continue
        url = re.sub(r"\{[^}]+\}", "1", path)
        for body in ({}, {"name": "x", "uses": 1, "role": "admin"}):
            response = server.client.request(method.upper(), url, headers=who.headers, json=body)
            assert_forbidden(response, f"{role}: {method} {path}")
        checked += 1
    assert checked >= 10
    assert snapshot(server) == before


def test_viewer_can_read_but_not_secrets(server: Server, world: World) -> None:
    viewer = server.admin.as_role("vic", "viewer")
    for path in ("/stations", "/jobs", f"/jobs/{world.job_id}", "/alerts", "/scans", "/groups"):
        assert viewer.get(path).status_code == 200, path
    # Enrollment keys let a machine in; users and the audit log are the admins' business.
    for path in ("/enrollment-keys", "/users", "/audit", "/settings"):
        assert_forbidden(viewer.get(path), path)


def test_operator_runs_jobs_and_acks_alerts(server: Server, world: World) -> None:
    operator = server.admin.as_role("opal", "operator")

    created = operator.post(
        "/jobs", {"type": "Scan", "station_ids": [world.station_id], "params": {"path": "/"}}
    )
    assert created.status_code == 201, created.text
    new_job = created.json()["id"]
    assert created.json()["created_by"] == "opal"

    cancelled = operator.post(f"/jobs/{new_job}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["cancelled"] == 1
    targets = server.admin.get(f"/jobs/{new_job}").json()["targets"]
    assert [t["status"] for t in targets] == ["cancelled"]

    acked = operator.post("/alerts/acknowledge", {"alert_ids": [world.alert_id]})
    assert acked.status_code == 200, acked.text
    assert acked.json()[0]["acknowledged_by"] == "opal"


def test_operator_cannot_administer(server: Server, world: World) -> None:
    operator = server.admin.as_role("opal", "operator")
    before = snapshot(server)

    done = writes(operator, world)
    for what in (
        "create key",
        "revoke key",
        "create user",
        "demote admin",
        "delete user",
        "patch settings",
        "delete station",
        "desired config",
    ):
        assert_forbidden(done[what], what)
    for path in ("/enrollment-keys", "/users", "/audit", "/settings"):
        assert_forbidden(operator.get(path), path)

    after = snapshot(server)
    for path in (
        "/enrollment-keys",
        "/users",
        "/settings",
        "/stations",
        "/configs/avconfig/desired",
    ):
        assert after[path] == before[path], path


def test_operator_cannot_escalate_through_its_own_account(server: Server) -> None:
    operator = server.admin.as_role("opal", "operator")
    assert_forbidden(operator.patch("/users/opal", {"role": "admin"}), "self-promotion")
    users = {u["username"]: u["role"] for u in server.admin.get("/users").json()}
    assert users["opal"] == "operator"


def test_admin_can_administer(server: Server, world: World) -> None:
    admin = server.admin.as_role("ada", "admin")

    key = admin.post("/enrollment-keys", {"uses": 1, "expires_in": 3600})
    assert key.status_code == 201, key.text
    assert key.json()["created_by"] == "ada"
    assert admin.delete(f"/enrollment-keys/{world.key}").status_code == 200
    user = admin.post("/users", {"username": "val", "password": "val-password-1", "role": "viewer"})
    assert user.status_code == 201, user.text
    settings = admin.patch("/settings", {"getjobs_limit": 5})
    assert settings.status_code == 200, settings.text
    assert settings.json()["getjobs_limit"] == 5
    desired = admin.put(
        "/configs/avconfig/desired", {"attributes": [{"attr": "on-access:enabled", "value": "0"}]}
    )
    assert desired.status_code == 200, desired.text
    assert admin.delete(f"/stations/{world.station_id}").status_code == 204

    assert key.json()["id"] in {k["id"] for k in server.admin.get("/enrollment-keys").json()}
    assert "val" in {u["username"] for u in server.admin.get("/users").json()}
    assert server.admin.get("/stations").json()["total"] == 0
    actions = {e["action"] for e in server.admin.get("/audit", user="ada").json()}
    assert {"enrollment_key.create", "user.create", "settings.update", "station.delete"} <= actions


def admin_names(server: Server) -> dict[str, tuple[str, bool]]:
    return {u["username"]: (u["role"], u["disabled"]) for u in server.admin.get("/users").json()}


def test_last_admin_cannot_be_demoted_disabled_or_deleted(server: Server) -> None:
    for change in ({"role": "operator"}, {"role": "viewer"}, {"disabled": True}):
        assert_json_error(server.admin.patch("/users/admin", change), 409)
    assert_json_error(server.admin.delete("/users/admin"), 409)

    assert admin_names(server) == {"admin": ("admin", False)}
    assert server.admin.get("/auth/me").json()["role"] == "admin"


def test_disabled_admins_do_not_count(server: Server) -> None:
    server.admin.as_role("ada", "admin")
    assert server.admin.patch("/users/ada", {"disabled": True}).status_code == 200

    assert_json_error(server.admin.patch("/users/admin", {"role": "viewer"}), 409)
    assert_json_error(server.admin.patch("/users/admin", {"disabled": True}), 409)
    assert admin_names(server)["admin"] == ("admin", False)


def test_an_admin_can_go_while_another_stays(server: Server) -> None:
    ada = server.admin.as_role("ada", "admin")

    assert ada.patch("/users/admin", {"role": "operator"}).status_code == 200
    # Now ada is the last one.
    assert_json_error(ada.patch("/users/ada", {"role": "operator"}), 409)
    assert_json_error(ada.patch("/users/ada", {"disabled": True}), 409)
    assert_json_error(ada.delete("/users/ada"), 409)
    roles = {u["username"]: u["role"] for u in ada.get("/users").json()}
    assert roles == {"admin": "operator", "ada": "admin"}
