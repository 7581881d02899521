"""Job types an agent runs, by name: Scan (Armadito) and Garrison's own."""

from __future__ import annotations

from collections.abc import Callable

from garrison.agent.context import Agent
from garrison.agent.jobs import network, scan, selftest, signatures, uninstall
from garrison.agent.jobstore import Job

Handler = Callable[[Agent, Job], str]

HANDLERS: dict[str, Handler] = {
    "Scan": scan.handle,
    "UpdateSignatures": signatures.handle,
    "IsolateNetwork": network.isolate,
    "RejoinNetwork": network.rejoin,
    "SelfTest": selftest.handle,
    "Uninstall": uninstall.handle,
}
