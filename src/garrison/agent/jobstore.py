"""Jobs fetched by Getjobs, kept in the state dir until Runjobs has run and reported them."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from garrison.agent.state import StateDir

log = logging.getLogger("garrison.agent.jobs")


@dataclass
class Job:
    id: int
    type: str
    priority: int
    obj: Any
    problem: str = ""  # set when the server sent a job this agent cannot read

    @property
    def investigation_id(self) -> str:
        if isinstance(self.obj, dict):
            value = self.obj.get("investigation_id")
            if isinstance(value, str | int) and str(value):
                return str(value)[:128]
        return str(self.id)

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.id,
            "job_type": self.type,
            "job_priority": str(self.priority),
            "obj": self.obj,
            "problem": self.problem,
        }


def parse_job(raw: Any) -> Job | None:
    """A job as the server sent it; None when it has no usable id (nothing to report to).

    A job with an id but anything else wrong is kept with a ``problem``, so Runjobs reports
    it failed instead of losing it."""
    if not isinstance(raw, dict):
        log.warning("Getjobs: ignored a job that is not a JSON object: %.100r", raw)
        return None
    try:
        job_id = int(raw["job_id"])
    except (KeyError, TypeError, ValueError):
        log.warning("Getjobs: ignored a job without a valid job_id: %.200r", raw)
        return None
    problems = []
    job_type = raw.get("job_type")
    if not isinstance(job_type, str) or not job_type:
        problems.append("job_type is missing")
        job_type = ""
    try:
        priority = int(str(raw.get("job_priority", "0")))
        if not 0 <= priority <= 3:
            raise ValueError
    except ValueError:
        problems.append(f"job_priority is not 0-3: {raw.get('job_priority')!r:.40}")
        priority = 0
    obj = raw.get("obj", {})
    if obj is None:
        obj = {}
    if not isinstance(obj, dict):
        problems.append("obj is not a JSON object")
    return Job(job_id, job_type, priority, obj, str(raw.get("problem") or "; ".join(problems)))


class JobStore:
    def __init__(self, state: StateDir) -> None:
        self.state = state

    def load(self) -> list[Job]:
        data = self.state.read_json(self.state.jobs_file, [])
        jobs = [parse_job(item) for item in data] if isinstance(data, list) else []
        return [j for j in jobs if j is not None]

    def _save(self, jobs: list[Job]) -> None:
        self.state.write_json(self.state.jobs_file, [j.to_json() for j in jobs])

    def add(self, raw_jobs: list[Any]) -> list[Job]:
        """Store new jobs (a job already stored is not stored twice); returns those added."""
        added = []
        with self.state.lock("jobs"):
            jobs = self.load()
            known = {j.id for j in jobs}
            for raw in raw_jobs:
                job = parse_job(raw)
                if job is not None and job.id not in known:
                    jobs.append(job)
                    known.add(job.id)
                    added.append(job)
            self._save(jobs)
        return added

    def ordered(self) -> list[Job]:
        """Highest priority first, oldest (lowest id) first within a priority."""
        return sorted(self.load(), key=lambda j: (-j.priority, j.id))

    def remove(self, job_id: int) -> None:
        with self.state.lock("jobs"):
            self._save([j for j in self.load() if j.id != job_id])
