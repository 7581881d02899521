"""What happens to a detected file, per the configuration: report only, quarantine or delete.

Only files the engine detected are touched, and only while their content is still the one
detected (its SHA-256 is checked again first)."""

from __future__ import annotations

import hashlib
import os

from garrison.agent.errors import LocalError
from garrison.agent.quarantine import Quarantine
from garrison.agent.scan.engine import Detection


def _delete(path: str, expected_sha256: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as handle:
            sha = hashlib.sha256(handle.read()).hexdigest()
    except OSError as exc:
        raise LocalError(f"cannot delete {path}: {exc.strerror or exc}") from None
    if sha != expected_sha256:
        raise LocalError(f"{path} changed since it was detected; left in place")
    try:
        os.unlink(path)
    except OSError as exc:
        raise LocalError(f"cannot delete {path}: {exc.strerror or exc}") from None


def apply(detections: list[Detection], action: str, quarantine: Quarantine) -> list[str]:
    """Act once per file; sets each detection's ``action``; returns the problems met."""
    problems = []
    done: dict[str, str] = {}
    for det in detections:
        if det.path in done:
            det.action = done[det.path]
            continue
        outcome = "none"
        try:
            if action == "quarantine":
                quarantine.add(det.path, det.threat, det.file_sha256)
                outcome = "quarantined"
            elif action == "delete":
                _delete(det.path, det.file_sha256)
                outcome = "deleted"
        except LocalError as exc:
            problems.append(exc.message)
            outcome = f"{action} failed"
        det.action = done[det.path] = outcome
    return problems
