"""The agent API (``/api/*``), wire-compatible with the Armadito agent.

Plain Starlette routes: this is the hot path (every agent, every minute), so handlers parse
by hand, run their unit of work in one transaction in a worker thread, and answer JSON.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from garrison.common.tokens import token_hash
from garrison.common.wire import WireValueError, as_int
from garrison.server.agentapi import hotpath, parsing
from garrison.server.agentapi.auth import AgentCredential
from garrison.server.agentapi.envelope import Envelope, parse_envelope
from garrison.server.alerts import service as alerts
from garrison.server.configs import service as configs
from garrison.server.context import ServerContext
from garrison.server.enrollment import flow
from garrison.server.errors import (
    ConflictError,
    EnrollmentRefusedError,
    ForbiddenError,
    GarrisonError,
    InvalidInputError,
    MalformedRequestError,
    UnknownStationError,
)
from garrison.server.events import emitters, ingest
from garrison.server.jobs import service as jobs
from garrison.server.options import service as options
from garrison.server.scans import service as scans
from garrison.server.states import service as states
from garrison.server.stations import service as stations
from garrison.server.stations.models import Station

Handler = Callable[[Session, int, Envelope], dict[str, Any]]
Endpoint = Callable[[Request], Awaitable[Response]]


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


MAX_WAIT_SECONDS = 60
NO_JOBS_RESPONSE = hotpath.FixedResponse(orjson.dumps({"jobs": []}), media_type="application/json")


def _wait_seconds(raw: str | None) -> float:
    if raw is None or raw == "":
        return 0.0
    try:
        seconds = float(raw)
    except ValueError:
        raise InvalidInputError("wait must be a number of seconds", field="wait") from None
    if not 0 <= seconds <= MAX_WAIT_SECONDS:
        raise InvalidInputError(f"wait must be between 0 and {MAX_WAIT_SECONDS}", field="wait")
    return seconds


def check_station(session: Session, cred: AgentCredential, uuid: str, agent_id: int) -> int:
    """The station a request acts for; refuses a request that names another agent."""
    if cred.station_id is not None:
        if uuid != cred.uuid:
            raise ForbiddenError("this uuid belongs to another agent", field="uuid")
        if agent_id not in (0, cred.station_id):
            raise ForbiddenError("this agent_id belongs to another agent", field="agent_id")
        return cred.station_id
    station = stations.by_uuid(session, uuid)
    if station is None:
        raise UnknownStationError("unknown agent uuid; run the Enrollment task first", field="uuid")
    if agent_id not in (0, station.id):
        raise ForbiddenError("agent_id does not match this uuid", field="agent_id")
    return station.id


class AgentApi:
    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self._metric_children: dict[tuple[str, int], tuple[Any, Any]] = {}

    def routes(self) -> list[tuple[str, str, Endpoint]]:
        """(method, path, endpoint) for :class:`garrison.server.agentapi.edge.AgentEdge`."""
        post = self._post_task
        return [
            ("POST", "/api/agents", self.enroll),
            ("GET", "/api/jobs", self.getjobs),
            ("POST", "/api/jobs", post("Runjobs", self._runjobs)),
            ("POST", "/api/scans", post("Scan", self._scan)),
            ("POST", "/api/alerts", post("Alerts", self._alerts)),
            ("POST", "/api/states", post("State", self._state)),
            ("POST", "/api/avconfigs", post("AVConfig", self._avconfig)),
            ("GET", "/api/avconfigs", self.desired_avconfig),
            ("POST", "/api/schedulers", post("Scheduler", self._scheduler)),
            ("GET", "/api/schedulers", self.desired_scheduler),
            ("POST", "/api/events", self.events),
        ]

    # -- plumbing -------------------------------------------------------------------------

    def _observe(self, task: str, started: float, status: int) -> None:
        # The labelled children, looked up once per (task, status): prometheus_client's
        # label lookup takes a lock and builds a tuple on every call.
        key = (task, status)
        children = self._metric_children.get(key)
        if children is None:
            metrics = self.ctx.metrics
            children = (
                metrics.agent_requests.labels(task, str(status)),
                metrics.agent_latency.labels(task),
            )
            self._metric_children[key] = children
        children[0].inc()
        children[1].observe(time.perf_counter() - started)

    async def _guard(
        self, task: str, work: Callable[[], Awaitable[Response]], started: float | None = None
    ) -> Response:
        if started is None:
            started = time.perf_counter()
        try:
            response = await work()
        except GarrisonError as exc:
            self._observe(task, started, exc.status)
            raise
        self._observe(task, started, response.status_code)
        return response

    def _post_task(self, task: str, handler: Handler) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            async def work() -> Response:
                body = await request.body()
                authorization = request.headers.get("authorization")
                address = client_address(request)
                result = await run_in_threadpool(self._run, authorization, body, address, handler)
                return json_response(result)

            return await self._guard(task, work)

        return endpoint

    def _run(
        self, authorization: str | None, body: bytes, address: str, handler: Handler
    ) -> dict[str, Any]:
        cred = self.ctx.agent_auth.authenticate(authorization)
        envelope = parse_envelope(body)
        with self.ctx.db.transaction() as session:
            station_id = check_station(session, cred, envelope.uuid, envelope.agent_id)
            result = handler(session, station_id, envelope)
        self.ctx.presence.seen(station_id, address)
        return result

    # -- enrollment -----------------------------------------------------------------------

    async def enroll(self, request: Request) -> Response:
        async def work() -> Response:
            body = await request.body()
            kind = "garrison" if request.headers.get("x-garrison-agent") else "armadito"
            result = await run_in_threadpool(self._enroll, body, client_address(request), kind)
            return json_response(result)

        return await self._guard("Enrollment", work)

    def _enroll(self, body: bytes, address: str, kind: str) -> dict[str, Any]:
        envelope = parse_envelope(body)
        key_text = parsing.enrollment_key(envelope.obj)
        identity = envelope.identity(address, kind)
        try:
            result = self._enroll_once(key_text, identity)
        except IntegrityError:
            # The same new uuid enrolling twice at once: the loser retries and finds the
            # station the winner created (a re-enrollment).
            try:
                result = self._enroll_once(key_text, identity)
            except IntegrityError:
                raise ConflictError(
                    "this station is enrolling from elsewhere at the same time; retry", field="uuid"
                ) from None
        except EnrollmentRefusedError as exc:
            self.ctx.metrics.enrollments.labels("refused").inc()
            with self.ctx.db.transaction() as session:
                emitters.authorization_failed(
                    session,
                    exc.message,
                    address,
                    stations.by_uuid(session, identity.uuid),
                    name=identity.hostname or identity.uuid,
                )
            raise
        if result.refused is not None or result.station_id is None:
            self.ctx.metrics.enrollments.labels("refused").inc()
            raise ForbiddenError(result.refused or "authorization refused", field="uuid")
        self.ctx.metrics.enrollments.labels("created" if result.created else "re-enrolled").inc()
        self.ctx.agent_auth.cache.forget_station(result.station_id)
        return {
            "agent_id": result.station_id,
            "scheduler_id": result.station_id,
            "agent_token": result.token,
        }

    def _enroll_once(self, key_text: str, identity: stations.Identity) -> flow.Enrolled:
        with self.ctx.db.transaction() as session:
            offline_after = options.get(session, "offline_after_seconds")
            return flow.enroll(
                session, key_text, identity, offline_after, self.ctx.settings.procedure_limits()
            )

    # -- Getjobs --------------------------------------------------------------------------

    async def getjobs(self, request: Request) -> Response:
        started = time.perf_counter()
        authorization = request.headers.get("authorization")
        address = client_address(request)
        quick = hotpath.agent_query(request.scope["query_string"])
        if quick is not None:
            ids, wants_wait = quick
        else:
            query = request.query_params
            ids, wants_wait = query.getlist("agent_id"), "wait" in query
        known = self._nothing_queued(authorization, ids, address)
        if known is not None and not wants_wait:
            # The hot path (every agent, every minute): a cached token, no job anywhere for
            # this station, no long-poll.  Answered on the event loop: no thread, no database.
            self._observe("Getjobs", started, 200)
            return NO_JOBS_RESPONSE

        async def work() -> Response:
            wait = _wait_seconds(request.query_params.get("wait"))
            if known is not None:
                station_id, jobs_ = known, list[dict[str, Any]]()
            else:
                station_id, jobs_ = await run_in_threadpool(
                    self._getjobs, authorization, ids, address
                )
            # Garrison extension: long-poll.  Armadito agents send no `wait` and keep polling.
            deadline = time.monotonic() + wait
            waiters = self.ctx.job_waiters
            while not jobs_ and not waiters.closing:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not await waiters.wait(station_id, remaining):
                    break
                station_id, jobs_ = await run_in_threadpool(
                    self._getjobs, authorization, ids, address
                )
            return json_response({"jobs": jobs_})

        return await self._guard("Getjobs", work, started)

    def _nothing_queued(
        self, authorization: str | None, ids: list[str], address: str
    ) -> int | None:
        """The station, when its bearer token is cached and it surely has no queued job;
        None sends the request down the full path (which also reports every error)."""
        if not authorization or authorization[:7].lower() != "bearer ":
            return None
        found = self.ctx.agent_auth.cache.get(token_hash(authorization[7:].strip()))
        if found is None:
            return None
        station_id = found[0]
        if any(value.strip() not in ("0", str(station_id)) for value in ids):
            return None
        if self.ctx.job_waiters.may_have_jobs(station_id):
            return None
        self.ctx.presence.seen(station_id, address)
        return station_id

    def _getjobs(
        self, authorization: str | None, ids: list[str], address: str
    ) -> tuple[int, list[dict[str, Any]]]:
        cred = self.ctx.agent_auth.authenticate(authorization)
        try:
            # The Armadito agent really sends agent_id twice.
            distinct = {as_int(v, "agent_id") for v in ids}
        except WireValueError as exc:
            raise InvalidInputError(str(exc), field="agent_id") from None
        if len(distinct) > 1:
            raise MalformedRequestError(
                "agent_id is given twice with different values", field="agent_id"
            )
        agent_id = distinct.pop() if distinct else 0
        if cred.station_id is not None:
            if agent_id not in (0, cred.station_id):
                raise ForbiddenError("this agent_id belongs to another agent", field="agent_id")
            station_id = cred.station_id
        else:
            if agent_id <= 0:
                raise InvalidInputError("agent_id is required", field="agent_id")
            with self.ctx.db.reading() as session:
                if session.get(Station, agent_id) is None:
                    raise UnknownStationError(
                        f"unknown agent {agent_id}; enroll first", field="agent_id"
                    )
            station_id = agent_id
        self.ctx.presence.seen(station_id, address)
        waiters = self.ctx.job_waiters
        if not waiters.may_have_jobs(station_id):
            # As on the hot path: this node knows of every queued job (see JobWaiters).
            return station_id, []
        version = waiters.version(station_id)
        # Most check-ins find nothing: answer those from a read-only transaction.
        with self.ctx.db.reading() as session:
            if not jobs.has_queued(session, station_id):
                waiters.nothing_queued(station_id, version)
                return station_id, []
        with self.ctx.db.transaction() as session:
            limit = options.get(session, "getjobs_limit")
            return station_id, jobs.fetch_for_agent(session, station_id, limit)

    # -- task handlers (run inside the request's transaction) -----------------------------

    def _runjobs(self, session: Session, station_id: int, env: Envelope) -> dict[str, Any]:
        result = parsing.job_result(env.obj)
        target = jobs.report(session, station_id, result)
        station = stations.get(session, station_id)
        job = jobs.get(session, target.job_id)
        emitters.task_executed(
            session,
            station,
            job.id,
            job.type,
            target.status == "successful",
            target.message or "",
            target.end_time,
        )
        if target.end_time is not None:
            # The agent reports the end time right after the job ends: its clock is visible.
            emitters.datetime_error(
                session,
                station,
                target.end_time,
                options.get(session, "datetime_valid_delta_seconds"),
            )
        return {"status": "ok", "job_id": target.job_id, "job_status": target.status}

    @staticmethod
    def _scan(session: Session, station_id: int, env: Envelope) -> dict[str, Any]:
        report = parsing.scan_report(env.obj)
        scan, completed = scans.record(session, station_id, report)
        if completed:
            done = scans.file_actions(session, scan, report)
            emitters.scan_statistics(
                session,
                stations.get(session, station_id),
                scan.scanned_count,
                scan.malware_count,
                scan.suspicious_count,
                scan.duration_seconds,
                moved=done.quarantined,
                deleted=done.deleted,
            )
        return {"status": "ok", "scan_id": scan.id}

    def _alerts(self, session: Session, station_id: int, env: Envelope) -> dict[str, Any]:
        job_id, reports = parsing.alerts(env.obj)
        result = alerts.ingest(session, station_id, env.antivirus_name, reports, job_id)
        if result.new:
            threats = []
            for report, detected in result.new:
                threats.append(
                    emitters.Threat(
                        report.threat_name,
                        report.filepath,
                        report.action,
                        detected,
                        report.sha256,
                    )
                )
            emitters.threats_detected(session, stations.get(session, station_id), threats)
        self.ctx.metrics.alerts_stored.inc(result.stored)
        self.ctx.metrics.alerts_duplicate.inc(result.duplicates)
        return {"status": "ok", "stored": result.stored, "duplicates": result.duplicates}

    @staticmethod
    def _state(session: Session, station_id: int, env: Envelope) -> dict[str, Any]:
        status, updated, modules, avdetails = parsing.state(env.obj)
        states.record(session, station_id, status, updated, modules, avdetails)
        station = stations.get(session, station_id)
        emitters.state_reported(session, station, modules, avdetails)
        if env.antivirus_name:
            station.antivirus_name = env.antivirus_name
        if env.antivirus_version:
            station.antivirus_version = env.antivirus_version
        return {"status": "ok"}

    @staticmethod
    def _avconfig(session: Session, station_id: int, env: Envelope) -> dict[str, Any]:
        count = configs.report(session, station_id, "avconfig", parsing.avconfig(env.obj))
        return {"status": "ok", "differences": count}

    @staticmethod
    def _scheduler(session: Session, station_id: int, env: Envelope) -> dict[str, Any]:
        name, pairs = parsing.scheduler(env.obj)
        count = configs.report(session, station_id, "scheduler", pairs, name=name)
        return {"status": "ok", "differences": count}

    # -- telemetry and sensor events (Garrison extension) ----------------------------------

    async def events(self, request: Request) -> Response:
        async def work() -> Response:
            body = await request.body()
            headers = request.headers
            result = await run_in_threadpool(
                self._events,
                headers.get("authorization"),
                body,
                headers.get("content-encoding"),
                headers.get("content-type"),
                client_address(request),
            )
            return json_response(result)

        return await self._guard("Events", work)

    def _events(
        self,
        authorization: str | None,
        body: bytes,
        encoding: str | None,
        content_type: str | None,
        address: str,
    ) -> dict[str, Any]:
        cred = self.ctx.agent_auth.authenticate(authorization)
        if cred.station_id is None:
            raise ForbiddenError(
                "sending events needs a station's own credential (its agent token)"
            )
        items = ingest.split_items(
            ingest.decompress(body, encoding, self.ctx.settings.max_body_bytes), content_type
        )
        with self.ctx.db.transaction() as session:
            station = stations.get(session, cred.station_id)
            results = ingest.ingest(session, station, address, items)
        if not ingest.says_shutting_down(results):  # its goodbye is not a check-in
            self.ctx.presence.seen(cred.station_id, address)
        counts = {"stored": 0, "duplicate": 0, "refused": 0}
        for r in results:
            counts[r.status] += 1
        self.ctx.metrics.events_ingested.labels("stored").inc(counts["stored"])
        self.ctx.metrics.events_ingested.labels("duplicate").inc(counts["duplicate"])
        self.ctx.metrics.events_ingested.labels("refused").inc(counts["refused"])
        return {
            "stored": counts["stored"],
            "duplicates": counts["duplicate"],
            "refused": counts["refused"],
            "results": [
                {
                    "index": r.index,
                    "status": r.status,
                    **({"seq": r.seq} if r.seq else {}),
                    **({"error": r.error} if r.error else {}),
                }
                for r in results
            ],
        }

    # -- configuration pushed by the server (GET) -----------------------------------------

    async def desired_avconfig(self, request: Request) -> Response:
        pairs = await self._desired(request, "avconfig")
        return json_response({"avconfig": pairs})

    async def desired_scheduler(self, request: Request) -> Response:
        pairs = await self._desired(request, "scheduler")
        return json_response({"name": "Cron", "confdetails": pairs})

    async def _desired(self, request: Request, kind: str) -> list[dict[str, str]]:
        authorization = request.headers.get("authorization")

        def read() -> list[dict[str, str]]:
            self.ctx.agent_auth.authenticate(authorization)
            with self.ctx.db.reading() as session:
                return [{"attr": a, "value": v} for a, v in configs.desired(session, kind).items()]

        return await run_in_threadpool(read)
