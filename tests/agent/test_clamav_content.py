"""Content from a ClamAV container reaches the engine; the self-test base is never `late`."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from garrison.agent.config import ScanConfig
from garrison.agent.context import Agent
from garrison.agent.scan.engine import Engine
from garrison.agent.scan.signatures import PACKAGED_DB, HashTable, load_database
from garrison.agent.state import Credentials, StateDir
from garrison.agent.tasks import state as state_task
from garrison.common import clamav_cvd
from tests import clamav_testkit as kit

MALWARE = b"a file only the imported container knows\n"


def test_a_hsb_hash_from_an_imported_container_detects(tmp_path: Path) -> None:
    sha = hashlib.sha256(MALWARE).hexdigest()
    files = {
        "daily.hsb": f"{sha}:{len(MALWARE)}:Test.Imported-1:73\n".encode(),
        "daily.ndb": b"Test.Body-2:0:*:6f6e6c79{-5}696d706f72746564\n",
        "daily.ldb": b"Test.Logical;Target:0;0;aabb\n",
    }
    container = clamav_cvd.parse(kit.build("daily", files), "cvd", kit.keys())
    assert container.skipped == {"ldb": 1}
    sigs = tmp_path / "sigs"
    sigs.mkdir()
    for member in container.members:
        (sigs / member.name).write_bytes(member.data)
    target = tmp_path / "files"
    target.mkdir()
    (target / "sample.bin").write_bytes(MALWARE)
    (target / "other.bin").write_bytes(b"clean\n")
    db = load_database([PACKAGED_DB, sigs])
    result = Engine(db, ScanConfig(exclude=[])).scan([str(target)])
    found = sorted((Path(d.path).name, d.threat, d.module) for d in result.detections)
    assert found == [
        ("sample.bin", "Test.Body-2", "clamav-body"),
        ("sample.bin", "Test.Imported-1", "garrison-hash"),
    ]


def test_hash_table_duplicates_any_size_and_appends_after_freeze() -> None:
    table = HashTable(32)
    a, b = hashlib.sha256(b"a").digest(), hashlib.sha256(b"b").digest()
    table.append(a, 10, b"A-10")
    table.append(b, -1, b"B-any")
    table.append(a, -1, b"A-any")
    assert sorted(table.find(a), key=str) == sorted([(10, "A-10"), (None, "A-any")], key=str)
    assert list(table.find(b)) == [(None, "B-any")]
    assert list(table.find(hashlib.sha256(b"c").digest())) == []
    c = hashlib.sha256(b"c").digest()
    table.append(c, 3, "Ç".encode())
    assert list(table.find(c)) == [(3, "Ç")]
    assert len(table) == 4


def test_many_hashes_load_and_match(tmp_path: Path) -> None:
    lines = [f"{hashlib.sha256(str(i).encode()).hexdigest()}:{i + 1}:Many-{i}" for i in range(5000)]
    lines += [f"{hashlib.md5(str(i).encode()).hexdigest()}:*:Md5-{i}" for i in range(100)]
    (tmp_path / "many.hsb").write_text("\n".join(lines) + "\n")
    db = load_database([tmp_path], use_yara=False)
    assert db.hash_count == 5100
    for i in (0, 2499, 4999):
        data = str(i).encode()
        sha = hashlib.sha256(data).hexdigest()
        digests = {"sha256": sha, "sha1": "00" * 20, "md5": "00" * 16}
        assert db.match_hashes(digests, i + 1) == f"Many-{i}"
        assert db.match_hashes(digests, i + 2) is None
    md5 = {"sha256": "00" * 32, "sha1": "00" * 20, "md5": hashlib.md5(b"7").hexdigest()}
    assert db.match_hashes(md5, 12345) == "Md5-7"


@pytest.fixture
def agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Agent:
    monkeypatch.setenv("GARRISON_AGENT_UUID", "AAAAAAAA-0000-0000-0000-000000000002")
    state = StateDir(tmp_path / "state", explicit=True)
    state.save_credentials(Credentials(7, "tok", "http://127.0.0.1:9"))
    return Agent(state, "http://127.0.0.1:9")


def test_the_packaged_self_test_base_is_not_late_however_old(
    agent: Agent, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent.config.scan.clamav = False
    db = agent.reload_signatures()
    assert db.self_test_only
    ten_years_on = db.date + 10 * 365 * 86400
    monkeypatch.setattr(time, "time", lambda: ten_years_on)
    body = state_task.build(agent)
    assert body["dbinfo"]["global_status"] == "up-to-date"
    details = {d["attr"]: d["value"] for d in body["avdetails"]}
    assert details["self_test_only"] == "1"
    assert details["signatures_skipped"] == "none"


def test_other_content_still_goes_late(agent: Agent) -> None:
    agent.config.scan.clamav = False
    path = agent.state.signatures_dir / "old.ndb"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("Old.Body:0:*:aabbccdd\nOld.Html:3:*:aabbccdd\n")
    old = time.time() - (agent.config.daemon.max_db_age_days + 1) * 86400
    os.utime(path, (old, old))
    agent.reload_signatures()
    body = state_task.build(agent)
    assert body["dbinfo"]["global_status"] == "late"
    details = {d["attr"]: d["value"] for d in body["avdetails"]}
    assert details["self_test_only"] == "0"
    assert details["clamav_body_records"] == "1"
    assert details["signatures_skipped"] == "ndb target type 3 (normalised HTML): 1"
