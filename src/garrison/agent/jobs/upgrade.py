"""UpgradeAgent (issue 21; docs/agent.md "Self-update"): fetch the package the job names,
check it, unpack it beside the running version, switch ``current`` and restart into it.

The job is answered only once the outcome is known, so its first run *defers* (the job
stays stored): after the restart the new version, once it has checked in, runs the job
again and reports it successful; after a rollback the previous version runs it and
reports the launcher's reason, with a ``station_update_failed`` event.

What is checked before anything is written: the statement's signature by a pinned content
key (its rotations walked first) and its server, that it names the job's package (id,
version, architecture, hash, size), the architecture against this machine, the bytes'
size and SHA-256, and the zip itself (``agent_package.read``: whole, safe names, its own
manifest saying the same version and architecture).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import platform
from typing import Any

import httpx

from garrison import __version__
from garrison.agent.content import wire
from garrison.agent.content.errors import ContentRefused
from garrison.agent.content.keys import TrustStore
from garrison.agent.context import Agent
from garrison.agent.errors import JobDeferred, JobError
from garrison.agent.jobs import codes
from garrison.agent.jobs.params import Reply
from garrison.agent.jobstore import Job
from garrison.agent.transport import api_url
from garrison.agent.upgrade import launcher, versions
from garrison.common import agent_package

log = logging.getLogger("garrison.agent.upgrade")

PRODUCT = "garrison-agent"
STATEMENT_TYPE = "garrison-agent-package-1"
# platform.machine() names as Debian names architectures (the .deb packages' names).
MACHINES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "armhf", "i686": "i386"}


def machine() -> str:
    raw = platform.machine().lower()
    return MACHINES.get(raw, raw)


def _param(obj: Any, name: str, kind: type) -> Any:
    value = obj.get(name) if isinstance(obj, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise JobError(
            f"UpgradeAgent: params.{name} is missing or not a {kind.__name__}", codes.BAD_JOB
        )
    return value


def _refused(reason: str) -> JobError:
    return JobError(f"package refused: {reason}; still running {__version__}", codes.REFUSED)


def _statement(agent: Agent, job: Job, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("statement"), dict):
        raise _refused("the server's answer holds no signed statement (unsigned package)")
    statement: dict[str, Any] = body["statement"]
    signature_b64, key_id = body.get("signature"), body.get("key_id")
    if not signature_b64 or not isinstance(key_id, str):
        raise _refused("the package's statement carries no signature (unsigned package)")
    now = dt.datetime.now(dt.UTC)
    try:
        with agent.state.lock("content"):
            trust = TrustStore.load(agent.state)
            if trust.walk(body.get("rotations") or [], now):
                trust.save(agent.state)
        if not trust.keys:
            raise ContentRefused("no content key is pinned: enroll this agent again")
        signature = wire.b64decode(signature_b64, "the package's signature")
        trust.verify(key_id, signature, wire.canonical(statement), now)
    except ContentRefused as exc:
        raise _refused(exc.message.replace("the manifest's", "the package's")) from None
    if statement.get("type") != STATEMENT_TYPE:
        raise _refused(f"the statement's type is not {STATEMENT_TYPE}")
    if statement.get("server_id") != trust.server_id:
        raise _refused("the statement is from another server")
    obj = job.obj
    for name in ("id", "version", "architecture", "sha256", "size"):
        wanted = obj.get("package_id" if name == "id" else name)
        if statement.get(name) != wanted:
            raise _refused(
                f"the signed statement's {name} {str(statement.get(name))[:70]!r} is not the "
                f"job's {str(wanted)[:70]!r}"
            )
    arch = statement["architecture"]
    if arch not in (agent_package.ANY_ARCHITECTURE, machine()):
        raise _refused(f"the package is for {arch}, this machine is {machine()}")
    return statement


def _download(agent: Agent, job: Job, package_id: int, size: int, sha256: str) -> bytes:
    """The package's bytes, once its statement is checked; size and hash as signed."""
    with agent.transport(timeout=120) as transport:
        _statement(agent, job, transport.get(f"agent-packages/{package_id}"))
        headers = {"Authorization": f"Bearer {transport.identity.token}"}
        url = api_url(transport.base_url, f"agent-package-files/{package_id}")
        chunks: list[bytes] = []
        got = 0
        try:
            with transport.client.stream("GET", url, headers=headers) as response:
                if response.status_code != 200:
                    response.read()
                    raise JobError(
                        f"the server answered {response.status_code} for the package: "
                        f"{response.text[:200]}",
                        codes.FAILED,
                    )
                for chunk in response.iter_bytes():
                    got += len(chunk)
                    if got > size:
                        raise _refused(f"the package is larger than its signed {size} bytes")
                    chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise JobError(
                f"the package download broke off at {got} of {size} bytes ({exc}); "
                f"still running {__version__}",
                codes.FAILED,
            ) from None
    data = b"".join(chunks)
    if len(data) != size:
        raise _refused(f"the package is {len(data)} bytes, its statement says {size} (truncated)")
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise _refused(f"the package's SHA-256 {digest} is not the signed {sha256} (tampered)")
    return data


