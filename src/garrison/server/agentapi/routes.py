"""The agent API (``/api/*``), wire-compatible with the Armadito agent.

Plain Starlette routes: this is the hot path (every agent, every minute).  Each handler is
an adapter: parse the request (``envelope``, ``parsing``, ``bodies``), call the report's use
case in a worker thread (``<slice>/reports.py``: one transaction, its events and after-commit
effects), and render the result (``render``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import structlog
from starlette.requests import Request
from starlette.responses import Response

from garrison.common.tokens import token_hash
from garrison.common.vocabulary import AgentKind
from garrison.common.wire import WireValueError, as_int
from garrison.server import errors_http
from garrison.server.admission import Admission
from garrison.server.agentapi import bodies, hotpath, parsing, render, uploads
from garrison.server.agentapi.envelope import Envelope, parse_envelope
from garrison.server.alerts import reports as alert_reports
from garrison.server.configs import reports as config_reports
from garrison.server.content import packages, uninstall
from garrison.server.content.delivery import Built, FileAnswer
from garrison.server.context import ServerContext
from garrison.server.enrollment import reports as enrollment_reports
from garrison.server.errors import (
    EnrollmentRefusedError,
    ForbiddenError,
    GarrisonError,
    HashMismatchError,
    InvalidInputError,
    MalformedRequestError,
    RateLimitedError,
)
from garrison.server.events import reports as event_reports
from garrison.server.events.batcher import IngestBatcher
from garrison.server.files import reports as file_reports
from garrison.server.jobs import reports as job_reports
from garrison.server.scans import reports as scan_reports
from garrison.server.sensors import reports as sensor_reports
from garrison.server.states import reports as state_reports
from garrison.server.stations.credentials import AgentCredential, Caller

log = structlog.get_logger("garrison.server")

# A report's adapter, in a worker thread: (the station reported for, the response body).
Handler = Callable[[Caller, Envelope], tuple[int, dict[str, Any]]]
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


class AgentApi:
    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        # Every database read or write of an agent request goes through it.
        self.admission = Admission(ctx.settings.max_pending_requests)
        self.events_writer = IngestBatcher(
            ctx.db,
            max_pending_events=ctx.settings.events_max_pending,
            max_wait_seconds=ctx.settings.events_max_wait_seconds,
        )
        self._metric_children: dict[tuple[str, int], tuple[Any, Any]] = {}
        # station -> (content serial, its no-jobs Getjobs answer with the content field)
        self._fixed: dict[int, tuple[int, hotpath.FixedResponse]] = {}

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
            ("GET", "/api/sensor-policy", self.sensor_policy),
            ("GET", "/api/content/manifest", self.content_manifest),
            ("GET", "/api/content/files/{sha256}", self.content_file),
            ("PUT", "/api/files/{sha256}", self.upload_file),
            ("GET", "/api/agent-packages/{id}", self.agent_package),
            ("GET", "/api/agent-package-files/{id}", self.agent_package),
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
            self._observe(task, started, errors_http.status_of(exc))
            raise
        self._observe(task, started, response.status_code)
        return response

    def _post_task(self, task: str, handler: Handler) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            async def work() -> Response:
                body = await request.body()
                authorization = request.headers.get("authorization")
                address = client_address(request)
                station_id, result = await self.admission.run(
                    self._run, authorization, body, address, handler
                )
                request.scope[hotpath.STATION_KEY] = station_id  # for the request log
                return json_response(result)

            return await self._guard(task, work)

        return endpoint

    def _run(
        self, authorization: str | None, body: bytes, address: str, handler: Handler
    ) -> tuple[int, dict[str, Any]]:
        credential = self.ctx.agent_auth.authenticate(authorization, address)
        envelope = parse_envelope(body)
        caller = Caller(credential, envelope.uuid, envelope.agent_id)
        station_id, result = handler(caller, envelope)
        self.ctx.presence.seen(station_id, address)
        return station_id, result

    # -- enrollment -----------------------------------------------------------------------

    async def enroll(self, request: Request) -> Response:
        async def work() -> Response:
            body = await request.body()
            kind = "garrison" if request.headers.get("x-garrison-agent") else "armadito"
            station_id, result = await self.admission.run(
                self._enroll, body, client_address(request), kind
            )
            request.scope[hotpath.STATION_KEY] = station_id
            return json_response(result)

        return await self._guard("Enrollment", work)

    def _enroll(self, body: bytes, address: str, kind: str) -> tuple[int, dict[str, Any]]:
        envelope = parse_envelope(body)
        request = enrollment_reports.EnrollmentRequest(
            parsing.enrollment_key(envelope.obj),
            envelope.identity(address, kind),
            parsing.enrollment_installation(envelope.obj),
        )
        enrollments = self.ctx.metrics.enrollments
        # Refused keys are limited per client address (on this node), like failed logins:
        # past the limit the key is not even checked.
        throttle = self.ctx.enrollment_throttle
        wait = throttle.retry_after(address)
        if wait is not None:
            enrollments.labels("throttled").inc()
            raise RateLimitedError(
                "too many refused enrollment keys from this address; try again later",
                retry_after=wait,
            )
        try:
            enrolled = enrollment_reports.enroll(self.ctx.db, self.ctx.procedures, request)
        except EnrollmentRefusedError:
            throttle.failed(address)
            enrollments.labels("refused").inc()
            raise
        except ForbiddenError:
            enrollments.labels("refused").inc()
            raise
        enrollments.labels("created" if enrolled.created else "re-enrolled").inc()
        content = self.ctx.content.enrollment_fields() if kind == AgentKind.GARRISON else None
        return enrolled.station_id, render.enrollment(enrolled, content)

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
        if known is not None:
            request.scope[hotpath.STATION_KEY] = known  # for the request log
        if known is not None and not wants_wait:
            fixed = self._fixed_answer(known)
            if fixed is not None:
                # The hot path (every agent, every minute): a cached token, no job anywhere
                # for this station, no long-poll, its content field cached.  Answered on the
                # event loop: no thread, no database.
                self._observe("Getjobs", started, 200)
                return fixed

        async def work() -> Response:
            wait = _wait_seconds(request.query_params.get("wait"))
            if known is not None:
                fetched = job_reports.JobsFetched(known, [])
            else:
                fetched = await self.admission.run(self._getjobs, authorization, ids, address)
                request.scope[hotpath.STATION_KEY] = fetched.station_id
            # Garrison extension: long-poll.  Armadito agents send no `wait` and keep polling.
            deadline = time.monotonic() + wait
            waiters = self.ctx.job_waiters
            while not fetched.jobs and not waiters.closing:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not await waiters.wait(fetched.station_id, remaining):
                    break
                fetched = await self.admission.run(self._getjobs, authorization, ids, address)
            known_content, content = self.ctx.content.cached_field(fetched.station_id)
            if not known_content:
                content = await self.admission.run(self._content_field, fetched.station_id)
            return json_response(render.jobs(fetched.jobs, content))

        return await self._guard("Getjobs", work, started)

    def _fixed_answer(self, station_id: int) -> Response | None:
        """The no-jobs answer of a station whose content field is cached; None otherwise."""
        known, content = self.ctx.content.cached_field(station_id)
        if not known:
            return None
        if content is None:
            return NO_JOBS_RESPONSE
        serial = content["serial"]
        entry = self._fixed.get(station_id)
        if entry is None or entry[0] != serial:
            body = orjson.dumps({"jobs": [], "content": content})
            entry = (serial, hotpath.FixedResponse(body, media_type="application/json"))
            self._fixed[station_id] = entry
        return entry[1]

    def _content_field(self, station_id: int) -> dict[str, Any] | None:
        """The Getjobs content field; a failure to build it costs the field, not the jobs."""
        try:
            return self.ctx.content.field(station_id)
        except GarrisonError as exc:
            log.warning("no content field for this check-in", station=station_id, error=str(exc))
            return None

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
        if self.ctx.hunt_watch.needs_check(station_id):
            return None
        self.ctx.presence.seen(station_id, address)
        return station_id

    def _getjobs(
        self, authorization: str | None, ids: list[str], address: str
    ) -> job_reports.JobsFetched:
        credential = self.ctx.agent_auth.authenticate(authorization, address)
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
        fetched = job_reports.fetch(
            self.ctx.db, self.ctx.job_waiters, credential, agent_id, self.ctx.hunt_watch
        )
        fetched = uninstall.with_tokens(self.ctx.content, fetched)
        self.ctx.presence.seen(fetched.station_id, address)
        return fetched

    # -- reports (each: parse the task object, run its use case, render) ------------------

    def _runjobs(self, caller: Caller, env: Envelope) -> tuple[int, dict[str, Any]]:
        done = job_reports.report(self.ctx.db, caller, parsing.job_result(env.obj))
        return done.station_id, render.job_reported(done)

    def _scan(self, caller: Caller, env: Envelope) -> tuple[int, dict[str, Any]]:
        recorded = scan_reports.record(self.ctx.db, caller, parsing.scan_report(env.obj))
        return recorded.station_id, render.scan_recorded(recorded)

    def _alerts(self, caller: Caller, env: Envelope) -> tuple[int, dict[str, Any]]:
        job_id, alerts = parsing.alerts(env.obj)
        report = alert_reports.AlertsReported(env.antivirus_name, job_id, alerts)
        recorded = alert_reports.record(self.ctx.db, caller, report)
        self.ctx.metrics.alerts_stored.inc(recorded.stored)
        self.ctx.metrics.alerts_duplicate.inc(recorded.duplicates)
        return recorded.station_id, render.alerts_recorded(recorded)

    def _state(self, caller: Caller, env: Envelope) -> tuple[int, dict[str, Any]]:
        status, updated, modules, avdetails = parsing.state(env.obj)
        report = state_reports.StateReport(
            status,
            updated,
            modules,
            avdetails,
            env.antivirus_name,
            env.antivirus_version,
            parsing.content_serial(env.obj),
            parsing.location(env.obj),
            env.agent_version,
        )
        return state_reports.record(self.ctx.db, caller, report), render.OK

    def _avconfig(self, caller: Caller, env: Envelope) -> tuple[int, dict[str, Any]]:
        pairs = parsing.avconfig(env.obj)
        recorded = config_reports.record(self.ctx.db, caller, "avconfig", pairs)
        return recorded.station_id, render.config_recorded(recorded)

    def _scheduler(self, caller: Caller, env: Envelope) -> tuple[int, dict[str, Any]]:
        name, pairs = parsing.scheduler(env.obj)
        recorded = config_reports.record(self.ctx.db, caller, "scheduler", pairs, name=name)
        return recorded.station_id, render.config_recorded(recorded)

    # -- telemetry and sensor events (Garrison extension) ----------------------------------

    async def events(self, request: Request) -> Response:
        async def work() -> Response:
            body = await request.body()
            headers = request.headers
            address = client_address(request)
            credential, items = await self.admission.run(
                self._events_read,
                headers.get("authorization"),
                body,
                headers.get("content-encoding"),
                headers.get("content-type"),
                address,
            )
            # Written with the other requests of the moment, waiting on the event loop.
            ingested = await self.events_writer.ingest(credential, address, items)
            request.scope[hotpath.STATION_KEY] = ingested.station_id
            return json_response(self._events_done(ingested, address))

        return await self._guard("Events", work)

    def _events_read(
        self,
        authorization: str | None,
        body: bytes,
        encoding: str | None,
        content_type: str | None,
        address: str,
    ) -> tuple[AgentCredential, list[Any]]:
        credential = self.ctx.agent_auth.authenticate(authorization, address)
        if credential.station_id is None:
            # Refused before the body is even inflated.
            raise ForbiddenError(
                "sending events needs a station's own credential (its agent token)"
            )
        inflated = bodies.decompress(body, encoding, self.ctx.settings.max_body_bytes)
        return credential, bodies.split_items(inflated, content_type)

    def _events_done(self, ingested: event_reports.EventsIngested, address: str) -> dict[str, Any]:
        if not ingested.shutting_down:  # its goodbye is not a check-in
            self.ctx.presence.seen(ingested.station_id, address)
        counter = self.ctx.metrics.events_ingested
        counter.labels("stored").inc(ingested.stored)
        counter.labels("duplicate").inc(ingested.duplicates)
        counter.labels("refused").inc(ingested.refused)
        return render.events_ingested(ingested)

    # -- configuration pushed by the server (GET) -----------------------------------------

    async def desired_avconfig(self, request: Request) -> Response:
        pairs = await self._desired(request, "avconfig")
        return json_response({"avconfig": pairs})

    async def desired_scheduler(self, request: Request) -> Response:
        pairs = await self._desired(request, "scheduler")
        return json_response({"name": "Cron", "confdetails": pairs})

    async def _desired(self, request: Request, kind: str) -> list[dict[str, str]]:
        authorization = request.headers.get("authorization")
        address = client_address(request)

        def read() -> list[dict[str, str]]:
            credential = self.ctx.agent_auth.authenticate(authorization, address)
            if credential.station_id is not None:
                request.scope[hotpath.STATION_KEY] = credential.station_id
            return render.desired_pairs(config_reports.desired(self.ctx.db, kind))

        return await self.admission.run(read)

    # -- signed content (Garrison agents only) ---------------------------------------------

    async def content_manifest(self, request: Request) -> Response:
        """The station's signed manifest envelope; ETag "<manifest_sha256>" (304 on match)."""

        async def work() -> Response:
            authorization = request.headers.get("authorization")
            address = client_address(request)

            def read() -> tuple[int, Built]:
                credential = self.ctx.agent_auth.authenticate(authorization, address)
                return self.ctx.content.envelope(credential)

            station_id, built = await self.admission.run(read)
            request.scope[hotpath.STATION_KEY] = station_id
            etag = f'"{built.sha256}"'
            headers = {"ETag": etag, "Cache-Control": "no-cache"}
            if _etag_matches(request.headers.get("if-none-match"), etag):
                return Response(status_code=304, headers=headers)
            return Response(built.envelope, media_type="application/json", headers=headers)

        return await self._guard("ContentManifest", work)

    async def content_file(self, request: Request) -> Response:
        """A file of the station's manifests (Range: bytes=N- resumes), or a line delta from
        ``?base=<sha256>`` (JSON) when one is possible."""

        async def work() -> Response:
            authorization = request.headers.get("authorization")
            address = client_address(request)
            sha256 = _sha256(request.url.path.rsplit("/", 1)[-1], "sha256")
            raw_base = request.query_params.get("base")
            base = _sha256(raw_base, "base") if raw_base else None

            def read() -> tuple[int, FileAnswer]:
                credential = self.ctx.agent_auth.authenticate(authorization, address)
                return self.ctx.content.file(credential, sha256, base)

            station_id, answer = await self.admission.run(read)
            request.scope[hotpath.STATION_KEY] = station_id
            headers = {"ETag": f'"{sha256}"', "Cache-Control": "no-cache"}
            if answer.delta:
                return Response(answer.data, media_type="application/json", headers=headers)
            return _range_response(answer.data, request.headers.get("range"), headers)

        return await self._guard("ContentFile", work)

    # -- agent packages for UpgradeAgent (Garrison agents only) -----------------------------

    async def agent_package(self, request: Request) -> Response:
        """``/api/agent-packages/{id}``: its signed statement (JSON);
        ``/api/agent-package-files/{id}``: its bytes (Range: bytes=N- resumes)."""

        async def work() -> Response:
            authorization = request.headers.get("authorization")
            address = client_address(request)
            prefix, _, raw_id = request.url.path.rpartition("/")
            if not raw_id.isdigit() or not 0 < len(raw_id) <= 12:
                raise InvalidInputError("the package id must be a number", field="id")
            wanted = int(raw_id)
            statement = prefix.endswith("/agent-packages")

            def read() -> tuple[int, bytes]:
                credential = self.ctx.agent_auth.authenticate(authorization, address)
                if statement:
                    return packages.descriptor(self.ctx.content, credential, wanted)
                return packages.package_bytes(self.ctx.content, credential, wanted)

            station_id, data = await self.admission.run(read)
            request.scope[hotpath.STATION_KEY] = station_id
            if statement:
                return Response(data, media_type="application/json")
            return _range_response(data, request.headers.get("range"), {})

        return await self._guard("AgentPackage", work)

    # -- the sensor policy (Garrison agents only) -------------------------------------------

    async def sensor_policy(self, request: Request) -> Response:
        """The station's effective sensor policy, with its version as a strong ETag: an agent
        that sends it back in If-None-Match gets an empty 304 while the policy is unchanged."""

        async def work() -> Response:
            authorization = request.headers.get("authorization")
            address = client_address(request)

            def read() -> sensor_reports.AgentPolicy:
                credential = self.ctx.agent_auth.authenticate(authorization, address)
                return sensor_reports.policy_for_agent(
                    self.ctx.db, credential, self.ctx.sensor_policies
                )

            found = await self.admission.run(read)
            request.scope[hotpath.STATION_KEY] = found.station_id
            etag = f'"{found.version}"'
            headers = {"ETag": etag, "Cache-Control": "no-cache"}
            if _etag_matches(request.headers.get("if-none-match"), etag):
                return Response(status_code=304, headers=headers)
            body = {"version": found.version, "settings": found.settings}
            return Response(orjson.dumps(body), media_type="application/json", headers=headers)

        return await self._guard("SensorPolicy", work)

    # -- collected files (Garrison agents only; RESPONSE-WIRE.md) --------------------------

    async def upload_file(self, request: Request) -> Response:
        """``PUT /api/files/<sha256>?job_id=N`` (or ``?alert=<uuid>``): the raw bytes, read
        within the station's cap and hashed as they come; 201, or 200 when already stored."""

        async def work() -> Response:
            authorization = request.headers.get("authorization")
            address = client_address(request)
            sha256 = _sha256(request.url.path.rsplit("/", 1)[-1].lower(), "sha256")
            query = request.query_params
            raw_job = query.get("job_id")
            try:
                job_id = as_int(raw_job, "job_id") if raw_job is not None else None
            except WireValueError as exc:
                raise InvalidInputError(str(exc), field="job_id") from None

            def check() -> file_reports.UploadPlan:
                credential = self.ctx.agent_auth.authenticate(authorization, address)
                return file_reports.plan(
                    self.ctx.db, credential, sha256, job_id, query.get("alert")
                )

            plan = await self.admission.run(check)
            request.scope[hotpath.STATION_KEY] = plan.station_id
            announced = request.headers.get("content-length")
            if announced is None or not announced.isdigit():
                raise InvalidInputError(
                    "Content-Length must give the file's size", field="Content-Length"
                )
            size = int(announced)
            plan.refuse(size)
            with uploads.Spool() as spool:
                async for chunk in request.stream():
                    spool.write(chunk, plan.limit)
                if spool.size != size:
                    raise InvalidInputError(
                        f"the body held {spool.size} bytes, not the {size} announced",
                        field="Content-Length",
                    )
                if spool.sha256 != sha256:
                    raise HashMismatchError(
                        f"the bytes hash to {spool.sha256}, not {sha256}", field="sha256"
                    )
                done = await self.admission.run(
                    file_reports.finish, self.ctx.db, plan, sha256, size, spool.chunks()
                )
            self.ctx.presence.seen(plan.station_id, address)
            body = {"status": "ok", "sha256": done.sha256, "size": done.size}
            return json_response(body, 201 if done.created else 200)

        return await self._guard("UploadFile", work)


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    return any(tag.strip() in (etag, f"W/{etag}", "*") for tag in header.split(","))


# -- signed content (Garrison agents only; CONTENT-WIRE.md) ------------------------------------

SHA256 = re.compile(r"^[0-9a-f]{64}$")
RANGE = re.compile(r"^bytes=([0-9]{1,19})-$")


def _sha256(value: str | None, field: str) -> str:
    if value is None or not SHA256.match(value):
        raise InvalidInputError(f"{field} must be 64 lower-case hex digits", field=field)
    return value


def _range_response(data: bytes, header: str | None, headers: dict[str, str]) -> Response:
    """The whole file, or from ``Range: bytes=N-`` on (206): a download resumes."""
    headers = {**headers, "Accept-Ranges": "bytes"}
    if header:
        match = RANGE.match(header.strip())
        if match is None:
            raise InvalidInputError("Range must be bytes=N- (resume from byte N)", field="Range")
        start = int(match.group(1))
        if start >= len(data) and not (start == 0 and not data):
            return Response(
                status_code=416,
                headers={**headers, "Content-Range": f"bytes */{len(data)}"},
            )
        headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        return Response(
            data[start:], status_code=206, media_type="application/octet-stream", headers=headers
        )
    return Response(data, media_type="application/octet-stream", headers=headers)
