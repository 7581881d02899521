"""State: ``POST /api/states`` with the Armadito shape (dbinfo with modules, avdetails).

Garrison's additions: ``mod_version``/``mod_records`` per module, one module per signed rule
set in force (with ``version``, ``records``, ``sha256``) and ``dbinfo.content_serial`` (0
while no signed content is installed)."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import time
from typing import Any

from garrison import __version__
from garrison.agent import isolation
from garrison.agent.content.store import ContentStore
from garrison.agent.context import Agent
from garrison.agent.prevention import protect
from garrison.agent.scan import clamav


def _status(updated: int, max_age_days: int) -> str:
    return "up-to-date" if time.time() - updated <= max_age_days * 86400 else "late"


def _yara_version() -> str:
    try:
        return importlib.metadata.version("yara-python")
    except importlib.metadata.PackageNotFoundError:
        return ""


def build(agent: Agent) -> dict[str, Any]:
    db = agent.signatures
    max_age = agent.config.daemon.max_db_age_days
    # The packaged EICAR self-test base does not age (the test file never changes): with only
    # it loaded nothing newer exists to fetch, so a fresh install is not "late".  Any other
    # content ages from its date as before.  (self_test_only says which case this is.)
    status = "up-to-date" if db.self_test_only else _status(db.date, max_age)
    # mod_version and mod_records are Garrison's additions to the Armadito module (the
    # server carries them into virus_bases_received); an Armadito agent sends neither.
    modules: list[dict[str, Any]] = [
        {
            "name": "garrison-hash",
            "mod_status": status,
            "mod_update_timestamp": db.date,
            "mod_version": db.version,
            "mod_records": db.hash_count,
        },
    ]
    yara_version = _yara_version()
    if agent.config.scan.yara:
        modules.append(
            {
                "name": "yara",
                "mod_status": status if db.yara_count else "disabled",
                "mod_update_timestamp": db.date,
                "mod_version": db.version,
                "mod_records": db.yara_count,
            }
        )
    # One module per signed rule set in force (CONTENT-WIRE.md): its version, records and
    # hash, dated by the manifest's issue time.
    found = ContentStore(agent.state).installed()
    if found is not None:
        issued = int(found.manifest.issued.timestamp())
        for entry in found.manifest.files:
            modules.append(
                {
                    "name": entry.ruleset,
                    "mod_status": "up-to-date",
                    "mod_update_timestamp": issued,
                    "mod_version": str(entry.version),
                    "mod_records": entry.records,
                    "version": entry.version,
                    "records": entry.records,
                    "sha256": entry.sha256,
                }
            )
    clam = clamav.version() if agent.config.scan.clamav else ""
    if agent.config.scan.clamav:
        modules.append(
            {
                "name": "clamav",
                "mod_status": "up-to-date" if clam else "not-installed",
                "mod_update_timestamp": 0,
                **({"mod_version": clam} if clam else {}),
            }
        )
    global_status = (
        "up-to-date" if all(m["mod_status"] == "up-to-date" for m in modules) else "late"
    )
    spool = agent.spool.stats()
    details = {
        "engine_version": __version__,
        "signature_version": db.version,
        "signature_date": dt.datetime.fromtimestamp(db.date, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "signature_records": str(db.records),
        "hash_records": str(db.hash_count),
        "yara_records": str(db.yara_count),
        "clamav_body_records": str(db.ndb.count),
        "signatures_skipped": db.skipped_summary or "none",
        "self_test_only": "1" if db.self_test_only else "0",
        "yara_version": yara_version or "not installed",
        "clamav_version": clam or ("not installed" if agent.config.scan.clamav else "disabled"),
        "scan_action": agent.config.scan.action,
        "isolated": "1" if isolation.is_isolated(agent.state) else "0",
        "quarantined_files": str(len(agent.quarantine.entries())),
        "spool_messages": str(spool["messages"]),
        # What the agent refuses to block (the server refuses to block it too).
        "protected_sha256": ";".join(sorted(set(protect.protected().values()))),
        "blocklist_records": str(len(db.blocklist)),
        "spool_dropped": str(
            spool["dropped_expired"] + spool["dropped_cap"] + spool["dropped_refused"]
        ),
    }
    if agent.prevention_status is not None:
        details.update(agent.prevention_status())
    body: dict[str, Any] = {
        "dbinfo": {
            "global_status": global_status,
            "global_update_timestamp": db.date,
            "modules": modules,
            "content_serial": found.manifest.serial if found is not None else 0,
        },
        "avdetails": [{"attr": k, "value": v} for k, v in details.items()],
    }
    # Garrison's addition (an Armadito agent sends none): the [location] of agent.toml.
    place = agent.config.location.place()
    if place is not None:
        body["location"] = {"latitude": place[0], "longitude": place[1]}
    return body


def run(agent: Agent) -> dict[str, Any]:
    body = build(agent)
    agent.send("states", "State", body)
    return body
