"""What a hunt found: its progress, one row per station, the aggregate, and the exports.

A station's row shows ``found`` only from a complete answer: a failed or partial one has
``found`` None (unknown), so nothing partial is counted as an answer.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from garrison.common.vocabulary import JobStatus
from garrison.server.hunts.models import Hunt
from garrison.server.jobs.models import JobTarget
from garrison.server.stations.models import Station

RECEIVED = frozenset({JobStatus.DOWNLOADED, JobStatus.SUCCESSFUL, JobStatus.FAILED})
MAX_PATHS = 100


def progress(session: Session, hunt: Hunt) -> dict[str, int]:
    """targeted (stations asked so far), received (their agent has the question), done
    (answered), failed, pending (not answered yet) and found (answered yes)."""
    if hunt.job_id is None:
        answered = (hunt.server_result or {}).get("stations", [])
        count = len(answered)
        return {
            "targeted": count,
            "received": count,
            "done": count,
            "failed": 0,
            "pending": 0,
            "cancelled": 0,
            "found": count,
        }
    counts = {
        status: int(n)
        for status, n in session.execute(
            select(JobTarget.status, func.count())
            .where(JobTarget.job_id == hunt.job_id)
            .group_by(JobTarget.status)
        )
    }
    found = sum(1 for row in rows(session, hunt) if row.found)
    return {
        "targeted": sum(counts.values()),
        "received": sum(counts.get(s, 0) for s in RECEIVED),
        "done": counts.get(JobStatus.SUCCESSFUL, 0),
        "failed": counts.get(JobStatus.FAILED, 0),
        "pending": counts.get(JobStatus.QUEUED, 0) + counts.get(JobStatus.SENT, 0),
        "cancelled": counts.get(JobStatus.CANCELLED, 0),
        "found": found,
    }


@dataclass(frozen=True)
class StationRow:
    station_id: int
    hostname: str
    status: str
    found: bool | None
    paths: list[str]
    sha256s: list[str]
    code: int | None
    message: str | None
    result: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "station_id": self.station_id,
            "hostname": self.hostname,
            "status": self.status,
            "found": self.found,
            "paths": self.paths,
            "sha256s": self.sha256s,
            "code": self.code,
            "message": self.message,
            "result": self.result,
        }


def _found(status: str, result: dict[str, Any] | None) -> bool | None:
    if status != JobStatus.SUCCESSFUL or result is None or result.get("partial"):
        return None
    found = result.get("found")
    if isinstance(found, bool):
        return found
    # CollectFile and RunScript answer without a found: a complete answer is one.
    return True


def _paths(result: dict[str, Any] | None) -> tuple[list[str], list[str]]:
    if not result:
        return [], []
    paths: list[str] = []
    digests: list[str] = []
    items = result.get("matches") or result.get("processes") or []
    if isinstance(result.get("path"), str):
        items = [result]
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        path = item.get("path")
        if isinstance(path, str) and len(paths) < MAX_PATHS:
            paths.append(path)
        digest = item.get("sha256")
        if isinstance(digest, str) and digest not in digests and len(digests) < MAX_PATHS:
            digests.append(digest)
    return paths, digests


def rows(
    session: Session,
    hunt: Hunt,
    *,
    found: bool | None = None,
    contains: str | None = None,
    station_id: int | None = None,
) -> list[StationRow]:
    """Per-station rows in station order; ``found`` keeps rows with that answer, ``contains``
    those with a path or sha256 containing the text (case-insensitive)."""
    if hunt.job_id is None:
        made = [
            StationRow(
                int(e["station_id"]),
                "",
                JobStatus.SUCCESSFUL,
                True,
                list(e.get("paths", [])),
                [],
                0,
                f"{e.get('events', 0)} matching events on the server",
                e,
            )
            for e in (hunt.server_result or {}).get("stations", [])
        ]
        names = dict(
            session.execute(
                select(Station.id, Station.hostname).where(
                    Station.id.in_([r.station_id for r in made])
                )
            ).all()
        )
        made = [StationRow(**{**r.__dict__, "hostname": names.get(r.station_id, "")}) for r in made]
    else:
        query = (
            select(JobTarget, Station.hostname)
            .join(Station, Station.id == JobTarget.station_id)
            .where(JobTarget.job_id == hunt.job_id)
            .order_by(JobTarget.station_id)
        )
        if station_id is not None:
            query = query.where(JobTarget.station_id == station_id)
        made = []
        for target, hostname in session.execute(query):
            paths, digests = _paths(target.result)
            made.append(
                StationRow(
                    target.station_id,
                    hostname,
                    target.status,
                    _found(target.status, target.result),
                    paths,
                    digests,
                    target.code,
                    target.message,
                    target.result,
                )
            )
    if station_id is not None:
        made = [r for r in made if r.station_id == station_id]
    if found is not None:
        made = [r for r in made if r.found is found]
    if contains:
        needle = contains.lower()
        made = [r for r in made if any(needle in p.lower() for p in (*r.paths, *r.sha256s))]
    return made


def aggregate(found_rows: list[StationRow]) -> dict[str, Any]:
    """Across stations: how many stations hold each path and each sha256 (top 100)."""
    paths: Counter[str] = Counter()
    digests: Counter[str] = Counter()
    for row in found_rows:
        if row.found:
            paths.update(set(row.paths))
            digests.update(set(row.sha256s))
    return {
        "paths": [{"path": p, "stations": n} for p, n in paths.most_common(MAX_PATHS)],
        "sha256s": [{"sha256": d, "stations": n} for d, n in digests.most_common(MAX_PATHS)],
    }


CSV_COLUMNS = ("station_id", "hostname", "status", "found", "paths", "sha256s", "code", "message")


def csv_lines(found_rows: list[StationRow]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for row in found_rows:
        writer.writerow(
            [
                row.station_id,
                row.hostname,
                row.status,
                "" if row.found is None else str(row.found).lower(),
                ";".join(row.paths),
                ";".join(row.sha256s),
                "" if row.code is None else row.code,
                row.message or "",
            ]
        )
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    rest = buffer.getvalue()
    if rest:
        yield rest


def ndjson_lines(found_rows: list[StationRow]) -> Iterator[bytes]:
    for row in found_rows:
        yield orjson.dumps(row.as_dict()) + b"\n"
