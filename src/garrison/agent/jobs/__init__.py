"""Job types an agent runs, by name: Scan (Armadito) and Garrison's own.

A handler answers the Runjobs message (a string), or a :class:`~.params.Reply` with the
structured ``result`` of a response job (issue 17); it fails by raising ``JobError`` with the
job's code (:mod:`.codes`)."""

from __future__ import annotations

from collections.abc import Callable

from garrison.agent.context import Agent
from garrison.agent.jobs import (
    connections,
    files,
    getfile,
    hunt,
    kill,
    network,
    processes,
    quarantined,
    scan,
    scripts,
    selftest,
    services,
    sessions,
    signatures,
    uninstall,
    upgrade,
)
from garrison.agent.jobs.params import Reply
from garrison.agent.jobstore import Job
from garrison.common.vocabulary import JobType

Handler = Callable[[Agent, Job], str | Reply]

# Keyed by the vocabulary's job types: a lookup by the job's string finds the same entry.
HANDLERS: dict[str, Handler] = {
    JobType.SCAN: scan.handle,
    JobType.UPDATE_SIGNATURES: signatures.handle,
    JobType.ISOLATE_NETWORK: network.isolate,
    JobType.REJOIN_NETWORK: network.rejoin,
    JobType.SELF_TEST: selftest.handle,
    JobType.UNINSTALL: uninstall.handle,
    JobType.KILL_PROCESS: kill.handle,
    JobType.LIST_PROCESSES: processes.list_processes,
    JobType.LIST_CONNECTIONS: connections.list_connections,
    JobType.LIST_SERVICES: services.list_services,
    JobType.LIST_SESSIONS: sessions.list_sessions,
    JobType.GET_FILE: getfile.handle,
    JobType.DELETE_FILE: files.delete,
    JobType.QUARANTINE_FILE: files.quarantine,
    JobType.LIST_QUARANTINE: quarantined.list_items,
    JobType.RESTORE_QUARANTINED: quarantined.restore,
    JobType.RUN_SCRIPT: scripts.handle,
    JobType.HUNT: hunt.handle,
    JobType.UPGRADE_AGENT: upgrade.handle,
}
