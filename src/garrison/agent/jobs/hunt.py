"""Hunt: one question of a fleet-wide hunt, answered on this station (FindFile,
FindProcess, CollectFile, RunScript).  A hunt that expired before it ran is refused."""

from __future__ import annotations

import time
from typing import Any

from garrison.agent.context import Agent
from garrison.agent.errors import JobError
from garrison.agent.jobs import codes, findfile, getfile, params, processes, scripts
from garrison.agent.jobs.params import Reply
from garrison.agent.jobstore import Job

QUESTIONS = ("FindFile", "FindProcess", "CollectFile", "RunScript")


def find_process(question: dict[str, Any]) -> dict[str, Any]:
    name = question.get("name")
    cmdline = question.get("cmdline")
    if name is None and cmdline is None and question.get("sha256") is None:
        raise params.bad("FindProcess needs name, sha256 or cmdline")
    pattern = params.text(question, "name", max_length=1024) if name is not None else None
    part = params.text(question, "cmdline", max_length=4096) if cmdline is not None else None
    sha = params.sha256(question) if question.get("sha256") is not None else None
    found = [p for p in processes.snapshot() if processes.matches(p, pattern, part, sha)]
    return {"found": bool(found), "processes": [p.to_json() for p in found]}


def handle(agent: Agent, job: Job) -> Reply:
    obj = params.obj(job)
    hunt_id = params.integer(obj, "hunt_id", minimum=1)
    expires = params.integer(obj, "expires_at", minimum=0)
    question = obj.get("question")
    if not isinstance(question, dict):
        raise params.bad("the hunt has no question object")
    kind = question.get("type")
    if kind not in QUESTIONS:
        raise params.bad(f"unknown hunt question {str(kind)[:40]!r}: one of {', '.join(QUESTIONS)}")
    if expires and expires < time.time():
        raise JobError(f"hunt {hunt_id} expired before it ran here", codes.REFUSED)
    if kind == "FindFile":
        result = findfile.find_file(question, agent.config.scan.max_file_size)
        return Reply(
            f"hunt {hunt_id}: {len(result['matches'])} file(s) found in {result['scanned']}",
            result,
        )
    if kind == "FindProcess":
        result = find_process(question)
        return Reply(f"hunt {hunt_id}: {len(result['processes'])} process(es) found", result)
    if kind == "CollectFile":
        return getfile.collect(agent, job.id, question, getfile.DEFAULT_MAX_BYTES)
    return scripts.run(agent, question)
