"""/admin/v1/procedures: set (text or JSON), read, versions, enable/disable, delete, roles,
refusals, and the dry run that keeps nothing."""

from __future__ import annotations

from typing import Any

from tests.conftest import Server
from tests.events.helpers import audit_targets, events, put_procedure
from tests.support import assert_json_error, sqlite_only

SOURCE = "local args = ...\ngarrison.log('threat ' .. args.virus)\n"


def put_text(server: Server, name: str, source: str, **headers: str) -> Any:
    return server.client.put(
        f"/admin/v1/procedures/{name}",
        content=source.encode(),
        headers={**server.admin.headers, "Content-Type": "text/plain", **headers},
    )


def test_put_text_then_json_get_and_the_version_history(server: Server) -> None:
    first = put_text(server, "threat_detected", SOURCE)
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["name"], body["enabled"], body["version"], body["source"]) == (
        "threat_detected",
        True,
        1,
        SOURCE,
    )
    assert body["updated_by"] == "admin"

    second_source = "local args = ...\nreturn nil\n"
    second = server.admin.put(
        "/procedures/threat_detected", {"source": second_source, "enabled": False}
    )
    assert second.status_code == 200, second.text
    assert (second.json()["version"], second.json()["enabled"]) == (2, False)

    got = server.admin.get("/procedures/threat_detected")
    assert got.status_code == 200
    assert (got.json()["source"], got.json()["version"], got.json()["enabled"]) == (
        second_source,
        2,
        False,
    )
    put_procedure(server, "threat_detected", "return nil")
    versions = server.admin.get("/procedures/threat_detected/versions")
    assert versions.status_code == 200
    assert [(v["version"], v["source"], v["created_by"]) for v in versions.json()] == [
        (3, "return nil", "admin"),
        (2, second_source, "admin"),
        (1, SOURCE, "admin"),
    ]
    listed = server.admin.get("/procedures").json()
    assert [(p["name"], p["version"]) for p in listed] == [("threat_detected", 3)]
    assert audit_targets(server, "procedure.set") == ["threat_detected"] * 3


def test_enable_disable_and_delete(server: Server) -> None:
    put_procedure(server, "station_connected", "return nil")
    disabled = server.admin.post("/procedures/station_connected/disable")
    assert disabled.status_code == 200
    assert disabled.json()["enabled"] is False
    assert server.admin.get("/procedures/station_connected").json()["enabled"] is False
    enabled = server.admin.post("/procedures/station_connected/enable")
    assert enabled.status_code == 200
    assert enabled.json()["enabled"] is True
    # Enabling keeps the version: only a new source makes one.
    assert enabled.json()["version"] == 1
    assert server.admin.delete("/procedures/station_connected").status_code == 204
    assert_json_error(server.admin.get("/procedures/station_connected"), 404)
    assert server.admin.get("/procedures").json() == []


@sqlite_only
def test_a_syntax_error_is_422_naming_source(server: Server) -> None:
    response = put_text(server, "threat_detected", "local args = ...\nif then end\n")
    body = assert_json_error(response, 422)
    assert body["field"] == "source"
    assert body["error"].startswith("syntax error: threat_detected:2:"), body
    json_put = server.admin.put("/procedures/threat_detected", {"source": "return ("})
    assert assert_json_error(json_put, 422)["field"] == "source"
    assert_json_error(server.admin.get("/procedures/threat_detected"), 404)


@sqlite_only
def test_bytecode_is_refused(server: Server) -> None:
    response = put_text(server, "threat_detected", "\x1bLuaT\x00\x19\x93\r\n\x1a\n")
    body = assert_json_error(response, 422)
    assert body["field"] == "source"
    assert "binary chunk" in body["error"]


@sqlite_only
def test_bad_bodies_are_422(server: Server) -> None:
    assert assert_json_error(put_text(server, "threat_detected", "  \n"), 422)["field"] == (
        "source"
    )
    no_source = server.admin.put("/procedures/threat_detected", {"enabled": True})
    assert assert_json_error(no_source, 422)["field"] == "source"
    bad_enabled = server.admin.put(
        "/procedures/threat_detected", {"source": "return nil", "enabled": "yes"}
    )
    assert assert_json_error(bad_enabled, 422)["field"] == "enabled"
    broken_json = server.client.put(
        "/admin/v1/procedures/threat_detected",
        content=b"{not json",
        headers={**server.admin.headers, "Content-Type": "application/json"},
    )
    assert_json_error(broken_json, 400)


