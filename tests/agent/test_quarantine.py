from __future__ import annotations

import os
from pathlib import Path

import pytest

from garrison.agent.errors import LocalError
from garrison.agent.quarantine import Quarantine, defang
from garrison.agent.scan import actions
from garrison.agent.scan.engine import Detection
from tests.agent.helpers import EICAR_SHA256, HEAD, agent_env, eicar, run_agent, write_eicar


def test_round_trip(tmp_path: Path) -> None:
    target = write_eicar(tmp_path / "data" / "eicar.com")
    os.chmod(target, 0o640)
    q = Quarantine(tmp_path / "q")
    entry = q.add(str(target), "Eicar-Test-Signature", EICAR_SHA256)
    assert not target.exists()
    blob = (tmp_path / "q" / f"{entry.id}.bin").read_bytes()
    assert HEAD.encode() not in blob  # defanged
    assert defang(blob) == eicar()
    assert (tmp_path / "q" / f"{entry.id}.bin").stat().st_mode & 0o777 == 0o600
    assert [e.id for e in q.entries()] == [entry.id]
    assert entry.original_path == str(target)
    assert entry.sha256 == EICAR_SHA256
    restored = q.restore(entry.id)
    assert restored.id == entry.id
    assert target.read_bytes() == eicar()
    assert target.stat().st_mode & 0o777 == 0o640
    assert q.entries() == []


def test_restore_refuses_to_overwrite(tmp_path: Path) -> None:
    target = write_eicar(tmp_path / "eicar.com")
    q = Quarantine(tmp_path / "q")
    entry = q.add(str(target), "T")
    target.write_text("new file")
    with pytest.raises(LocalError, match="exists"):
        q.restore(entry.id)
    q.restore(entry.id, str(tmp_path / "elsewhere.com"))
    assert (tmp_path / "elsewhere.com").read_bytes() == eicar()


def test_unknown_id(tmp_path: Path) -> None:
    with pytest.raises(LocalError, match="no quarantined file"):
        Quarantine(tmp_path / "q").restore("nope")


def test_changed_file_is_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_text("changed since detection")
    with pytest.raises(LocalError, match="changed since"):
        Quarantine(tmp_path / "q").add(str(target), "T", EICAR_SHA256)
    assert target.exists()


def _detection(path: Path) -> Detection:
    return Detection(str(path), "Eicar-Test-Signature", "garrison-hash", EICAR_SHA256,
                     EICAR_SHA256, 68)  # fmt: skip


@pytest.mark.parametrize(
    ("action", "outcome", "exists"),
    [("none", "none", True), ("quarantine", "quarantined", False), ("delete", "deleted", False)],
)
def test_actions(tmp_path: Path, action: str, outcome: str, exists: bool) -> None:
    target = write_eicar(tmp_path / "eicar.com")
    det = _detection(target)
    problems = actions.apply([det], action, Quarantine(tmp_path / "q"))
    assert problems == []
    assert det.action == outcome
    assert target.exists() is exists


def test_delete_refuses_a_file_that_changed(tmp_path: Path) -> None:
    target = tmp_path / "eicar.com"
    target.write_text("replaced by a clean file after detection")
    det = _detection(target)
    problems = actions.apply([det], "delete", Quarantine(tmp_path / "q"))
    assert det.action == "delete failed"
    assert problems
    assert "changed since" in problems[0]
    assert target.exists()


def test_looking_creates_no_state_and_says_which_directory(tmp_path: Path) -> None:
    """``quarantine list`` and ``status`` only look: a missing state dir stays missing (no
    default agent.toml written), and the output names the directory read."""
    state = tmp_path / "state"
    env = agent_env(state, "6B1A2C3D-0000-4000-8000-000000000001")
    empty = run_agent(env, "quarantine", "list")
    assert empty.returncode == 0, empty.stderr
    assert f"quarantine is empty ({state / 'quarantine'})" in " ".join(empty.stdout.split())
    status = run_agent(env, "status")
    assert status.returncode == 0, status.stderr
    assert str(state) in status.stdout
    assert not state.exists()

    # With a file quarantined: the list on stdout (tab-separated for scripts), the
    # directory on stderr; still nothing written.
    entry = Quarantine(state / "quarantine").add(
        str(write_eicar(tmp_path / "eicar.com")), "Eicar-Test-Signature"
    )
    listed = run_agent(env, "quarantine", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split("\t")[0] == entry.id
    assert str(state / "quarantine") in listed.stderr
    assert sorted(p.name for p in state.iterdir()) == ["quarantine"]
