"""Everything a request handler needs, built once by :func:`garrison.server.app.create_app`."""

from __future__ import annotations

from dataclasses import dataclass, field

from garrison.server.content.delivery import ContentDelivery
from garrison.server.events.consumers import ConsumerRunner
from garrison.server.export.consumer import ExportManager
from garrison.server.hunts.watch import HuntWatch
from garrison.server.jobs.waiters import JobWaiters
from garrison.server.metrics import Metrics
from garrison.server.procedures.runner import ProcedureRunner
from garrison.server.sensors.cache import PolicyCache
from garrison.server.settings import Settings
from garrison.server.stations.credentials import AgentAuthenticator
from garrison.server.stations.presence import PresenceTracker
from garrison.server.store.engine import Database
from garrison.server.users.throttle import AddressThrottle, LoginGuard


@dataclass
class ServerContext:
    settings: Settings
    db: Database
    presence: PresenceTracker
    agent_auth: AgentAuthenticator
    metrics: Metrics
    consumers: ConsumerRunner
    job_waiters: JobWaiters
    exports: ExportManager
    # Per node: the limits on failed password logins and refused enrollment keys.
    login_guard: LoginGuard
    enrollment_throttle: AddressThrottle
    # Runs every Lua procedure, in worker processes (the consumer, enrollment, returns,
    # dry runs).
    procedures: ProcedureRunner
    # Signed content: the keys, the serial, the cached manifests and check-in fields.
    content: ContentDelivery
    # The active hunts, so that a Getjobs learns cheaply whether it must look for one.
    hunt_watch: HuntWatch
    # Each station's effective sensor policy (the agents' GET /api/sensor-policy).
    sensor_policies: PolicyCache = field(default_factory=PolicyCache)