def _outcome(agent: Agent, job: Job, record: dict[str, Any]) -> Reply:
    """The job's answer from the trial record the restart left."""
    result = {
        "from_version": record.get("from_version"),
        "to_version": record.get("to_version"),
        "status": "upgraded",
    }
    if record.get("state") == launcher.CONFIRMED and __version__ == record.get("to_version"):
        record["reported"] = True
        versions.save(agent.state, record)
        return Reply(f"upgraded from {result['from_version']} to {__version__}", result)
    reason = str(record.get("reason") or "the new version did not take over")
    record["reported"] = True
    versions.save(agent.state, record)
    agent.event(
        "station_update_failed",
        {
            "product": PRODUCT,
            "description": f"rolled back to {__version__}: {reason}"[:2000],
            "from_revision": str(record.get("from_version") or ""),
            "to_revision": str(record.get("to_version") or ""),
        },
    )
    raise JobError(
        f"rolled back to {__version__}: {reason}",
        codes.FAILED,
        {**result, "status": "rolled_back", "reason": reason, "running_version": __version__},
    )


def handle(agent: Agent, job: Job) -> Reply:
    version = _param(job.obj, "version", str)
    package_id = _param(job.obj, "package_id", int)
    size = _param(job.obj, "size", int)
    sha256 = _param(job.obj, "sha256", str)
    confirm = _param(job.obj, "confirm_seconds", int)
    record = versions.record(agent.state)
    if record is not None and record.get("job_id") == job.id:
        if record.get("state") == launcher.TRIAL:
            raise JobDeferred(f"version {version} is on trial: answered once it checks in")
        return _outcome(agent, job, record)
    if version == __version__:
        return Reply(
            f"already running version {version}",
            {"from_version": __version__, "to_version": version, "status": "unchanged"},
        )
    if not agent.restart_possible:
        raise JobError(
            "UpgradeAgent needs the daemon (garrison-agent run): it restarts into the new version",
            codes.REFUSED,
        )
    data = _download(agent, job, package_id, size, sha256)
    try:
        manifest = agent_package.read(data)
    except agent_package.PackageError as exc:
        raise _refused(str(exc)) from None
    if manifest.version != version:
        raise _refused(f"its manifest says version {manifest.version}, the job {version}")
    try:
        name = versions.unpack(agent.state, version, data)
        versions.switch(agent.state, job.id, version, name, confirm)
    except OSError as exc:
        raise JobError(
            f"could not install version {version}: {exc.strerror or exc}; still running "
            f"{__version__}",
            codes.FAILED,
        ) from None
    agent.restart_requested = True
    log.info("version %s installed; restarting into it (job %d)", version, job.id)
    raise JobDeferred(f"version {version} installed; restarting into it")
