"""The agent API's answers in the Armadito wire format.

The use cases return plain results; how an Armadito (or Garrison) agent expects to read
them, down to the base64 of a scan path, is only known here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from garrison.common.wire import b64
from garrison.server.alerts.reports import AlertsRecorded
from garrison.server.configs.reports import ConfigRecorded
from garrison.server.enrollment.reports import Enrollment
from garrison.server.events.reports import EventsIngested
from garrison.server.jobs.params import RESPONSE_TYPES
from garrison.server.jobs.reports import JobReported
from garrison.server.jobs.service import QueuedJob
from garrison.server.scans.reports import ScanRecorded

OK: dict[str, Any] = {"status": "ok"}


def job(queued: QueuedJob) -> dict[str, Any]:
    """A job as the agent receives it; Scan paths and options are base64, as Armadito expects."""
    params = queued.params
    if queued.type == "Scan":
        options = params.get("options", "")
        obj: dict[str, Any] = {
            "scanconfig_id": params.get("scanconfig_id", 1),
            "scan_name": params.get("name", "on-demand"),
            "scan_path": b64(params["path"]),
            "scan_options": b64(options) if options else "",
        }
        if params.get("investigation_id"):
            # Extra keys are ignored by the Armadito agent; Garrison's echoes it in a RECEIPT.
            obj["investigation_id"] = params["investigation_id"]
    else:
        obj = dict(params)
        if queued.type in RESPONSE_TYPES:
            # RESPONSE-WIRE.md: the agent echoes it in its CLOUD_NOTIFICATION and RECEIPT.
            obj.setdefault("investigation_id", f"job-{queued.id}")
    return {
        "job_id": queued.id,
        "job_type": queued.type,
        "job_priority": str(queued.priority),
        "obj": obj,
    }


def jobs(queued: Sequence[QueuedJob], content: dict[str, Any] | None = None) -> dict[str, Any]:
    """Getjobs' answer; ``content`` (Garrison agents only: ``{serial, manifest_sha256}``)."""
    answer: dict[str, Any] = {"jobs": [job(q) for q in queued]}
    if content is not None:
        answer["content"] = content
    return answer


def enrollment(enrolled: Enrollment, content: dict[str, Any] | None = None) -> dict[str, Any]:
    """The enrollment answer; a Garrison agent's gains ``content_keys`` and ``server_id``."""
    answer: dict[str, Any] = {
        "agent_id": enrolled.station_id,
        "scheduler_id": enrolled.station_id,
        "agent_token": enrolled.token,
    }
    if content is not None:
        answer["content_keys"] = content["content_keys"]
        answer["server_id"] = content["server_id"]
    return answer


def job_reported(result: JobReported) -> dict[str, Any]:
    return {"status": "ok", "job_id": result.job_id, "job_status": result.status}


def scan_recorded(result: ScanRecorded) -> dict[str, Any]:
    return {"status": "ok", "scan_id": result.scan_id}


def alerts_recorded(result: AlertsRecorded) -> dict[str, Any]:
    return {"status": "ok", "stored": result.stored, "duplicates": result.duplicates}


def config_recorded(result: ConfigRecorded) -> dict[str, Any]:
    return {"status": "ok", "differences": result.differences}


def desired_pairs(pairs: dict[str, str]) -> list[dict[str, str]]:
    return [{"attr": attr, "value": value} for attr, value in pairs.items()]


def events_ingested(result: EventsIngested) -> dict[str, Any]:
    return {
        "stored": result.stored,
        "duplicates": result.duplicates,
        "refused": result.refused,
        "results": [
            {
                "index": r.index,
                "status": r.status,
                **({"seq": r.seq} if r.seq else {}),
                **({"error": r.error} if r.error else {}),
            }
            for r in result.results
        ],
    }
