"""The fleet device rules (``/admin/v1/device-rules``) over the signed content, on both
backends: each change is a new version of the ``device-rules`` rule set every scope gets,
order is kept (the first match decides), bad input is refused with a JSON error, viewers
change nothing; and the per-station uninstall token and isolation state routes."""

from __future__ import annotations

from typing import Any

import pytest

from garrison.common import uninstall_token
from tests.conftest import Server
from tests.server.test_content_api import garrison_agent, group_with
from tests.support import assert_json_error


def test_rules_keep_their_order_and_reach_every_scope(server: Server) -> None:
    agent, _ = garrison_agent(server)
    group_with(server, "lab", agent.agent_id)
    block = server.admin.post("/device-rules", {"action": "block", "device_class": "usb-storage"})
    assert block.status_code == 201, block.text
    assert block.json()["rule"] == "block usb-storage *:*"
    allow = server.admin.post(
        "/device-rules",
        {"action": "allow", "device_class": "usb-storage", "vendor": "0781", "product": "5567",
         "serial": "4C530001", "comment": "office stick", "position": 0},
    )  # fmt: skip
    assert allow.status_code == 201, allow.text
    listed = server.admin.get("/device-rules").json()
    assert listed["version"] == 2
    assert [r["rule"] for r in listed["rules"]] == [
        "allow usb-storage 0781:5567 4C530001",
        "block usb-storage *:*",
    ]
    assert listed["rules"][0]["comment"] == "office stick"
    files = agent.get("content/manifest").json()["manifest"]["files"]
    assert {f["ruleset"]: f["kind"] for f in files}["device-rules"] == "devices"
    removed = server.admin.delete(f"/device-rules/{block.json()['id']}")
    assert removed.status_code == 200, removed.text
    assert [r["id"] for r in server.admin.get("/device-rules").json()["rules"]] == [
        allow.json()["id"]
    ]
    assert_json_error(server.admin.delete("/device-rules/999"), 404, "not_found")
    actions = [item["action"] for item in server.admin.get("/audit", params={"limit": 100}).json()]
    assert "device_rules.add" in actions
    assert "device_rules.remove" in actions


@pytest.mark.parametrize(
    "body",
    [
        {"action": "deny"},
        {"action": "block", "device_class": "floppy"},
        {"action": "block", "vendor": "781"},
        {"action": "block", "product": "zzzz"},
        {"action": "block", "serial": "has space"},
        {"action": "block", "comment": "two\nlines"},
        {"action": "block", "position": -1},
        {"action": "block", "extra": 1},
    ],
)
def test_bad_rules_are_refused_with_a_json_error(server: Server, body: dict[str, Any]) -> None:
    response = server.admin.post("/device-rules", body)
    assert response.status_code in (400, 422), response.text
    assert_json_error(response, response.status_code)
    assert server.admin.get("/device-rules").json()["rules"] == []


def test_viewers_read_and_change_nothing(server: Server) -> None:
    assert server.admin.post("/device-rules", {"action": "block"}).status_code == 201
    viewer = server.admin.as_role("vera", "viewer")
    assert viewer.get("/device-rules").status_code == 200
    assert_json_error(viewer.post("/device-rules", {"action": "allow"}), 403)
    assert_json_error(viewer.delete("/device-rules/1"), 403)
    assert_json_error(viewer.post("/stations/1/uninstall-token", {}), 403)


def test_an_uninstall_token_names_its_station_and_isolation_is_shown(server: Server) -> None:
    agent, _ = garrison_agent(server)
    made = server.admin.post(f"/stations/{agent.agent_id}/uninstall-token", {"expires_in": 600})
    assert made.status_code == 201, made.text
    statement, _signed, signature = uninstall_token.decode(made.json()["token"])
    assert statement["agent_id"] == agent.agent_id
    assert statement["type"] == "garrison-uninstall"
    assert len(signature) == 64  # Ed25519
    assert_json_error(server.admin.post("/stations/9999/uninstall-token", {}), 404)
    assert_json_error(
        server.admin.post(f"/stations/{agent.agent_id}/uninstall-token", {"expires_in": 1}), 422
    )
    shown = server.admin.get(f"/stations/{agent.agent_id}/isolation").json()
    assert shown == {**shown, "isolated": False, "tampered": 0, "last_tampered": None}
