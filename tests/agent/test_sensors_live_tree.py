"""Real processes: ``garrison serve`` and ``garrison-agent run`` as root; a copied binary
exec'd with a unique argument under a parent the test controls is found by an IOC sweep of
its SHA-256, naming the station, and the station's process tree shows parent → child."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from garrison.agent.sensors import procinfo
from tests.agent import test_sensors_live as live
from tests.agent.test_live import Admin
from tests.agent.test_sensors_live import PARENT, Daemon, _events, _probe, _running
from tests.cli.helpers import garrison
from tests.live import LiveServer
from tests.support import wait_for

pytestmark = live.pytestmark
# The fixtures of the process sensor's live tests: root, a real server, a real agent.
connector, server, agent = live.connector, live.server, live.agent


def _walk(nodes: list[dict[str, Any]], depth: int = 0) -> list[tuple[int, dict[str, Any]]]:
    out: list[tuple[int, dict[str, Any]]] = []
    for node in nodes:
        out.append((depth, node))
        out += _walk(node["children"], depth + 1)
    return out


def test_an_ioc_sweep_names_the_station_and_the_tree_shows_parent_and_child(
    server: LiveServer, agent: Callable[..., Daemon], tmp_path: Path
) -> None:
    admin = Admin(server)
    agent(lambda config: None)
    _running(admin)
    station_id = admin.station_id()

    exe, sha256 = _probe(tmp_path)
    unique = f"0.{uuid.uuid4().int % 10**12:012d}"  # a valid, unique sleep argument
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(exe), "0.2", unique])
    stat = procinfo.read_stat(parent.pid)
    assert stat is not None
    parent_uid = procinfo.unique_pid(parent.pid, stat.start_ticks)
    parent_path = os.readlink(f"/proc/{parent.pid}/exe")
    assert parent.wait(timeout=10) == 0

    # The sweep by the copied binary's SHA-256 names the station (API and CLI).
    def swept() -> dict[str, Any]:
        result: dict[str, Any] = admin.call(
            "POST", "/events/ioc-sweep", json={"hashes": [sha256.upper()]}
        )
        return result

    def both(result: dict[str, Any]) -> bool:
        kinds = {e["type"] for e in result["events"]}
        return {"process_started", "process_stopped"} <= kinds

    sweep = wait_for(swept, both, timeout=5, what="the sweep's start and stop", every=0.1)
    assert sweep["station_ids"] == [station_id]
    # The probe's own events (the module sensor's module_loaded name its image too).
    assert {e["type"] for e in sweep["events"]} >= {"process_started", "process_stopped"}
    assert any(e["data"].get("command_line") == f"{exe} 0.2 {unique}" for e in sweep["events"])
    conn = ["--server", server.url, "--token", server.token]
    cli = garrison("events", "ioc", sha256, *conn, cwd=tmp_path)
    assert cli.returncode == 0, cli.stderr
    assert f"1 station(s) saw these hashes: {station_id}" in cli.stdout

    # The station's process tree from the parent: parent → the probe, with its exit.
    def tree() -> dict[str, Any]:
        result: dict[str, Any] = admin.call(
            "GET", f"/stations/{station_id}/process-tree", params={"root": parent_uid}
        )
        return result

    def complete(body: dict[str, Any]) -> bool:
        nodes = [n for _, n in _walk(body["roots"])]
        probe_ended = any(n.get("end_time") for n in nodes if n["path"] == str(exe))
        return probe_ended and bool(nodes[0].get("end_time"))

    body = wait_for(tree, complete, timeout=5, what="the tree with the probe's stop", every=0.1)
    nodes = _walk(body["roots"])
    assert nodes[0][0] == 0
    assert nodes[0][1]["unique_pid"] == parent_uid
    assert nodes[0][1]["pid"] == parent.pid
    assert nodes[0][1]["path"] == parent_path
    assert nodes[0][1]["exit_code"] == 0
    probe = [(depth, n) for depth, n in nodes if n["path"] == str(exe)]
    assert len(probe) == 1
    depth, child = probe[0]
    assert depth == 1
    assert child["parent_unique_pid"] == parent_uid
    assert child["command_line"] == f"{exe} 0.2 {unique}"
    assert child["exit_code"] == 0
    assert child["end_time"] >= child["start_time"]

    # The CLI prints the same tree, the probe indented under its parent.
    printed = garrison(
        "stations", "tree", str(station_id), "--root", parent_uid, *conn, cwd=tmp_path
    )
    assert printed.returncode == 0, printed.stderr
    lines = printed.stdout.splitlines()
    assert lines[0].startswith(f"[{parent.pid}] ")
    assert any(line.startswith(f"  [{child['pid']}] {exe} ") for line in lines[1:])
    # Found by its UniquePID too (the indexed term the tree walks).
    assert _events(admin, type="process_started", unique_pid=child["unique_pid"])