@sqlite_only
def test_an_unknown_procedure_name_is_404_json(server: Server) -> None:
    for response in (
        put_text(server, "virus_found", "return nil"),
        server.admin.put("/procedures/virus_found", {"source": "return nil"}),
        server.admin.get("/procedures/virus_found"),
        server.admin.get("/procedures/virus_found/versions"),
        server.admin.post("/procedures/virus_found/test", {"args": {}, "source": "return 1"}),
        server.admin.post("/procedures/virus_found/enable"),
        server.admin.delete("/procedures/virus_found"),
    ):
        body = assert_json_error(response, 404)
        assert "virus_found" in body["error"], body
    # A catalogue event that has no procedure (not a Dr.Web event) is unknown too.
    assert_json_error(put_text(server, "process_started", "return nil"), 404)


@sqlite_only
def test_a_viewer_can_read_but_not_set_test_or_toggle(server: Server) -> None:
    put_procedure(server, "threat_detected", SOURCE)
    viewer = server.admin.as_role("watcher", "viewer")
    assert viewer.get("/procedures/threat_detected").status_code == 200
    assert viewer.get("/procedures/threat_detected/versions").status_code == 200
    assert viewer.get("/procedures/errors").status_code == 200
    refused = server.client.put(
        "/admin/v1/procedures/threat_detected",
        content=b"return 'owned'",
        headers={**viewer.headers, "Content-Type": "text/plain"},
    )
    assert_json_error(refused, 403)
    assert_json_error(viewer.put("/procedures/threat_detected", {"source": "return 1"}), 403)
    assert_json_error(viewer.post("/procedures/threat_detected/disable"), 403)
    assert_json_error(viewer.post("/procedures/threat_detected/test", {"args": {}}), 403)
    assert_json_error(viewer.delete("/procedures/threat_detected"), 403)
    current = server.admin.get("/procedures/threat_detected").json()
    assert (current["version"], current["source"], current["enabled"]) == (1, SOURCE, True)
    operator = server.admin.as_role("oper", "operator")
    assert_json_error(operator.put("/procedures/threat_detected", {"source": "return 1"}), 403)
    anonymous = server.client.put("/admin/v1/procedures/threat_detected", content=b"return 1")
    assert_json_error(anonymous, 401)


@sqlite_only
def test_the_dry_run_returns_result_and_logs(server: Server) -> None:
    response = server.admin.post(
        "/procedures/threat_detected/test",
        {
            "args": {"id": 7, "virus": "Eicar", "object": "/tmp/e"},
            "source": "local args = ...\ngarrison.log('saw ' .. args.virus)\n"
            "garrison.log(args.object)\nreturn args.id * 6",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["result"], body["error"], body["logs"]) == (42, None, ["saw Eicar", "/tmp/e"])
    assert body["elapsed_ms"] >= 0


def test_the_dry_run_uses_the_stored_source_when_none_is_given(server: Server) -> None:
    put_procedure(server, "threat_detected", "local args = ...\nreturn {args.virus, 'x'}")
    response = server.admin.post("/procedures/threat_detected/test", {"args": {"virus": "V"}})
    assert response.status_code == 200, response.text
    assert response.json()["result"] == ["V", "x"]
    assert_json_error(server.admin.post("/procedures/station_deleted/test", {"args": {}}), 404)


def test_the_dry_run_keeps_nothing_but_its_audit_entry(server: Server) -> None:
    """Its writes are shown, none is made; the dry run itself is audited (issue 22)."""
    agent = server.enrolled_agent()
    events_before = len(events(server))
    audit_before = server.admin.get("/audit").json()
    source = (
        "local args = ...\n"
        "local job = garrison.create_job(args.id, 'Scan', {path = '/tmp'}, 2)\n"
        "garrison.raise_alert(args.id, 'Dry.Run', '/tmp/dry')\n"
        "garrison.audit('dry', 'target', 'detail')\n"
        "return job"
    )
    response = server.admin.post(
        "/procedures/threat_detected/test", {"args": {"id": agent.agent_id}, "source": source}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["error"] is None
    # Writes happen after a run, so create_job answers true, not the job's id.
    assert body["result"] is True
    assert body["writes"] == [
        {"action": "create_job", "args": [agent.agent_id, "Scan", {"path": "/tmp"}, 2]},
        {"action": "raise_alert", "args": [agent.agent_id, "Dry.Run", "/tmp/dry", "procedure"]},
        {"action": "audit", "args": ["dry", "target", "detail"]},
    ]
    assert server.admin.get("/jobs").json()["total"] == 0
    assert server.admin.get("/alerts").json()["total"] == 0
    audit_after = server.admin.get("/audit").json()
    assert audit_after[1:] == audit_before
    assert (audit_after[0]["action"], audit_after[0]["target"]) == (
        "procedure.test",
        "threat_detected",
    )
    assert audit_after[0]["details"] == {"error": None, "writes": 3}
    # The audit entry's event, and nothing else.
    assert [e["type"] for e in events(server)][: len(events(server)) - events_before] == ["audit"]
