"""Alert triage (assign, comment, bulk) in the admin API, the CLI's use case and the
console, on both backends: the console calls the same use case and shows the admin API's
messages beside the field; a viewer sees no triage control and a forced one is refused;
a change without the CSRF token changes nothing."""

from __future__ import annotations

import html
import re
from typing import Any

from tests.conftest import Server
from tests.console.support import csrf_of, login, make_user
from tests.support import assert_json_error


def _alerts(server: Server, count: int) -> list[int]:
    agent = server.enrolled_agent()
    reports = [
        {
            "name": f"Triage-Threat-{i}",
            "filepath": f"/tmp/triage-{i}",
            "action": "none",
            "module_name": "clamav",
            "detection_time": 1500000100 + i,
        }
        for i in range(count)
    ]
    assert agent.alerts(reports).status_code == 200
    page = server.admin.get("/alerts", station_id=agent.agent_id).json()
    return sorted(a["id"] for a in page["items"])


def _alert(server: Server, alert_id: int) -> dict[str, Any]:
    answer = server.admin.get(f"/alerts/{alert_id}")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def test_assign_and_comment_in_the_admin_api(server: Server) -> None:
    make_user(server.admin, "analyst", "operator")
    first, second = _alerts(server, 2)
    both = {"alert_ids": [first, second], "assignee": "analyst"}
    done = server.admin.post("/alerts/assign", both)
    assert done.status_code == 200, done.text
    assert {a["assigned_to"] for a in done.json()} == {"analyst"}
    assert _alert(server, first)["assigned_at"] is not None
    mine = server.admin.get("/alerts", assigned_to="analyst", acknowledged="false").json()
    assert sorted(a["id"] for a in mine["items"]) == [first, second]
    assert server.admin.get("/alerts", assigned_to="").json()["total"] == 0
    # Nothing changes: refused; an unknown user, a missing alert: named.
    again = server.admin.post("/alerts/assign", {"alert_ids": [first], "assignee": "analyst"})
    assert_json_error(again, 409, "conflict")
    nobody = server.admin.post("/alerts/assign", {"alert_ids": [first], "assignee": "ghost"})
    assert_json_error(nobody, 422, "invalid_input")
    assert nobody.json()["message"] == "no user 'ghost'"
    missing = server.admin.post("/alerts/assign", {"alert_ids": [999999], "assignee": None})
    assert_json_error(missing, 404, "not_found")
    unassigned = server.admin.post("/alerts/assign", {"alert_ids": [second], "assignee": None})
    assert unassigned.json()[0]["assigned_to"] is None
    assert server.admin.get("/alerts", assigned_to="").json()["total"] == 1

    made = server.admin.post(f"/alerts/{first}/comments", {"body": "  looks like a test file  "})
    assert made.status_code == 201, made.text
    assert made.json()["body"] == "looks like a test file"
    assert made.json()["author"] == "admin"
    server.admin.post(f"/alerts/{first}/comments", {"body": "second note"})
    notes = _alert(server, first)["comments"]
    assert [n["body"] for n in notes] == ["looks like a test file", "second note"]
    blank = server.admin.post(f"/alerts/{first}/comments", {"body": "   "})
    assert_json_error(blank, 422, "invalid_input")
    assert_json_error(server.admin.post(f"/alerts/{first}/comments", {"body": ""}), 422)
    assert_json_error(server.admin.post("/alerts/999999/comments", {"body": "x"}), 404)
    actions = [e["action"] for e in server.admin.get("/audit").json()]
    assert actions.count("alert.assign") == 2
    assert actions.count("alert.comment") == 2

    viewer = server.admin.as_role("readonly", "viewer")
    assert viewer.get(f"/alerts/{first}").status_code == 200
    refused = viewer.post(f"/alerts/{first}/comments", {"body": "x"})
    assert_json_error(refused, 403)
    assert len(_alert(server, first)["comments"]) == 2


