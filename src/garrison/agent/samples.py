"""Detected samples sent to the server with their alert, when ``[response] upload_samples``
says so (the server decides too: its setting ``upload_samples``, 403 when off).

At detection, before the scan's action can remove the file, a copy of it is kept in the
state dir (``samples/``, defanged as quarantine keeps files) and its alert is given an
``event_uuid`` (in the alert's ``info``): the id the server is to give that alert's
``threat_detected`` event (an amendment the server has yet to make: docs/agent.md).  Once
the spool has delivered the alerts, each kept sample goes up with
``PUT /api/files/<sha256>?alert=<event_uuid>``.  Sent, refused (403: the server takes no
samples from this station; 400, 404, 413) or too old: the copy is removed.  Unreachable:
kept for the next flush.  Bounded by count, size and age."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from garrison.agent import upload
from garrison.agent.errors import AgentError, RefusedError
from garrison.agent.quarantine import defang
from garrison.agent.state import write_private

if TYPE_CHECKING:
    from garrison.agent.context import Agent
    from garrison.agent.scan.engine import Detection

log = logging.getLogger("garrison.agent.samples")

DIR = "samples"
PENDING = "pending.json"
MAX_PENDING = 100
MAX_AGE = 7 * 86400
MAX_SAMPLE = 64 << 20


@dataclass(frozen=True)
class Pending:
    alert: str  # the event uuid given to the alert
    sha256: str
    size: int
    queued_at: float


def _dir(agent: Agent) -> Path:
    return agent.state.path / DIR


def _load(agent: Agent) -> list[Pending]:
    data = agent.state.read_json(_dir(agent) / PENDING, [])
    out = []
    for item in data if isinstance(data, list) else []:
        with contextlib.suppress(TypeError, ValueError):
            out.append(Pending(**item))
    return out


def _save(agent: Agent, items: list[Pending]) -> None:
    agent.state.write_json(_dir(agent) / PENDING, [item.__dict__ for item in items])


def _read(path: str, sha256: str, limit: int) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit or hashlib.sha256(data).hexdigest() != sha256:
        return None  # too big, or no longer the file detected
    return data


def keep(agent: Agent, detections: list[Detection]) -> dict[int, str]:
    """Keep a copy of each detected file (once per file); returns detection index -> the
    event uuid its alert carries.  Nothing when the policy does not ask for samples."""
    if not agent.config.response.upload_samples:
        return {}
    limit = min(MAX_SAMPLE, agent.config.scan.max_file_size)
    given: dict[int, str] = {}
    with agent.state.lock("samples"):
        pending = _load(agent)
        known = {p.sha256 for p in pending}
        for index, det in enumerate(detections):
            if det.file_sha256 in known or len(pending) >= MAX_PENDING:
                continue
            data = _read(det.path, det.file_sha256, limit)
            if data is None:
                continue
            _dir(agent).mkdir(mode=0o700, exist_ok=True)
            write_private(_dir(agent) / f"{det.file_sha256}.bin", defang(data))
            event = str(uuid.uuid4())
            pending.append(Pending(event, det.file_sha256, len(data), time.time()))
            known.add(det.file_sha256)
            given[index] = event
        _save(agent, pending)
    return given


def _send(agent: Agent, item: Pending) -> None:
    blob = _dir(agent) / f"{item.sha256}.bin"
    data = defang(blob.read_bytes())
    if hashlib.sha256(data).hexdigest() != item.sha256:
        raise ValueError("damaged copy")
    fd = os.memfd_create("garrison-sample", os.MFD_CLOEXEC)
    try:
        os.write(fd, data)
        upload.send(agent, fd, len(data), {"alert": item.alert})
    finally:
        os.close(fd)


def waiting(agent: Agent) -> bool:
    """Cheap: whether anything is kept (the daemon asks after every flush)."""
    return (_dir(agent) / PENDING).is_file() and bool(_load(agent))


def upload_pending(agent: Agent) -> dict[str, Any]:
    """Send what is kept; ``{"sent", "refused", "left"}``.  Call it after the alerts went."""
    counts = {"sent": 0, "refused": 0, "left": 0}
    with agent.state.lock("samples"):
        left: list[Pending] = []
        for item in _load(agent):
            try:
                if time.time() - item.queued_at > MAX_AGE:
                    raise ValueError("too old")
                _send(agent, item)
                counts["sent"] += 1
            except RefusedError as exc:
                # 403: this station's group takes no samples; 400/413: this one never fits.
                log.info("sample %s not taken by the server: %s", item.sha256, exc.message)
                counts["refused"] += 1
            except AgentError as exc:
                log.warning("sample %s: %s; kept for later", item.sha256, exc.message)
                left.append(item)
                continue
            except (OSError, ValueError) as exc:
                log.warning("sample %s dropped: %s", item.sha256, exc)
            with contextlib.suppress(OSError):
                (_dir(agent) / f"{item.sha256}.bin").unlink()
        counts["left"] = len(left)
        if left or (_dir(agent) / PENDING).exists():
            _save(agent, left)
    return counts
