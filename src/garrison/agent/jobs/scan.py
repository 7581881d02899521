"""Scan: run the engine on a path, report progress during long scans (``progress`` < 100),
act on detections per the configuration, then send alerts and the results (progress 100)."""

from __future__ import annotations

import base64
import binascii
import os
import time
from typing import Any

from garrison.agent import components, samples
from garrison.agent.context import Agent
from garrison.agent.errors import JobError
from garrison.agent.jobstore import Job
from garrison.agent.scan import actions
from garrison.agent.scan.engine import Progress, ScanResult, iso_duration

ALERT_BATCH = 1000


def scan_paths(obj: Any) -> list[str]:
    if not isinstance(obj, dict):
        raise JobError("the Scan job has no obj")
    raw = obj.get("scan_path")
    if not isinstance(raw, str) or not raw.strip():
        raise JobError("the Scan job has no scan_path")
    try:
        text = base64.b64decode(raw.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        # An older or hand-written server may send the path in clear.
        text = raw
    paths = [p.strip() for p in text.split(";") if p.strip()]
    if not paths:
        raise JobError("the Scan job's scan_path is empty")
    return paths


def alert_body(
    job_id: int | None, result: ScanResult, events: dict[int, str] | None = None
) -> list[dict[str, Any]]:
    """``events``: detection index -> the event uuid of an alert whose sample is kept for
    upload (:mod:`garrison.agent.samples`), sent as ``info.event_uuid``."""
    bodies = []
    events = events or {}
    alerts = [
        {
            "name": d.threat,
            "filepath": d.path,
            "action": d.action,
            "module_name": d.module,
            "detection_time": d.detection_time,
            "info": {
                "sha256": d.sha256,
                "size": d.size,
                **({"member": d.member, "file_sha256": d.file_sha256} if d.member else {}),
                **({"suspicious": True} if d.suspicious else {}),
                **({"event_uuid": events[i]} if i in events else {}),
            },
        }
        for i, d in enumerate(result.detections)
    ]
    for start in range(0, len(alerts), ALERT_BATCH):
        body: dict[str, Any] = {"alerts": alerts[start : start + ALERT_BATCH]}
        if job_id is not None:
            body["job_id"] = job_id
        bodies.append(body)
    return bodies


def scan_report(
    job_id: int | None, result: ScanResult | None, progress: int, duration: float
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "progress": progress,
        "duration": iso_duration(duration),
        "scanned_count": result.scanned if result else 0,
        "malware_count": result.malware if result else 0,
        "suspicious_count": result.suspicious if result else 0,
    }
    if result is not None:  # Garrison's addition: what the scan did to the files it found
        for key, action in (("quarantined_count", "quarantined"), ("deleted_count", "deleted")):
            body[key] = len({d.path for d in result.detections if d.action == action})
    if job_id is not None:
        body["job_id"] = job_id
    return body


def run_scan(
    agent: Agent, paths: list[str], job_id: int | None, ui: Progress | None = None
) -> ScanResult:
    missing = [p for p in paths if not os.path.lexists(p)]
    if missing and len(missing) == len(paths):
        raise JobError(f"nothing to scan: {', '.join(missing)} does not exist")
    engine = agent.engine()
    run = components.started(agent, components.SCANNER)
    started = time.monotonic()
    last_report = started
    interval = agent.config.scan.progress_interval

    def progress(done: int, total: int, path: str) -> None:
        nonlocal last_report
        if ui:
            ui(done, total, path)
        now = time.monotonic()
        if now - last_report >= interval and total:
            last_report = now
            percent = min(99, done * 100 // total)
            agent.send("scans", "Scan", scan_report(job_id, None, percent, now - started))

    result = engine.scan(paths, progress, agent.stop_requested.is_set)
    result.errors[:0] = [f"{p}: does not exist" for p in missing]
    # Before the action: a deleted or quarantined file can no longer be copied.
    events = samples.keep(agent, result.detections)
    problems = actions.apply(result.detections, agent.config.scan.action, agent.quarantine)
    result.errors.extend(problems)
    for body in alert_body(job_id, result, events):
        agent.send("alerts", "Alerts", body)
    agent.send("scans", "Scan", scan_report(job_id, result, 100, result.duration))
    components.scan_errors(agent, result)
    # clamscan's exit codes: 0 clean, 1 threats found, 2 errors.
    exitcode = 1 if result.detections else 2 if result.errors else 0
    run.completed(result.malware + result.suspicious, len(result.errors), exitcode)
    return result


def summary(result: ScanResult) -> str:
    text = (
        f"scanned {result.scanned} file(s): {result.malware} malware, "
        f"{result.suspicious} suspicious, {len(result.errors)} error(s) in "
        f"{result.duration:.1f} s"
    )
    if result.errors:
        text += "; first error: " + result.errors[0]
    return text


def handle(agent: Agent, job: Job) -> str:
    result = run_scan(agent, scan_paths(job.obj), job.id)
    return summary(result)
