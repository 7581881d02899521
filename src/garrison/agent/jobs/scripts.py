"""RunScript: run an approved response script, and nothing else.

Approved means: the verified signed content installed on this station holds a ``script``
rule set of that name whose bundle file has that SHA-256 (the server puts only approved
versions in the manifest), and the file on disk still hashes to it.  When it does not, the
content is synced once (an approval newer than the last check-in), then the job is refused
with code 13, whatever the server asked.

The interpreter is the one the script's ``#!`` line names; the script runs from a private
copy with ``args`` as its argv (never through a shell string), a clean environment, cwd
``/``, in its own process group, which the timeout kills whole.  stdout and stderr are kept
up to ``output_cap`` bytes each; the rest is read and dropped (``truncated``)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from garrison.agent.content import sync as contentsync
from garrison.agent.content.store import ContentStore
from garrison.agent.context import Agent
from garrison.agent.errors import AgentError, JobError
from garrison.agent.jobs import codes, params
from garrison.agent.jobs.params import Reply
from garrison.agent.jobstore import Job

log = logging.getLogger("garrison.agent.jobs")

INTERPRETERS = ("sh", "bash", "python3", "python", "perl", "powershell", "pwsh", "cmd", "lua")
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CLEAN_ENV = {"PATH": SAFE_PATH, "LANG": "C.UTF-8", "HOME": "/", "TERM": "dumb"}
MAX_ARGS, MAX_ARG_LENGTH = 32, 1024
DEFAULT_CAP, MAX_CAP = 1 << 20, 16 << 20
READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Request:
    script: str
    sha256: str
    args: list[str]
    timeout: int
    output_cap: int


def request(obj: dict[str, Any]) -> Request:
    return Request(
        script=params.text(obj, "script", max_length=64),
        sha256=params.sha256(obj),
        args=params.string_list(
            obj, "args", max_items=MAX_ARGS, max_length=MAX_ARG_LENGTH, default=[]
        ),
        timeout=params.integer(obj, "timeout", 60, minimum=1, maximum=3600),
        output_cap=params.integer(obj, "output_cap", DEFAULT_CAP, minimum=0, maximum=MAX_CAP),
    )


def approved(agent: Agent, name: str, sha256: str) -> bytes | None:
    """The script's bytes when the installed signed content approves exactly this version."""
    found = ContentStore(agent.state).installed()
    entry = found.manifest.file(name) if found else None
    if found is None or entry is None or entry.kind != "script" or entry.sha256 != sha256:
        return None
    try:
        data = (found.directory / entry.name).read_bytes()
    except OSError:
        return None
    return data if hashlib.sha256(data).hexdigest() == sha256 else None


def find(agent: Agent, name: str, sha256: str) -> bytes:
    data = approved(agent, name, sha256)
    if data is None:
        try:
            contentsync.update(agent)
        except AgentError as exc:
            log.warning("RunScript: content sync before refusing failed: %s", exc.message)
        data = approved(agent, name, sha256)
    if data is None:
        raise JobError(
            f"script {name!r} with sha256 {sha256} is not in this station's signed approved "
            "library: refused",
            codes.NOT_APPROVED,
        )
    return data


def interpreter(script: bytes) -> list[str]:
    """argv of the interpreter the ``#!`` line names (an allowed one, found on disk)."""
    first = script.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", errors="replace")
    words = first[2:].split() if first.startswith("#!") else []
    if not words:
        raise JobError("the script has no #! line naming its interpreter", codes.BAD_JOB)
    program, rest = words[0], words[1:]
    if os.path.basename(program) == "env" and rest:
        program, rest = rest[0], rest[1:]
    if os.path.basename(program) not in INTERPRETERS:
        raise JobError(f"interpreter {program[:60]!r} is not an allowed one", codes.BAD_JOB)
    path = program if program.startswith("/") else shutil.which(program, path=SAFE_PATH)
    if path is None or not os.access(path, os.X_OK):
        raise JobError(f"interpreter {program[:60]} is not installed here", codes.FAILED)
    return [path, *rest]


class Capture:
    """Drain one pipe in a thread, keeping the first ``cap`` bytes."""

    def __init__(self, pipe: IO[bytes], cap: int) -> None:
        self.pipe, self.cap = pipe, cap
        self.kept = bytearray()
        self.truncated = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            while chunk := os.read(self.pipe.fileno(), READ_CHUNK):
                room = self.cap - len(self.kept)
                if room > 0:
                    self.kept += chunk[:room]
                if len(chunk) > max(room, 0):
                    self.truncated = True

    def text(self, wait: float) -> str:
        self.thread.join(wait)
        with contextlib.suppress(OSError):
            self.pipe.close()
        return self.kept.decode("utf-8", errors="replace")


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def execute(script: bytes, req: Request) -> dict[str, Any]:
    """Run ``script``; the result, or TIMEOUT with what was captured (``partial``)."""
    argv = interpreter(script)
    with tempfile.TemporaryDirectory(prefix="garrison-script-") as tmp:
        path = Path(tmp) / f"{req.script}.script"
        path.write_bytes(script)
        path.chmod(0o500)
        started = time.monotonic()
        process = subprocess.Popen(  # noqa: S603 - argv from the signed script, no shell
            [*argv, str(path), *req.args],
            cwd="/",
            env=dict(CLEAN_ENV),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
        )
        if process.stdout is None or process.stderr is None:  # PIPE gives both; for mypy
            _kill_group(process.pid)
            raise JobError("the script's output pipes were not opened", codes.INTERNAL)
        out, err = Capture(process.stdout, req.output_cap), Capture(process.stderr, req.output_cap)
        timed_out = False
        try:
            process.wait(req.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        # The whole group: a child the script left behind would hold the pipes open.
        _kill_group(process.pid)
        process.wait()
        duration = int((time.monotonic() - started) * 1000)
        result = {
            "exit_code": process.returncode,
            "stdout": out.text(5.0),
            "stderr": err.text(5.0),
            "truncated": out.truncated or err.truncated,
            "duration_ms": duration,
        }
    if timed_out:
        raise JobError(
            f"script {req.script} ran past its timeout of {req.timeout} s: killed",
            codes.TIMEOUT,
            result={**result, "partial": True},
        )
    return result


def run(agent: Agent, obj: dict[str, Any]) -> Reply:
    req = request(obj)
    result = execute(find(agent, req.script, req.sha256), req)
    return Reply(f"script {req.script} exited with {result['exit_code']}", result)


def handle(agent: Agent, job: Job) -> Reply:
    return run(agent, params.obj(job))
