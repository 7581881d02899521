"""Procedure sets (issue 23): named, ordered sets whose procedures every event runs through
in set order; the authorization chain stops at the first set that answers, the others run
every set's procedure; the default set keeps today's API working; the admin API refuses
ties, unknown sets and half-applied changes."""

from __future__ import annotations

from typing import Any

from garrison.server.audit.actor import Actor
from garrison.server.procedures import dispatcher
from garrison.server.procedures import service as procedures
from tests.conftest import Server
from tests.events.helpers import (
    alert,
    audit_targets,
    garrison_agent,
    procedure_errors,
    put_procedure,
)
from tests.events.test_authorization_procedure import PROCEDURE, same_uuid_elsewhere, token_works
from tests.support import assert_json_error, sqlite_only, wait_for


def put_set(server: Server, name: str, order: int, enabled: bool = True) -> dict[str, Any]:
    response = server.admin.put(f"/procedure-sets/{name}", {"order": order, "enabled": enabled})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def put_in_set(server: Server, event: str, set_name: str, source: str) -> dict[str, Any]:
    response = server.client.put(
        f"/admin/v1/procedures/{event}",
        params={"set": set_name},
        content=source.encode(),
        headers={**server.admin.headers, "Content-Type": "text/plain"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_nil_in_the_first_set_lets_the_next_set_deny(server: Server) -> None:
    """Done when: a (order 1) answers nil, b (order 2) 'deny': re-authorization refused."""
    put_set(server, "a", 1)
    put_set(server, "b", 2)
    put_in_set(server, PROCEDURE, "a", "local args = ...\ngarrison.audit('a_ran', args.id)\n")
    put_in_set(server, PROCEDURE, "b", "local args = ...\nreturn 'deny'")
    agent = garrison_agent(server)
    body = assert_json_error(agent.enroll(server.first_key), 403)
    assert (
        body["error"] == "authorization denied by the station_authorization_in_progress procedure"
    )
    # a ran (its write is applied), then b decided.
    assert audit_targets(server, "procedure.a_ran") == [str(agent.agent_id)]
    assert token_works(server, agent.token or "")


def test_an_answer_in_the_first_set_means_the_next_is_not_called(server: Server) -> None:
    """Done when: a answers 'force': b is not called (its side effects are absent)."""
    put_set(server, "a", 1)
    put_set(server, "b", 2)
    put_in_set(
        server, PROCEDURE, "a", "local args = ...\nif args.connected then return 'force' end"
    )
    put_in_set(
        server,
        PROCEDURE,
        "b",
        "local args = ...\ngarrison.audit('b_ran', args.id)\nreturn 'deny'",
    )
    agent = garrison_agent(server)
    clone, response = same_uuid_elsewhere(server, agent)
    assert response.status_code == 200, response.text  # a's 'force' let the clone in
    assert token_works(server, clone.token or "")
    assert audit_targets(server, "procedure.b_ran") == []
    assert procedure_errors(server) == []


def test_the_default_set_runs_first_and_a_disabled_set_is_skipped(server: Server) -> None:
    put_set(server, "vendor", 5)
    put_in_set(server, PROCEDURE, "vendor", "return 'deny'")
    put_procedure(server, PROCEDURE, "return nil")  # the default set (order 0)
    assert server.admin.put("/procedure-sets/vendor", {"enabled": False}).status_code == 200
    agent = garrison_agent(server)
    assert agent.enroll(server.first_key).status_code == 200  # vendor's deny is not asked
    assert server.admin.put("/procedure-sets/vendor", {"enabled": True}).status_code == 200
    assert_json_error(agent.enroll(server.first_key), 403)


def test_a_failure_in_one_set_does_not_stop_the_next_for_threat_detected(server: Server) -> None:
    """Done when: a failing procedure in one set does not stop the next set's."""
    put_set(server, "a", 1)
    put_set(server, "b", 2)
    put_in_set(
        server, "threat_detected", "a", "local args = ...\nerror('a broke on ' .. args.virus)"
    )
    put_in_set(
        server, "threat_detected", "b", "local args = ...\ngarrison.audit('b_saw', args.virus)"
    )
    agent = server.enrolled_agent()
    assert agent.alerts([alert("One"), alert("Two", "/tmp/two", 1500000101)]).status_code == 200
    wait_for(lambda: len(audit_targets(server, "procedure.b_saw")) == 2, what="b ran twice")
    assert sorted(audit_targets(server, "procedure.b_saw")) == ["One", "Two"]
    errors = procedure_errors(server, "threat_detected")
    assert sorted((e["set"], e["error"]) for e in errors) == [
        ("a", "runtime error: threat_detected:2: a broke on One"),
        ("a", "runtime error: threat_detected:2: a broke on Two"),
    ]
    only_b = server.admin.get("/procedures/errors", set="b").json()
    assert only_b == []


def test_get_lists_the_events_procedures_with_their_sets_in_order(server: Server) -> None:
    put_set(server, "zeta", -5)
    put_set(server, "alpha", 7)
    put_in_set(server, "threat_detected", "alpha", "return 1")
    put_in_set(server, "threat_detected", "zeta", "return 2")
    default = put_procedure(server, "threat_detected", "return 0")
    assert (default["set"], default["order"]) == ("default", 0)
    got = server.admin.get("/procedures/threat_detected").json()
    assert [(p["set"], p["order"], p["source"]) for p in got["procedures"]] == [
        ("zeta", -5, "return 2"),
        ("default", 0, "return 0"),
        ("alpha", 7, "return 1"),
    ]
    # The object itself is the default set's procedure, as before sets (or ?set=).
    assert (got["set"], got["source"]) == ("default", "return 0")
    alpha = server.admin.get("/procedures/threat_detected", set="alpha").json()
    assert (alpha["set"], alpha["source"]) == ("alpha", "return 1")
    listed = server.admin.get("/procedures").json()
    assert [p["set"] for p in listed] == ["zeta", "default", "alpha"]
    sets = server.admin.get("/procedure-sets").json()
    assert [(s["name"], s["order"], s["procedures"]) for s in sets] == [
        ("zeta", -5, 1),
        ("default", 0, 1),
        ("alpha", 7, 1),
    ]


def test_versions_enable_disable_and_delete_are_per_set(server: Server) -> None:
    put_set(server, "lab", 3)
    put_in_set(server, "station_connected", "lab", "return 1")
    put_in_set(server, "station_connected", "lab", "return 2")
    put_procedure(server, "station_connected", "return 0")
    lab_versions = server.admin.get("/procedures/station_connected/versions", set="lab").json()
    assert [(v["set"], v["version"]) for v in lab_versions] == [("lab", 2), ("lab", 1)]
    default_versions = server.admin.get("/procedures/station_connected/versions").json()
    assert [(v["set"], v["version"]) for v in default_versions] == [("default", 1)]
    disabled = server.client.post(
        "/admin/v1/procedures/station_connected/disable",
        params={"set": "lab"},
        headers=server.admin.headers,
    )
    assert (disabled.status_code, disabled.json()["set"], disabled.json()["enabled"]) == (
        200,
        "lab",
        False,
    )
    assert server.admin.get("/procedures/station_connected").json()["enabled"] is True
    deleted = server.client.delete(
        "/admin/v1/procedures/station_connected",
        params={"set": "lab"},
        headers=server.admin.headers,
    )
    assert deleted.status_code == 204
    got = server.admin.get("/procedures/station_connected").json()
    assert [p["set"] for p in got["procedures"]] == ["default"]
    (entry, *_) = server.admin.get("/audit", action="procedure.delete").json()
    assert entry["details"] == {"set": "lab"}


def test_the_dry_run_of_an_event_shows_the_whole_chain(server: Server) -> None:
    put_set(server, "a", 1)
    put_set(server, "b", 2)
    put_set(server, "c", 3)
    put_in_set(server, PROCEDURE, "a", "garrison.log('a asked') return nil")
    put_in_set(server, PROCEDURE, "b", "return 'deny'")
    put_in_set(server, PROCEDURE, "c", "garrison.audit('c', 'x') return 'force'")
    response = server.admin.post(f"/procedures/{PROCEDURE}/test", {"args": {"id": 1}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["result"], body["answered_by"], body["error"]) == ("deny", "b", None)
    assert body["logs"] == ["a asked"]
    assert body["writes"] == []  # c was not called
    steps = [(s["set"], s["called"], s["result"], s["skipped"]) for s in body["chain"]]
    assert steps == [
        ("a", True, None, None),
        ("b", True, "deny", None),
        ("c", False, None, "set b answered"),
    ]
    assert all(s["elapsed_ms"] >= 0 for s in body["chain"])
    # One set's procedure alone, with ?set=.
    alone = server.client.post(
        f"/admin/v1/procedures/{PROCEDURE}/test",
        params={"set": "c"},
        json={"args": {}},
        headers=server.admin.headers,
    ).json()
    assert (alone["result"], alone["chain"]) == ("force", [])
    assert alone["writes"] == [{"action": "audit", "args": ["c", "x", ""]}]
    (entry, *_) = server.admin.get("/audit", action="procedure.test").json()
    assert entry["details"]["set"] == "c"


def test_sets_are_audited(server: Server) -> None:
    put_set(server, "ops", 4)
    assert server.admin.put("/procedure-sets/ops", {"order": 6}).status_code == 200
    assert server.admin.delete("/procedure-sets/ops").status_code == 204
    assert audit_targets(server, "procedure_set.create") == ["ops"]
    (change,) = server.admin.get("/audit", action="procedure_set.change").json()
    assert (change["details"]["order"], change["details"]["changed"]) == (6, ["order"])
    assert audit_targets(server, "procedure_set.delete") == ["ops"]


# -- bad input and faults ------------------------------------------------------------------


@sqlite_only
def test_two_sets_with_the_same_order_are_refused(server: Server) -> None:
    put_set(server, "a", 1)
    body = assert_json_error(server.admin.put("/procedure-sets/b", {"order": 1}), 409)
    assert body["field"] == "order"
    assert "'a' already has order 1" in body["error"]
    assert_json_error(server.admin.put("/procedure-sets/a", {"order": 0}), 409)  # default's
    assert assert_json_error(server.admin.get("/procedure-sets/b"), 404)["field"] == "set"
    assert [s["name"] for s in server.admin.get("/procedure-sets").json()] == ["default", "a"]
    assert audit_targets(server, "procedure_set.create") == ["a"]


@sqlite_only
def test_bad_set_bodies_and_names_are_refused(server: Server) -> None:
    assert assert_json_error(server.admin.put("/procedure-sets/new", {}), 422)["field"] == "order"
    assert_json_error(server.admin.put("/procedure-sets/new", {"order": "1"}), 422)
    assert_json_error(server.admin.put("/procedure-sets/new", {"order": 1.5}), 422)
    assert_json_error(server.admin.put("/procedure-sets/new", {"order": 10**7}), 422)
    assert_json_error(server.admin.put("/procedure-sets/new", {"order": 1, "x": 1}), 422)
    bad_name = server.admin.put("/procedure-sets/Has Space", {"order": 1})
    assert assert_json_error(bad_name, 422)["field"] == "set"
    body = assert_json_error(server.admin.delete("/procedure-sets/default"), 409)
    assert "cannot be deleted" in body["error"]
    assert_json_error(server.admin.delete("/procedure-sets/missing"), 404)
    assert [s["name"] for s in server.admin.get("/procedure-sets").json()] == ["default"]


@sqlite_only
def test_a_procedure_in_a_set_that_does_not_exist_is_refused_whole(server: Server) -> None:
    response = server.client.put(
        "/admin/v1/procedures/threat_detected",
        params={"set": "nowhere"},
        content=b"return nil",
        headers={**server.admin.headers, "Content-Type": "text/plain"},
    )
    body = assert_json_error(response, 404)
    assert (body["field"], body["error"]) == ("set", "no procedure set 'nowhere'")
    assert server.admin.get("/procedures").json() == []
    assert server.admin.get("/procedures/threat_detected/versions", set="nowhere").json() == []
    assert audit_targets(server, "procedure.set") == []


@sqlite_only
def test_a_viewer_reads_sets_but_cannot_change_them(server: Server) -> None:
    viewer = server.admin.as_role("watcher", "viewer")
    assert viewer.get("/procedure-sets").status_code == 200
    assert_json_error(viewer.put("/procedure-sets/x", {"order": 1}), 403)
    assert_json_error(viewer.delete("/procedure-sets/default"), 403)


def test_deleting_a_set_takes_its_procedures_and_keeps_their_history(server: Server) -> None:
    put_set(server, "tmp", 9)
    put_in_set(server, "threat_detected", "tmp", "return 1")
    assert server.admin.delete("/procedure-sets/tmp").status_code == 204
    assert_json_error(server.admin.get("/procedures/threat_detected"), 404)
    (entry,) = server.admin.get("/audit", action="procedure_set.delete").json()
    assert entry["details"] == {"procedures": ["threat_detected"]}
    # Set again under the same name, the versions go on from the history kept.
    put_set(server, "tmp", 9)
    assert put_in_set(server, "threat_detected", "tmp", "return 2")["version"] == 2


def test_a_set_deleted_while_its_authorization_procedure_ran_does_not_decide(
    server: Server,
) -> None:
    """The run happened before the delete; its answer and writes are dropped when it is
    settled after the delete, and the default applies (deterministically)."""
    put_set(server, "gone", 1)
    put_in_set(server, PROCEDURE, "gone", "garrison.audit('gone_ran', 'x') return 'deny'")
    runner = server.ctx.procedures
    with server.db.reading() as session:
        chain = dispatcher.authorization_chain(session)
    run = dispatcher.authorize(runner, chain, {"id": 1})
    assert run is not None
    assert run.value == "deny"
    assert server.admin.delete("/procedure-sets/gone").status_code == 204
    with server.db.transaction() as session:
        assert dispatcher.decision(runner, session, run) is None
    assert audit_targets(server, "procedure.gone_ran") == []


def test_a_set_deleted_while_an_event_procedure_ran_drops_its_writes(server: Server) -> None:
    put_set(server, "gone", 1)
    put_in_set(server, "threat_detected", "gone", "garrison.audit('gone_ran', 'x')")
    runner = server.ctx.procedures
    with server.db.reading() as session:
        (link,) = procedures.enabled_chains(session, {"threat_detected"})["threat_detected"]
    reply = runner.run("threat_detected", link.source, {}, None, link.set_name)
    with server.db.transaction() as session:
        procedures.delete_set(session, Actor(username="admin", role="admin"), "gone")
    with server.db.transaction() as session:
        assert procedures.still_current(session, "threat_detected", link, lock=True) is None
    assert reply.error is None
    assert len(reply.actions) == 1
    assert audit_targets(server, "procedure.gone_ran") == []
