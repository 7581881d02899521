"""Every console page renders for an admin, with a station, a job, an alert, a key, a
procedure and an export target behind it; forms show the admin API's messages beside
their fields; a viewer's pages carry no write control."""

from __future__ import annotations

import html
import re
import socket
from pathlib import Path

from sqlalchemy import update

from garrison.server.stations.models import Station
from tests.conftest import Server, ServerFactory
from tests.console.support import csrf_of, login, make_user
from tests.export.test_durability import send, target
from tests.support import wait_for

PAGES = [
    "/dashboard",
    "/stations",
    "/jobs",
    "/jobs/new",
    "/alerts",
    "/events",
    "/hunts",
    "/files",
    "/keys",
    "/procedures",
    "/procedures/threat_detected",
    "/exports",
    "/users",
    "/audit",
    "/settings",
]
EICAR_ALERT = {
    "threat_name": "EICAR-Test-File",
    "filepath": "/tmp/eicar.com",
    "action": "quarantine",
    "module_name": "clamav",
    "detection_time": "2026-01-01T00:00:00Z",
}


def _fleet(server: Server) -> int:
    agent = server.enrolled_agent()
    with server.db.transaction() as session:
        session.execute(
            update(Station).where(Station.id == agent.agent_id).values(hostname="page-host")
        )
    return agent.agent_id


def test_every_page_renders_for_an_admin(server: Server, tmp_path: Path) -> None:
    station_id = _fleet(server)
    password = make_user(server.admin, "root2", "admin")
    login(server.client, "root2", password)
    for page in [*PAGES, f"/stations/{station_id}"]:
        answer = server.client.get(page)
        assert answer.status_code == 200, (page, answer.text[:2000])
        assert "<script>" not in answer.text
        assert " style=" not in answer.text, page  # CSP: no inline style either


def test_forms_show_the_admin_api_messages_beside_the_field(server: Server) -> None:
    password = make_user(server.admin, "root3", "admin")
    login(server.client, "root3", password)
    csrf = csrf_of(server.client.get("/keys").text)
    bad = server.client.post("/keys", data={"uses": "0", "expires_hours": "1", "csrf_token": csrf})
    assert bad.status_code == 422
    api = server.admin.post("/enrollment-keys", {"uses": 0})
    message = api.json()["details"][0]["problem"]
    assert re.search(r'id="e-uses" class="problem">' + re.escape(message), bad.text), bad.text
    made = server.client.post(
        "/keys", data={"uses": "5", "expires_hours": "2", "description": "d", "csrf_token": csrf}
    )
    assert made.status_code == 201
    assert "garrison-agent -s http://testserver -t Enrollment -k " in made.text
    # A Lua syntax error: the same message as PUT /admin/v1/procedures, beside the source.
    broken = "return (("
    page = server.client.post(
        "/procedures/threat_detected",
        data={"source": broken, "do": "save", "args": "{}", "csrf_token": csrf},
    )
    assert page.status_code == 422
    api_put = server.client.put(
        "/admin/v1/procedures/threat_detected",
        content=broken,
        headers={**server.admin.headers, "Content-Type": "text/plain"},
    )
    assert api_put.status_code == 422
    assert html.escape(api_put.json()["message"]) in page.text


def test_a_viewer_gets_no_write_control_on_any_page(server: Server) -> None:
    _fleet(server)
    password = make_user(server.admin, "watcher", "viewer")
    login(server.client, "watcher", password)
    for page in [
        "/dashboard",
        "/stations",
        "/jobs",
        "/alerts",
        "/procedures",
        "/procedures/threat_detected",
        "/exports",
        "/events",
    ]:
        answer = server.client.get(page)
        assert answer.status_code == 200, page
        forms = re.findall(r'<form method="post" action="([^"]+)"', answer.text)
        # The only POST forms a viewer sees: log out and the IOC sweep (a read).
        assert set(forms) <= {"/logout", "/events/ioc-sweep"}, (page, forms)
    for page in ["/keys", "/users", "/audit", "/settings", "/jobs/new", "/files"]:
        assert server.client.get(page).status_code == 403, page


def test_the_exports_page_shows_each_targets_counters(server_factory: ServerFactory) -> None:
    server = server_factory(export_allow_local=True)  # the target is on this host
    with socket.socket() as closed:  # a port nothing listens on: every send fails
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    target(server, "down", port)
    send(server, server.enrolled_agent().headers(), 0, 3)
    wait_for(
        lambda: server.admin.get("/export-targets").json()[0]["failures"],
        timeout=15,
        what="a failed send counted",
    )
    password = make_user(server.admin, "root8", "admin")
    login(server.client, "root8", password)
    page = server.client.get("/exports").text
    row = page.split("<td>down</td>", 1)[1].split("</tr>", 1)[0]
    assert "unreachable" in row
    failures = server.admin.get("/export-targets").json()[0]["failures"]
    assert failures >= 1
    assert '<th scope="col">Failed sends</th>' in page
