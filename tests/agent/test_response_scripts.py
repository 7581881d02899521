"""RunScript: only a script the verified signed content approves, synced once when missing;
argv not shell, clean environment, timeout killing the process group, output caps."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from garrison.agent.content import sync
from garrison.agent.content.store import ContentStore
from garrison.agent.context import Agent
from garrison.agent.jobs import codes
from garrison.agent.jobstore import Job
from garrison.agent.state import StateDir
from garrison.agent.tasks import enrollment, runjobs
from tests.agent.content_fake import FakeContentServer

SCRIPT = """#!/bin/sh
echo "args:$#:$1:$2"
echo "cwd:$(pwd)"
echo "secret:${GARRISON_TEST_SECRET:-none}"
echo "to stderr" >&2
exit 3
"""


@pytest.fixture
def fake() -> Iterator[FakeContentServer]:
    server = FakeContentServer()
    yield server
    server.close()


@pytest.fixture
def agent(tmp_path: Path, fake: FakeContentServer, monkeypatch: pytest.MonkeyPatch) -> Agent:
    monkeypatch.setenv("GARRISON_AGENT_UUID", "AAAAAAAA-0000-0000-0000-00000005C819")
    monkeypatch.setenv("GARRISON_TEST_SECRET", "leaked")  # must not reach the script
    agent = Agent(StateDir(tmp_path / "state", explicit=True), fake.url)
    enrollment.run(agent, "AAAAA-AAAAA-AAAAA-AAAAA-AAAAA")
    return agent


def run_script(agent: Agent, **obj: Any) -> tuple[int, str, dict[str, Any] | None]:
    return runjobs.execute(agent, Job(9, "RunScript", 0, obj))


def approve(agent: Agent, fake: FakeContentServer, name: str, text: str) -> str:
    sha = fake.put(name, "script", text)
    assert sync.update(agent).status == "installed"
    return sha


def test_an_approved_script_runs_with_argv_a_clean_env_and_cwd_root(
    agent: Agent, fake: FakeContentServer
) -> None:
    sha = approve(agent, fake, "triage", SCRIPT)
    code, message, result = run_script(
        agent, script="triage", sha256=sha, args=["one two", "$(touch /tmp/x)"]
    )
    assert code == 0, message
    assert result is not None
    assert result["stdout"].splitlines() == [
        "args:2:one two:$(touch /tmp/x)",  # argv as given: no shell ever reads it
        "cwd:/",
        "secret:none",
    ]
    assert result["stderr"] == "to stderr\n"
    assert result["exit_code"] == 3
    assert result["truncated"] is False
    assert isinstance(result["duration_ms"], int)


def test_a_script_not_in_the_approved_library_is_refused(
    agent: Agent, fake: FakeContentServer
) -> None:
    sha = approve(agent, fake, "triage", SCRIPT)
    evil = hashlib.sha256(b"#!/bin/sh\nrm -rf /\n").hexdigest()
    # The server asks for a version it never approved, or a name it does not have.
    for name, digest in (("triage", evil), ("other", sha)):
        code, message, result = run_script(agent, script=name, sha256=digest)
        assert (code, result) == (codes.NOT_APPROVED, None)
        assert "not in this station's signed approved library" in message
    # The script file altered on disk after it was installed: no longer approved.
    found = ContentStore(agent.state).installed()
    assert found is not None
    (found.directory / "triage.script").write_text("#!/bin/sh\necho tampered\n")
    code, _, _ = run_script(agent, script="triage", sha256=sha)
    assert code == codes.NOT_APPROVED


def test_a_script_approved_after_the_last_sync_is_synced_once_then_run(
    agent: Agent, fake: FakeContentServer
) -> None:
    sha = fake.put("fresh", "script", "#!/bin/sh\necho fresh\n")  # not installed yet
    manifests = sum(1 for r in fake.requests if r[1] == "/api/content/manifest")
    code, message, result = run_script(agent, script="fresh", sha256=sha)
    assert code == 0, message
    assert result is not None
    assert result["stdout"] == "fresh\n"
    assert sum(1 for r in fake.requests if r[1] == "/api/content/manifest") == manifests + 1


def test_the_timeout_kills_the_whole_process_group(
    agent: Agent, fake: FakeContentServer, tmp_path: Path
) -> None:
    marker = tmp_path / "child.pid"
    sha = approve(
        agent, fake, "slow", '#!/bin/sh\nsleep 300 &\necho $! > "$1"\necho started\nwait\n'
    )
    started = time.monotonic()
    code, message, result = run_script(agent, script="slow", sha256=sha, args=[str(marker)],
                                       timeout=1)  # fmt: skip
    assert code == codes.TIMEOUT, message
    assert time.monotonic() - started < 10
    assert result is not None
    assert result["partial"] is True
    assert result["stdout"] == "started\n"
    child = int(marker.read_text())
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{child}") and time.monotonic() < deadline:
        with open(f"/proc/{child}/stat") as handle:
            if handle.read().split(")")[-1].split()[0] == "Z":
                break
        time.sleep(0.02)
    stat = Path(f"/proc/{child}/stat")
    assert not stat.exists() or stat.read_text().split(")")[-1].split()[0] == "Z"


def test_output_is_capped(agent: Agent, fake: FakeContentServer) -> None:
    sha = approve(agent, fake, "loud", "#!/bin/sh\nyes a | head -c 300000\n")
    code, message, result = run_script(agent, script="loud", sha256=sha, output_cap=1000)
    assert code == 0, message
    assert result is not None
    assert result["stdout"] == "a\n" * 500
    assert result["truncated"] is True


def test_bad_run_script_parameters(agent: Agent, fake: FakeContentServer) -> None:
    sha = "a" * 64
    for obj in (
        {"sha256": sha},
        {"script": "x", "sha256": "nothex"},
        {"script": "x", "sha256": sha, "args": "one string"},
        {"script": "x", "sha256": sha, "args": ["a"] * 33},
        {"script": "x", "sha256": sha, "args": ["a" * 1025]},
        {"script": "x", "sha256": sha, "timeout": 0},
        {"script": "x", "sha256": sha, "timeout": 3601},
        {"script": "x", "sha256": sha, "output_cap": -1},
    ):
        assert run_script(agent, **obj)[0] == codes.BAD_JOB, obj
