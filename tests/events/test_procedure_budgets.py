"""A procedure that loops forever, allocates without bound, raises, or hides its loop in
pcall is stopped within its budget and recorded with its event; the pipeline goes on."""

from __future__ import annotations

import time
from typing import Any

from tests.conftest import Server, ServerFactory
from tests.events.helpers import alert, audit_targets, events, procedure_errors, put_procedure
from tests.support import SLACK_SECONDS, sqlite_only, wait_for

SOURCE = """local args = ...
if args.virus == "Loop" then
  while true do end
elseif args.virus == "Alloc" then
  local t = {}
  while true do t[#t + 1] = string.rep("x", 4096) .. #t end
elseif args.virus == "Raise" then
  error("boom")
elseif args.virus == "Pcall" then
  pcall(function() while true do end end)
  garrison.audit("escaped", args.virus)
elseif args.virus == "Big" then
  local s = string.rep("x", 1024 * 1024 * 1024)
end
garrison.audit("seen", args.virus)
"""
EXPECTED = {
    "Loop": "cpu budget exceeded",
    "Alloc": "memory limit of 16777216 bytes exceeded",
    "Raise": "runtime error: threat_detected:8: boom",
    "Pcall": "cpu budget exceeded",
    "Big": "memory limit of 16777216 bytes exceeded",
}


def send(server: Server, agent: Any, *names: str) -> None:
    reports = [alert(name, f"/tmp/{name}", 1500000100 + i) for i, name in enumerate(names)]
    response = agent.alerts(reports)
    assert response.status_code == 200, response.text
    assert response.json()["stored"] == len(names)


def test_bad_procedures_are_stopped_recorded_and_the_pipeline_goes_on(
    server_factory: ServerFactory,
) -> None:
    # Five failures in a row would disable the procedure (test_poison_events.py): not here.
    server: Server = server_factory(procedure_seconds=0.5, procedure_disable_after=0)
    put_procedure(server, "threat_detected", SOURCE)
    agent = server.enrolled_agent()
    started = time.monotonic()
    send(server, agent, "Loop", "Alloc", "Raise", "Pcall", "Big", "Fine")
    wait_for(lambda: audit_targets(server, "procedure.seen"), timeout=15, what="Fine ran")
    elapsed = time.monotonic() - started
    # Five stopped runs of at most the budget each, with room for a slow machine.
    assert elapsed < 5 * server.settings.procedure_seconds + SLACK_SECONDS, elapsed
    assert audit_targets(server, "procedure.seen") == ["Fine"]
    assert audit_targets(server, "procedure.escaped") == []

    by_seq = {e["seq"]: e["data"]["virus"] for e in events(server, type="threat_detected")}
    errors = procedure_errors(server, "threat_detected")
    assert {by_seq[e["event_seq"]]: e["error"] for e in errors} == EXPECTED
    assert len(errors) == len(EXPECTED)

    # A later event, in a later request, still runs its procedure.
    send(server, agent, "Later")
    wait_for(
        lambda: audit_targets(server, "procedure.seen") == ["Fine", "Later"],
        what="Later ran",
    )
    assert len(procedure_errors(server)) == len(EXPECTED)
    # The server still answers.
    assert server.client.get("/admin/v1/health").status_code == 200


def test_a_failed_run_leaves_none_of_its_actions(server_factory: ServerFactory) -> None:
    server: Server = server_factory(procedure_seconds=0.5)
    put_procedure(
        server,
        "threat_detected",
        "local args = ...\n"
        "garrison.audit('before', args.virus)\n"
        "garrison.raise_alert(args.id, 'From.Procedure', '/p')\n"
        "while true do end\n",
    )
    agent = server.enrolled_agent()
    send(server, agent, "Trigger")
    (error,) = wait_for(lambda: procedure_errors(server), what="procedure error")
    assert error["error"] == "cpu budget exceeded"
    assert audit_targets(server, "procedure.before") == []
    alerts = server.admin.get("/alerts").json()["items"]
    assert [a["threat_name"] for a in alerts] == ["Trigger"]


@sqlite_only
def test_the_dry_run_stops_a_runaway_within_its_budget(server_factory: ServerFactory) -> None:
    server: Server = server_factory(procedure_seconds=0.5)
    for source, expected in (
        ("while true do end", "cpu budget exceeded"),
        ("local t = {} while true do t[#t+1] = {} end", "memory limit of 16777216 bytes exceeded"),
        ("pcall(function() while true do end end)", "cpu budget exceeded"),
        (
            "xpcall(function() while true do end end, function(e) return e end)",
            "cpu budget exceeded",
        ),
    ):
        started = time.monotonic()
        response = server.admin.post(
            "/procedures/threat_detected/test", {"args": {}, "source": source}
        )
        elapsed = time.monotonic() - started
        assert response.status_code == 200, response.text
        assert (response.json()["error"], response.json()["result"]) == (expected, None), source
        assert elapsed < server.settings.procedure_seconds + SLACK_SECONDS, (source, elapsed)
    # An allocation over the cap fails where it is made; a procedure may catch that.
    response = server.admin.post(
        "/procedures/threat_detected/test",
        {"args": {}, "source": "local ok = pcall(string.rep, 'x', 1024 * 1024 * 1024) return ok"},
    )
    assert (response.json()["error"], response.json()["result"]) == (None, False)
