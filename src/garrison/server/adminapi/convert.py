"""Rows to response models."""

from __future__ import annotations

import datetime as dt

from garrison.server.adminapi import schemas as s
from garrison.server.alerts.models import Alert
from garrison.server.enrollment.models import EnrollmentKey
from garrison.server.enrollment.service import key_status
from garrison.server.jobs.models import Job, JobTarget
from garrison.server.scans.models import Scan
from garrison.server.states.models import StationState
from garrison.server.stations.models import Station
from garrison.server.stations.service import is_online


def key(k: EnrollmentKey) -> s.KeyOut:
    return s.KeyOut(
        id=k.id,
        key=k.key,
        uses=k.uses_total,
        used=k.uses_count,
        expires_at=k.expires_at,
        revoked_at=k.revoked_at,
        status=key_status(k),
        description=k.description,
        created_at=k.created_at,
        created_by=k.created_by,
    )


def station(st: Station, offline_after: int, seen: dt.datetime | None = None) -> s.StationOut:
    """``seen``: a check-in this node has noted but not yet written (see PresenceTracker)."""
    last_seen = max(st.last_seen, seen) if seen is not None else st.last_seen
    return s.StationOut(
        id=st.id,
        uuid=st.uuid,
        hostname=st.hostname,
        os_name=st.os_name,
        os_platform=st.os_platform,
        address=st.address,
        mac=st.mac,
        antivirus_name=st.antivirus_name,
        antivirus_version=st.antivirus_version,
        agent_version=st.agent_version,
        agent_kind=st.agent_kind,
        enrolled_at=st.enrolled_at,
        last_seen=last_seen,
        last_alert_at=st.last_alert_at,
        online=is_online(st, offline_after, seen),
        groups=[s.GroupRef(id=g.id, name=g.name) for g in st.groups],
    )


def target(t: JobTarget) -> s.JobTargetOut:
    return s.JobTargetOut(
        station_id=t.station_id,
        status=t.status,
        downloaded_at=t.downloaded_at,
        start_time=t.start_time,
        end_time=t.end_time,
        code=t.code,
        message=t.message,
    )


def job(j: Job, counts: dict[str, int], targets: list[JobTarget]) -> s.JobOut:
    return s.JobOut(
        id=j.id,
        type=j.type,
        priority=j.priority,
        params=j.params,
        created_at=j.created_at,
        created_by=j.created_by,
        status_counts=counts,
        targets=[target(t) for t in targets],
    )


def alert(a: Alert) -> s.AlertOut:
    return s.AlertOut(
        id=a.id,
        station_id=a.station_id,
        job_id=a.job_id,
        threat_name=a.threat_name,
        filepath=a.filepath,
        action=a.action,
        module_name=a.module_name,
        antivirus=a.antivirus,
        detection_time=a.detection_time,
        received_at=a.received_at,
        acknowledged_at=a.acknowledged_at,
        acknowledged_by=a.acknowledged_by,
        info=a.info,
    )


def scan(sc: Scan) -> s.ScanOut:
    return s.ScanOut(
        id=sc.id,
        station_id=sc.station_id,
        job_id=sc.job_id,
        progress=sc.progress,
        duration_seconds=sc.duration_seconds,
        scanned_count=sc.scanned_count,
        malware_count=sc.malware_count,
        suspicious_count=sc.suspicious_count,
        started_at=sc.started_at,
        updated_at=sc.updated_at,
        completed_at=sc.completed_at,
    )


def state(st: StationState) -> s.StateOut:
    return s.StateOut(
        station_id=st.station_id,
        global_status=st.global_status,
        global_update_time=st.global_update_time,
        modules=st.modules,
        avdetails=st.avdetails,
        updated_at=st.updated_at,
    )