def test_console_bulk_assign_comment_and_the_admin_api_messages(server: Server) -> None:
    make_user(server.admin, "analyst2", "operator")
    password = make_user(server.admin, "triager", "operator")
    login(server.client, "triager", password)
    ids = _alerts(server, 3)
    page = server.client.get("/alerts")
    assert page.status_code == 200
    assert 'formaction="/alerts/assign"' in page.text
    csrf = csrf_of(page.text)
    bulk = server.client.post(
        "/alerts/assign",
        data={"alert_ids": [str(i) for i in ids[:2]], "assignee": "analyst2", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert bulk.status_code == 303, bulk.text
    assert [_alert(server, i)["assigned_to"] for i in ids] == ["analyst2", "analyst2", None]
    filtered = server.client.get("/alerts", params={"assigned_to": "analyst2"})
    assert filtered.text.count('name="alert_ids" value=') == 2 * 2  # checkbox + button each

    # No alert selected: the admin API's own message for an empty alert_ids.
    empty = server.client.post("/alerts/assign", data={"assignee": "x", "csrf_token": csrf})
    assert empty.status_code == 422
    api = server.admin.post("/alerts/assign", {"alert_ids": [], "assignee": "x"})
    assert html.escape(api.json()["details"][0]["problem"]) in empty.text

    detail = server.client.get(f"/alerts/{ids[2]}")
    assert detail.status_code == 200
    assert "Triage-Threat-2" in detail.text
    said = server.client.post(
        f"/alerts/{ids[2]}",
        data={"do": "comment", "body": "checked with the owner", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert said.status_code == 303
    assert "checked with the owner" in server.client.get(f"/alerts/{ids[2]}").text
    # A blank comment and an unknown user: the admin API's messages, beside their fields.
    blank = server.client.post(
        f"/alerts/{ids[2]}", data={"do": "comment", "body": "  ", "csrf_token": csrf}
    )
    assert blank.status_code == 422
    api_blank = server.admin.post(f"/alerts/{ids[2]}/comments", {"body": "  "})
    message = html.escape(api_blank.json()["message"])
    assert re.search(r'id="e-body" class="problem">' + re.escape(message), blank.text)
    ghost = server.client.post(
        f"/alerts/{ids[2]}", data={"do": "assign", "assignee": "ghost", "csrf_token": csrf}
    )
    assert ghost.status_code == 422
    assert re.search(r'id="e-assignee" class="problem">no user &#39;ghost&#39;', ghost.text)
    acked = server.client.post(
        f"/alerts/{ids[2]}", data={"do": "acknowledge", "csrf_token": csrf}, follow_redirects=False
    )
    assert acked.status_code == 303
    assert _alert(server, ids[2])["acknowledged_by"] == "triager"
    assert len(_alert(server, ids[2])["comments"]) == 1

    # Without the CSRF token: refused, nothing changed.
    forged = server.client.post(f"/alerts/{ids[0]}", data={"do": "comment", "body": "forged"})
    assert forged.status_code == 403
    assert _alert(server, ids[0])["comments"] == []


def test_a_viewer_sees_no_triage_control_and_a_forced_one_is_refused(server: Server) -> None:
    [alert_id] = _alerts(server, 1)
    password = make_user(server.admin, "watcher2", "viewer")
    login(server.client, "watcher2", password)
    for page in ["/alerts", f"/alerts/{alert_id}"]:
        answer = server.client.get(page)
        assert answer.status_code == 200, page
        forms = re.findall(r'<form method="post" action="([^"]+)"', answer.text)
        assert set(forms) == {"/logout"}, (page, forms)
        assert "formaction=" not in answer.text
    csrf = csrf_of(server.client.get("/alerts").text)
    for path, data in [
        (f"/alerts/{alert_id}", {"do": "comment", "body": "x"}),
        (f"/alerts/{alert_id}", {"do": "assign", "assignee": "admin"}),
        ("/alerts/assign", {"alert_ids": str(alert_id), "assignee": "admin"}),
    ]:
        refused = server.client.post(path, data={**data, "csrf_token": csrf})
        assert refused.status_code == 403, path
        assert "this needs the operator role; you are viewer" in refused.text
    after = _alert(server, alert_id)
    assert (after["assigned_to"], after["comments"]) == (None, [])
