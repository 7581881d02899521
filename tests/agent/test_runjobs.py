from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from garrison.agent.content.store import ContentStore
from garrison.agent.context import Agent
from garrison.agent.jobstore import JobStore
from garrison.agent.state import Credentials, StateDir
from garrison.agent.tasks import runjobs
from tests.agent.helpers import EICAR_SHA256, write_eicar


@pytest.fixture
def agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Agent:
    monkeypatch.setenv("GARRISON_AGENT_UUID", "AAAAAAAA-0000-0000-0000-000000000001")
    state = StateDir(tmp_path / "state", explicit=True)
    agent = Agent(state, "http://127.0.0.1:9")
    state.save_credentials(Credentials(7, "tok", "http://127.0.0.1:9"))
    return agent


def _sent(agent: Agent) -> list[tuple[str, dict[str, Any]]]:
    return [(m.path, m.body) for m in agent.spool.pending()]


def test_priority_order_unknown_and_corrupt_jobs(agent: Agent, tmp_path: Path) -> None:
    write_eicar(tmp_path / "scan" / "eicar.com")
    scan_path = base64.b64encode(str(tmp_path / "scan").encode()).decode()
    JobStore(agent.state).add(
        [
            {"job_id": 1, "job_type": "Scan", "job_priority": "0",
             "obj": {"scan_path": scan_path, "scan_options": ""}},
            {"job_id": 2, "job_type": "Bogus", "job_priority": "3",
             "obj": {"investigation_id": "inv-42"}},
            {"job_id": 3, "job_type": "Scan", "job_priority": "9", "obj": "junk"},
            {"no_id": True},
            "not even an object",
        ]
    )  # fmt: skip
    summary = runjobs.run(agent)
    assert [(o.job.id, o.code != 0) for o in summary.outcomes] == [
        (2, True),
        (1, False),
        (3, True),
    ]
    assert JobStore(agent.state).load() == []
    sent = _sent(agent)
    results = [body for path, body in sent if path == "jobs"]
    assert [r["job_id"] for r in results] == [2, 1, 3]
    unknown = results[0]
    assert unknown["code"] != 0
    assert "unknown job type 'Bogus'" in base64.b64decode(unknown["message"]).decode()
    assert unknown["start_time"] <= unknown["end_time"]
    assert results[1] == {**results[1], "code": 0}
    receipts = [b["data"] for p, b in sent if p == "events" and b["type"] == "RECEIPT"]
    assert receipts[0] == {**receipts[0], "INVESTIGATION_ID": "inv-42", "JOB_ID": 2}
    assert receipts[0]["ERROR"] != 0
    assert receipts[1]["INVESTIGATION_ID"] == "1"  # defaults to the job id
    alerts = [b for p, b in sent if p == "alerts"]
    assert alerts[0]["job_id"] == 1
    assert alerts[0]["alerts"][0]["info"]["sha256"] == EICAR_SHA256
    assert alerts[0]["alerts"][0]["action"] == "quarantined"
    scans = [b for p, b in sent if p == "scans"]
    assert scans[-1] == {**scans[-1], "job_id": 1, "progress": 100, "malware_count": 1}
    # What the scan did to the file it found: station_scan_statistics' moved.
    assert (scans[-1]["quarantined_count"], scans[-1]["deleted_count"]) == (1, 0)


def _allow_unsigned_sources(agent: Agent) -> None:
    """As if the signed content in force said the station group allows unsigned sources."""
    store = ContentStore(agent.state)
    directory = store.new_dir(2)
    manifest = {
        "format": 1, "server_id": "s", "serial": 2, "issued": "2026-12-01T00:00:00Z",
        "station_group": None, "policy": {"allow_unsigned_sources": True}, "files": [],
    }  # fmt: skip
    envelope = {"manifest": manifest, "signature": "AA==", "key_id": "0" * 16, "rotations": []}
    store.write_manifest(directory, envelope)
    store.swap(directory)


def test_update_signatures_from_a_source_refused_by_default(agent: Agent, tmp_path: Path) -> None:
    sigs = tmp_path / "new.hdb"
    sigs.write_text("d41d8cd98f00b204e9800998ecf8427e:0:Empty.File.Test\n")
    JobStore(agent.state).add(
        [{"job_id": 11, "job_type": "UpdateSignatures", "obj": {"source": str(sigs)}}]
    )
    (outcome,) = runjobs.run(agent).outcomes
    assert outcome.code != 0
    assert "unsigned source" in outcome.message
    assert not (agent.state.signatures_dir / "new.hdb").exists()


def test_selftest_and_update_signatures(agent: Agent, tmp_path: Path) -> None:
    _allow_unsigned_sources(agent)
    sigs = tmp_path / "new.hdb"
    sigs.write_text("d41d8cd98f00b204e9800998ecf8427e:0:Empty.File.Test\n")
    bad = tmp_path / "bad.hdb"
    bad.write_text("garbage\n")
    JobStore(agent.state).add(
        [
            {"job_id": 10, "job_type": "SelfTest", "job_priority": "1", "obj": {}},
            {"job_id": 11, "job_type": "UpdateSignatures", "job_priority": "1",
             "obj": {"source": str(sigs)}},
            {"job_id": 12, "job_type": "UpdateSignatures", "job_priority": "1",
             "obj": {"source": str(bad)}},
        ]
    )  # fmt: skip
    summary = runjobs.run(agent)
    codes = {o.job.id: (o.code, o.message) for o in summary.outcomes}
    assert codes[10][0] == 0
    assert codes[11][0] == 0
    assert "3 hash" in codes[11][1]
    assert codes[12][0] != 0
    assert "refused" in codes[12][1]
    assert (agent.state.signatures_dir / "new.hdb").exists()
    assert not (agent.state.signatures_dir / "bad.hdb").exists()
    events = [b for p, b in _sent(agent) if p == "events"]
    selftest = next(e for e in events if e["type"] == "SELF_TEST")
    assert selftest["data"]["ERROR"] == 0
    assert selftest["data"]["RESULT"]["ok"] is True
    # The update is followed by a State carrying the new bases' version and record count.
    (state,) = [b for p, b in _sent(agent) if p == "states"]
    (hashes,) = [m for m in state["dbinfo"]["modules"] if m["name"] == "garrison-hash"]
    assert hashes["mod_records"] == agent.signatures.hash_count == 3
    assert hashes["mod_version"] == agent.signatures.version


def test_isolate_without_nft_fails_cleanly(agent: Agent, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    monkeypatch.setattr(shutil, "which", lambda *a, **k: None)
    JobStore(agent.state).add([{"job_id": 20, "job_type": "IsolateNetwork", "obj": {}}])
    summary = runjobs.run(agent)
    assert summary.outcomes[0].code != 0
    assert "nft (nftables) is not installed" in summary.outcomes[0].message
    events = [b["type"] for p, b in _sent(agent) if p == "events"]
    assert events == ["SEGREGATE_NETWORK", "RECEIPT"]
