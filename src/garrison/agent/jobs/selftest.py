"""SelfTest: scan a generated EICAR file and a clean file in a temporary dir; the engine must
find the first and only the first.  Reports a SELF_TEST event with the details."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from garrison import __version__
from garrison.agent.context import Agent
from garrison.agent.errors import JobError
from garrison.agent.jobstore import Job
from garrison.agent.scan.engine import Engine

# Built from two halves: the full test string never sits in a file of this package.
_EICAR_HEAD = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$"
_EICAR_TAIL = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def eicar() -> bytes:
    return (_EICAR_HEAD + _EICAR_TAIL).encode("ascii")


def run(agent: Agent) -> dict[str, Any]:
    db = agent.signatures
    config = agent.config.scan.model_copy(update={"action": "none", "exclude": [], "clamav": False})
    engine = Engine(db, config)
    with tempfile.TemporaryDirectory(prefix="garrison-selftest-") as tmp:
        (Path(tmp) / "eicar.com").write_bytes(eicar())
        (Path(tmp) / "clean.txt").write_text("nothing to see here\n")
        result = engine.scan([tmp])
    found = sorted({(Path(d.path).name, d.module) for d in result.detections})
    problems = []
    yara_hits = db.match_yara(eicar()) if db.yara_count and agent.config.scan.yara else []
    if db.yara_count and agent.config.scan.yara and not yara_hits:
        problems.append("the YARA rules did not match the EICAR test file")
    if not any(name == "eicar.com" for name, _ in found):
        problems.append("the EICAR test file was not detected")
    if any(name == "clean.txt" for name, _ in found):
        problems.append("a clean file was detected")
    if result.scanned != 2:
        problems.append(f"scanned {result.scanned} file(s) instead of 2")
    modules = sorted({module for _, module in found} | ({"yara"} if yara_hits else set()))
    # Flat values only: the SELF_TEST event's RESULT holds scalars.
    return {
        "ok": not problems,
        "problems": "; ".join(problems),
        "engine_version": __version__,
        "signature_version": db.version,
        "records": db.records,
        "yara_rules": db.yara_count,
        "detected_by": ", ".join(modules),
    }


def handle(agent: Agent, job: Job) -> str:
    report = run(agent)
    agent.event(
        "SELF_TEST",
        {
            "INVESTIGATION_ID": job.investigation_id,
            "ERROR": 0 if report["ok"] else 1,
            "RESULT": report,
        },
    )
    if not report["ok"]:
        raise JobError(f"self test failed: {report['problems']}")
    return f"self test passed: EICAR detected by {report['detected_by']}"
