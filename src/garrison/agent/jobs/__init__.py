"""Job types an agent runs, by name: Scan (Armadito) and Garrison's own."""

from __future__ import annotations

from collections.abc import Callable

from garrison.agent.context import Agent
from garrison.agent.jobs import network, scan, selftest, signatures, uninstall
from garrison.agent.jobstore import Job
from garrison.common.vocabulary import JobType

Handler = Callable[[Agent, Job], str]

# Keyed by the vocabulary's job types: a lookup by the job's string finds the same entry.
HANDLERS: dict[str, Handler] = {
    JobType.SCAN: scan.handle,
    JobType.UPDATE_SIGNATURES: signatures.handle,
    JobType.ISOLATE_NETWORK: network.isolate,
    JobType.REJOIN_NETWORK: network.rejoin,
    JobType.SELF_TEST: selftest.handle,
    JobType.UNINSTALL: uninstall.handle,
}
