"""Tamper resistance, in process: the state dir's modes at start and the run marker (the
isolation guard and uninstall run against real processes in test_tamper_live.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from garrison.agent import tamper
from garrison.agent.errors import LocalError
from garrison.agent.state import StateDir


def _state(tmp_path: Path) -> StateDir:
    return StateDir(tmp_path / "state", explicit=True).ensure()


def test_wider_modes_are_narrowed_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = _state(tmp_path)
    state.write_json(state.credentials_file, {"agent_id": 1})
    (state.path / "agent.toml").write_text("")
    (state.path / "agent.toml").chmod(0o664)
    (state.path / "quarantine").mkdir(mode=0o755)
    (state.path / "quarantine").chmod(0o755)
    with state.lock("flush"):
        pass
    state.path.chmod(0o755)
    fixed = tamper.check_private(state)
    assert len(fixed) == 3  # the dir, agent.toml, quarantine; not agent.json nor the lock
    assert state.path.stat().st_mode & 0o777 == 0o700
    assert (state.path / "agent.toml").stat().st_mode & 0o777 == 0o600
    assert (state.path / "quarantine").stat().st_mode & 0o777 == 0o700
    assert "narrowed to 0600" in caplog.text
    assert tamper.check_private(state) == []  # nothing left to fix


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_file_of_another_user_is_refused(tmp_path: Path) -> None:
    state = _state(tmp_path)
    planted = state.path / "agent.toml"
    planted.write_text("")
    os.chown(planted, 65534, 65534)
    with pytest.raises(LocalError, match="belongs to uid 65534"):
        tamper.check_private(state)


def test_a_run_not_marked_stopped_was_unclean(tmp_path: Path) -> None:
    state = _state(tmp_path)
    assert tamper.RunMarker(state).begin() == {"UNCLEAN_STOP": 0}  # first start ever
    marker = tamper.RunMarker(state)
    assert marker.begin() == {"UNCLEAN_STOP": 1, "PREVIOUS_PID": os.getpid()}  # killed
    marker.end()
    assert tamper.RunMarker(state).begin() == {"UNCLEAN_STOP": 0}  # stopped cleanly
