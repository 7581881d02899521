"""GetFile, DeleteFile, QuarantineFile, ListQuarantine, RestoreQuarantined: the path rules
(every bad input of issue 17) and the upload against an in-test server implementing the
contract's ``PUT /api/files/<sha256>``."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from garrison.agent.context import Agent
from garrison.agent.errors import JobError
from garrison.agent.jobs import codes, filerules
from garrison.agent.jobstore import Job
from garrison.agent.state import StateDir
from garrison.agent.tasks import enrollment, runjobs
from tests.agent.content_fake import FakeContentServer

GIB = 1 << 30


@pytest.fixture
def fake() -> Iterator[FakeContentServer]:
    server = FakeContentServer()
    yield server
    server.close()


@pytest.fixture
def agent(tmp_path: Path, fake: FakeContentServer, monkeypatch: pytest.MonkeyPatch) -> Agent:
    monkeypatch.setenv("GARRISON_AGENT_UUID", "AAAAAAAA-0000-0000-0000-0000000F11E5")
    agent = Agent(StateDir(tmp_path / "state", explicit=True), fake.url)
    enrollment.run(agent, "AAAAA-AAAAA-AAAAA-AAAAA-AAAAA")
    return agent


def run(
    agent: Agent, job_type: str, obj: dict[str, Any], job_id: int = 5
) -> tuple[int, str, dict[str, Any] | None]:
    return runjobs.execute(agent, Job(job_id, job_type, 0, obj))


def get_file(agent: Agent, path: str, max_bytes: int = GIB) -> tuple[int, str, Any]:
    return run(agent, "GetFile", {"path": path, "max_bytes": max_bytes})


# -- GetFile: the upload --------------------------------------------------------------------


def test_get_file_uploads_the_bytes_that_hash_to_the_result(
    agent: Agent, fake: FakeContentServer, tmp_path: Path
) -> None:
    data = os.urandom(700_000)  # several chunks
    target = tmp_path / "evidence.bin"
    target.write_bytes(data)
    fake.upload_jobs.add(5)
    code, message, result = get_file(agent, str(target))
    assert code == 0, message
    sha = hashlib.sha256(data).hexdigest()
    assert result == {"path": str(target), "sha256": sha, "size": len(data)}
    assert fake.uploads[sha] == data
    assert fake.upload_queries[-1] == {"job_id": ["5"]}
    put = [r for r in fake.requests if r[0] == "PUT"][-1]
    assert put[1] == f"/api/files/{sha}"
    headers = {k.lower(): v for k, v in put[2].items()}
    assert headers["content-type"] == "application/octet-stream"
    assert headers["content-length"] == str(len(data))
    assert headers["authorization"] == "Bearer tok"
    # The same file again is one blob on the server (200), and still a success.
    assert get_file(agent, str(target))[0] == 0


def test_an_upload_the_server_refuses_fails_with_code_12(
    agent: Agent, fake: FakeContentServer, tmp_path: Path
) -> None:
    target = tmp_path / "f.txt"
    target.write_text("x" * 100)
    code, message, result = get_file(agent, str(target))  # not this station's job: 403
    assert (code, result) == (codes.UPLOAD_FAILED, None)
    assert "403" in message
    assert "not this station's job" in message
    fake.upload_jobs.add(5)
    fake.upload_cap = 10
    code, message, _ = get_file(agent, str(target))
    assert code == codes.UPLOAD_FAILED
    assert "413" in message
    fake.close()
    code, message, _ = get_file(agent, str(target))
    assert code == codes.UPLOAD_FAILED
    assert "unreachable" in message


# -- the path rules ---------------------------------------------------------------------------


def test_get_file_path_rules(agent: Agent, fake: FakeContentServer, tmp_path: Path) -> None:
    fake.upload_jobs.add(5)
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    (allowed / "ok.txt").write_text("fine")
    (allowed / "escape").symlink_to(outside)
    (allowed / "inner").symlink_to(allowed / "ok.txt")
    fifo = allowed / "pipe"
    os.mkfifo(fifo)
    sparse = allowed / "huge.img"
    with open(sparse, "wb") as handle:
        handle.truncate(10 * GIB)  # 10 GiB, sparse: no disk used
    agent.config.response.allowed_roots = [str(allowed)]
    cases = {
        "/proc/kcore": (codes.REFUSED, "outside the allowed roots"),
        str(fifo): (codes.REFUSED, "a FIFO"),
        str(sparse): (codes.REFUSED, "too big"),
        f"{allowed}/../outside.txt": (codes.REFUSED, "'..'"),
        str(allowed / "escape"): (codes.REFUSED, "outside the allowed roots"),
        str(allowed / "missing"): (codes.NOT_FOUND, "no such file"),
        str(allowed): (codes.REFUSED, "a directory"),
    }
    for path, (code, text) in cases.items():
        started = time.monotonic()
        got, message, result = get_file(agent, path)
        assert (got, result) == (code, None), (path, message)
        assert text in message, (path, message)
        assert time.monotonic() - started < 5  # never a hang (the FIFO)
    assert get_file(agent, "relative/path")[0] == codes.BAD_JOB
    assert run(agent, "GetFile", {"path": str(allowed / "ok.txt")})[0] == codes.BAD_JOB
    # A symlink that stays inside the allowed tree is followed to its (allowed) target.
    code, _, result = get_file(agent, str(allowed / "inner"))
    assert code == 0
    assert result is not None
    assert result["path"] == str(allowed / "ok.txt")
    assert not fake.uploads.get(hashlib.sha256(b"secret").hexdigest())


def test_kernel_and_device_files_are_refused_under_the_default_root(agent: Agent) -> None:
    assert agent.config.response.allowed_roots == ["/"]
    for path in ("/proc/kcore", "/proc/self/environ", "/sys/kernel/notes", "/dev/null",
                 "/dev/zero"):  # fmt: skip
        code, message, _ = get_file(agent, path)
        assert code == codes.REFUSED, (path, message)
        assert "kernel or device file" in message


def test_a_device_outside_dev_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("mknod needs root")
    device = tmp_path / "null"
    os.mknod(device, 0o600 | 0o020000, os.makedev(1, 3))  # S_IFCHR: /dev/null's numbers
    with pytest.raises(JobError) as caught:
        filerules.check(str(device), ["/"])
    assert caught.value.code == codes.REFUSED
    assert "a character device" in caught.value.message


def test_a_swap_after_the_check_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "f"
    target.write_text("one")
    real_check = filerules.check

    def check_then_swap(*args: Any, **kwargs: Any) -> filerules.Checked:
        checked = real_check(*args, **kwargs)
        other = tmp_path / "other"
        other.write_text("another inode")  # made while the first exists: another number
        os.replace(other, target)
        return checked

    monkeypatch.setattr(filerules, "check", check_then_swap)
    with pytest.raises(JobError) as caught, filerules.open_checked(str(target), ["/"]):
        pass
    assert "changed while being opened" in caught.value.message


# -- DeleteFile, QuarantineFile, ListQuarantine, RestoreQuarantined ---------------------------


def test_delete_file(agent: Agent, tmp_path: Path) -> None:
    target = tmp_path / "bad.sh"
    target.write_bytes(b"rm -rf /tmp/nothing\n")
    code, message, result = run(agent, "DeleteFile", {"path": str(target)})
    assert code == 0, message
    assert result == {
        "path": str(target),
        "sha256": hashlib.sha256(b"rm -rf /tmp/nothing\n").hexdigest(),
        "deleted": True,
    }
    assert not target.exists()
    assert run(agent, "DeleteFile", {"path": str(target)})[0] == codes.NOT_FOUND
    assert run(agent, "DeleteFile", {"path": "/proc/self/status"})[0] == codes.REFUSED
    link = tmp_path / "link"
    link.symlink_to("/etc/hostname")
    agent.config.response.allowed_roots = [str(tmp_path)]
    assert run(agent, "DeleteFile", {"path": str(link)})[0] == codes.REFUSED
    assert Path("/etc/hostname").exists()
    assert link.is_symlink()


def test_quarantine_list_and_restore(agent: Agent, tmp_path: Path) -> None:
    target = tmp_path / "sample.exe"
    target.write_bytes(b"MZ pretend malware")
    code, message, result = run(agent, "QuarantineFile", {"path": str(target)})
    assert code == 0, message
    assert result is not None
    assert not target.exists()
    item = result["id"]
    assert result["sha256"] == hashlib.sha256(b"MZ pretend malware").hexdigest()
    code, _, listed = run(agent, "ListQuarantine", {})
    assert code == 0
    assert listed is not None
    (entry,) = listed["items"]
    assert entry == {**entry, "id": item, "path": str(target), "size": 18,
                     "threat": "response job 5"}  # fmt: skip
    assert isinstance(entry["quarantined_at"], int)
    assert listed["truncated"] is False
    code, message, restored = run(agent, "RestoreQuarantined", {"id": item})
    assert code == 0, message
    assert restored == {"id": item, "path": str(target)}
    assert target.read_bytes() == b"MZ pretend malware"
    assert run(agent, "RestoreQuarantined", {"id": item})[0] == codes.NOT_FOUND
    assert run(agent, "RestoreQuarantined", {})[0] == codes.BAD_JOB
    assert run(agent, "QuarantineFile", {"path": str(tmp_path / "gone")})[0] == codes.NOT_FOUND
