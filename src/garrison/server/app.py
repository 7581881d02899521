"""``create_app(settings)``: the only place that wires Garrison's parts together."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import time
from collections.abc import AsyncIterator, Callable

import structlog
from fastapi import APIRouter, Depends, FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import Message, Receive, Scope, Send

from garrison import __version__
from garrison.server import docs_page, errors_http, logs
from garrison.server.adminapi import (
    agent_packages,
    alerts,
    auth_routes,
    blocklist,
    configs,
    content,
    devicerules,
    events,
    export_targets,
    files,
    hunts,
    inputs,
    jobs,
    keys,
    procedures,
    sensors,
    stations,
    tamper,
    users,
)
from garrison.server.adminapi.schemas import Health
from garrison.server.agentapi.edge import AgentEdge
from garrison.server.agentapi.routes import AgentApi
from garrison.server.agentapi.tls import TlsRoutes
from garrison.server.console.routes import routes as console_routes
from garrison.server.content.delivery import ContentDelivery
from garrison.server.content.signing import KeyRing
from garrison.server.context import ServerContext
from garrison.server.events import retention
from garrison.server.events.consumers import ConsumerRunner
from garrison.server.export.consumer import ExportManager
from garrison.server.export.policy import ExportPolicy
from garrison.server.files import actions as file_actions
from garrison.server.hunts import actions as hunt_actions
from garrison.server.hunts.watch import HuntWatch
from garrison.server.jobs.waiters import JobWaiters
from garrison.server.metrics import Metrics
from garrison.server.middleware import (
    BodyLimit,
    Networks,
    is_agent_path,
    normalize_path,
    resolve_client,
)
from garrison.server.options import service as options
from garrison.server.procedures.dispatcher import ProcedureConsumer
from garrison.server.procedures.runner import ProcedureRunner
from garrison.server.procedures.sandbox import Limits
from garrison.server.procedures.workers import WorkerPool
from garrison.server.sensors import reports as sensor_reports
from garrison.server.settings import Settings
from garrison.server.siblings import SiblingCounter
from garrison.server.stations import service as station_service
from garrison.server.stations.credentials import AgentAuthenticator
from garrison.server.stations.presence import PresenceTracker
from garrison.server.store.effects import Signal
from garrison.server.store.engine import Database
from garrison.server.users.throttle import AddressThrottle, LoginGuard

log = structlog.get_logger("garrison.server")
ADMIN_PREFIX = "/admin/v1"


def _station_gauges(ctx: ServerContext) -> dict[str, tuple[str, float]]:
    with ctx.db.reading() as session:
        total, online = station_service.counts(
            session, options.get(session, "offline_after_seconds")
        )
    return {
        "garrison_stations": ("Enrolled stations", float(total)),
        "garrison_stations_online": ("Stations that checked in within the timeout", float(online)),
    }


async def _every(seconds: float, what: str, work: Callable[[], object]) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await run_in_threadpool(work)
        except Exception:
            log.exception("periodic work failed; will retry", work=what)


class GarrisonApp(FastAPI):
    """The admin API (FastAPI) with the agent API's edge in front of it: ``/api/*`` requests
    go straight to ``agent_edge``, everything else (and the lifespan) to FastAPI.  Every HTTP
    request is logged here or, for the agent API, by the edge."""

    agent_edge: AgentEdge | None = None
    request_log: logs.RequestLog | None = None
    trusted_proxies: Networks = ()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = resolve_client(normalize_path(scope), self.trusted_proxies)
            if self.agent_edge is not None and is_agent_path(scope["path"]):
                scope["app"] = self
                await self.agent_edge(scope, receive, send)
                return
            if self.request_log is not None and self.request_log.enabled:
                await self._logged(self.request_log, scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    async def _logged(
        self, request_log: logs.RequestLog, scope: Scope, receive: Receive, send: Send
    ) -> None:
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before it answers

        async def watching_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await super().__call__(scope, receive, watching_send)
        finally:
            request_log.write(scope["method"], scope["path"], status, started, None)


def health(request: Request) -> Health:
    ctx: ServerContext = request.app.state.ctx
    ctx.db.ping()
    return Health(status="ok", version=__version__, database=ctx.db.backend)


@functools.cache
def _admin_routes() -> tuple[BaseRoute, ...]:
    """The admin API's routes, built once per process: FastAPI analyses every route's
    parameters and response models when a router is included (most of an app's build
    time), and the routes hold nothing of one app (handlers find the server's context in
    ``request.app.state``), so every app of the process shares them."""
    # One check before every admin route: no NUL, no integer beyond 64 bits (adminapi/inputs).
    admin = APIRouter(prefix=ADMIN_PREFIX, dependencies=[Depends(inputs.storable_input)])
    admin.add_api_route(
        "/health",
        health,
        methods=["GET"],
        response_model=Health,
        tags=["health"],
        summary="Public liveness and database check",
    )
    for module in (
        auth_routes,
        keys,
        stations,
        jobs,
        alerts,
        configs,
        users,
        events,
        procedures,
        export_targets,
        sensors,
        content,
        files,
        hunts,
        blocklist,
        devicerules,
        tamper,
        agent_packages,
    ):
        admin.include_router(module.router)
    built = APIRouter()
    built.include_router(admin)
    return tuple(built.routes)


def create_app(settings: Settings, db: Database | None = None) -> GarrisonApp:
    """Build the ASGI app.  The database must already be migrated (see ``garrison serve``)."""
    if not structlog.is_configured():
        # JSON lines, as `garrison serve` sets up (the default pretty renderer is slow).
        logs.configure_structlog(
            settings.log_level, human=False, cache=False, flush_seconds=settings.log_flush_seconds
        )
    database = db or Database(
        settings.resolved_database_url(),
        settings.sqlite_synchronous,
        settings.database_pool_timeout,
    )
    metrics = Metrics()
    runner = ConsumerRunner(database)
    limits = Limits.from_settings(settings)
    # Workers start when first needed; the lifespan's end kills them.
    procedure_runner = ProcedureRunner(
        database, WorkerPool(settings.procedure_workers, limits.memory_bytes), limits
    )
    ctx = ServerContext(
        settings=settings,
        db=database,
        presence=PresenceTracker(procedure_runner),
        agent_auth=AgentAuthenticator(settings, database),
        metrics=metrics,
        consumers=runner,
        job_waiters=JobWaiters(
            database,
            interval=settings.job_watch_seconds,
            siblings=SiblingCounter(settings.data_dir / "run" / "jobs.counter"),
        ),
        # Export targets are consumers of the same runner, added as targets appear.
        exports=ExportManager(database, runner, metrics, ExportPolicy.from_settings(settings)),
        login_guard=LoginGuard.from_settings(settings),
        enrollment_throttle=AddressThrottle(
            settings.auth_address_failures, settings.auth_address_window_seconds
        ),
        procedures=procedure_runner,
        content=ContentDelivery(
            database,
            KeyRing.load_or_create(settings.resolved_content_key_dir()),
            watch_seconds=settings.content_watch_seconds,
            preload=settings.token_cache_preload,
        ),
        hunt_watch=HuntWatch(
            database, siblings=SiblingCounter(settings.data_dir / "run" / "hunts.counter")
        ),
    )
    ctx.consumers.add(ProcedureConsumer(procedure_runner, settings.procedure_disable_after))
    database.hooks.subscribe(Signal.EVENTS_APPENDED, lambda _ids: ctx.consumers.wake())
    database.hooks.subscribe(Signal.JOBS_QUEUED, ctx.job_waiters.queued)
    database.hooks.subscribe(Signal.STATION_CREDENTIALS_REVOKED, ctx.agent_auth.cache.forget)
    database.hooks.subscribe(Signal.STATION_CREDENTIALS_REVOKED, ctx.content.forget)
    database.hooks.subscribe(Signal.CONTENT_CHANGED, ctx.content.changed)
    database.hooks.subscribe(Signal.HUNTS_CHANGED, ctx.hunt_watch.changed)
    database.hooks.subscribe(Signal.GROUPS_CHANGED, ctx.hunt_watch.groups_changed)
    for changed in (
        Signal.SENSOR_POLICY_CHANGED,
        Signal.GROUPS_CHANGED,
        Signal.STATION_CREDENTIALS_REVOKED,
    ):
        database.hooks.subscribe(changed, ctx.sensor_policies.forget)
    metrics.add_collector(lambda: _station_gauges(ctx))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        s = settings
        tasks = [
            asyncio.create_task(
                _every(s.last_seen_flush_seconds, "presence", lambda: ctx.presence.flush(ctx.db))
            ),
            asyncio.create_task(
                _every(
                    s.disconnect_sweep_seconds,
                    "disconnect sweep",
                    lambda: ctx.presence.sweep(ctx.db),
                )
            ),
            asyncio.create_task(ctx.job_waiters.run()),
            asyncio.create_task(
                _every(s.token_watch_seconds, "token revocations", ctx.agent_auth.watch_revocations)
            ),
            asyncio.create_task(ctx.hunt_watch.run()),
            asyncio.create_task(
                _every(
                    s.event_retention_interval_seconds,
                    "hunt expiry and file retention",
                    lambda: (hunt_actions.close_expired(ctx.db), file_actions.expire(ctx.db)),
                )
            ),
            asyncio.create_task(ctx.content.run()),
            asyncio.create_task(_every(3600.0, "content keys", ctx.content.forget_expired_keys)),
            asyncio.create_task(
                _every(
                    s.sensor_policy_watch_seconds,
                    "sensor policy markers",
                    lambda: sensor_reports.watch_markers(ctx.db, ctx.sensor_policies),
                )
            ),
            asyncio.create_task(
                _every(
                    s.event_retention_interval_seconds,
                    "retention",
                    lambda: retention.purge_expired(ctx.db),
                )
            ),
        ]
        # Everything built at start lives as long as the process: keep it out of the
        # collector's full passes, which otherwise stall busy servers.
        gc.freeze()
        try:
            await run_in_threadpool(ctx.content.initialise_once)
        except Exception:
            # Retried at the first content request; the rest of the server works meanwhile.
            log.exception("could not initialise signed content")
        ctx.consumers.start()
        ctx.exports.start()
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            # Shutdown: the last check-ins are written, consumers finish their batch.
            await run_in_threadpool(ctx.presence.flush, ctx.db)
            # A procedure still running is cut short (its event runs again at the next
            # start), so that stopping waits for no budget.
            ctx.procedures.close()
            await run_in_threadpool(ctx.exports.stop)
            await run_in_threadpool(ctx.consumers.stop)
            for counter in (ctx.job_waiters.siblings, ctx.hunt_watch.siblings):
                if counter is not None:
                    counter.close()
            # Every request has been answered: its buffered log line goes out now.
            logs.flush()

    app = GarrisonApp(
        title="Garrison admin API",
        version=__version__,
        description="Central management of endpoint-security agents. Authenticate with "
        "`Authorization: Bearer <token>` (POST /admin/v1/auth/login, or the admin.token file).",
        openapi_url=f"{ADMIN_PREFIX}/openapi.json",
        docs_url=None,  # docs_page serves it, from the package's own assets
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    app.trusted_proxies = settings.trusted_proxy_networks()
    errors_http.install(app)
    docs_page.install(app, f"{ADMIN_PREFIX}/docs", f"{ADMIN_PREFIX}/openapi.json")

    app.router.routes.extend(_admin_routes())
    # The web console (issue 18): its pages at /, its assets under /console/static.
    app.router.routes.extend(console_routes())

    async def metrics_endpoint(request: Request) -> Response:
        metrics.presence_flush.set(ctx.presence.pending_count())
        body = await run_in_threadpool(metrics.render)
        return Response(body, media_type="text/plain; version=0.0.4")

    app.add_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)
    # The agent API is the hot path: it never enters FastAPI's stack.
    app.request_log = logs.RequestLog(settings.log_level)

    app.agent_edge = AgentEdge(
        AgentApi(ctx).routes() + TlsRoutes(ctx).routes(),
        ctx.agent_auth.challenge,
        settings.max_body_bytes,
        app.request_log,
    )
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    return app
