"""Stations: the list (server-side filter, sort, paging) and a station's detail page,
with its buttons: scan, isolate, rejoin, self-test, update, and the live-response actions
the station's agent runs (jobs, as the admin API creates them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from garrison.common.vocabulary import AgentKind, JobPriority, JobType, Role
from garrison.server.adminapi import schemas as s
from garrison.server.alerts import service as alerts
from garrison.server.configs import service as configs
from garrison.server.configs.models import CONFIG_KINDS
from garrison.server.console import paging, web
from garrison.server.console.web import Form, Who
from garrison.server.errors import GarrisonError, InvalidInputError, NotFoundError
from garrison.server.events import service as events
from garrison.server.events import tree as process_trees
from garrison.server.jobs import actions as job_actions
from garrison.server.jobs import service as jobs
from garrison.server.options import service as options
from garrison.server.sensors import status as sensor_status
from garrison.server.states import service as states
from garrison.server.stations import service as stations

ONLINE = {"yes": True, "no": False}


@dataclass(frozen=True)
class QuickJob:
    """A detail page button: the job type it queues, and the form field (if any) that
    gives its one parameter (``param``), where a problem with that parameter is shown."""

    type: JobType
    field: str | None = None
    param: str | None = None
    number: bool = False


QUICK_JOBS = {
    "scan": QuickJob(JobType.SCAN, "path", "path"),
    "isolate": QuickJob(JobType.ISOLATE_NETWORK),
    "rejoin": QuickJob(JobType.REJOIN_NETWORK),
    "selftest": QuickJob(JobType.SELF_TEST),
    "update": QuickJob(JobType.UPDATE_SIGNATURES),
    "processes": QuickJob(JobType.LIST_PROCESSES),
    "connections": QuickJob(JobType.LIST_CONNECTIONS),
    "services": QuickJob(JobType.LIST_SERVICES),
    "sessions": QuickJob(JobType.LIST_SESSIONS),
    "quarantine_list": QuickJob(JobType.LIST_QUARANTINE),
    "kill": QuickJob(JobType.KILL_PROCESS, "pid", "pid", number=True),
    "get_file": QuickJob(JobType.GET_FILE, "file_path", "path"),
    "quarantine_file": QuickJob(JobType.QUARANTINE_FILE, "file_path", "path"),
    "delete_file": QuickJob(JobType.DELETE_FILE, "file_path", "path"),
    "restore": QuickJob(JobType.RESTORE_QUARANTINED, "quarantine_id", "id"),
}


def _filter(request: Request) -> stations.StationFilter:
    q = request.query_params
    return stations.StationFilter(
        search=q.get("search", "")[:255] or None,
        group=q.get("group", "")[:128] or None,
        online=ONLINE.get(q.get("online", "")),
        os_name=q.get("os_name", "")[:64] or None,
        agent_kind=q.get("agent_kind", "")[:16] or None,
    )


def station_rows(request: Request) -> dict[str, Any]:
    """The stations table's values (the page, its partial update, the benchmark)."""
    ctx = web.ctx_of(request)
    offset = paging.offset_of(request)
    sort = request.query_params.get("sort", "id")
    descending = request.query_params.get("dir", "asc") == "desc"
    with ctx.db.reading() as session:
        offline_after = options.get(session, "offline_after_seconds")
        rows, total = stations.search(
            session, _filter(request), offline_after, paging.PAGE_SIZE, offset, sort, descending
        )
        groups = [g.name for g, _ in stations.list_groups(session)]
        items = [
            (st, stations.is_online(st, offline_after, ctx.presence.pending(st.id))) for st in rows
        ]
    return {
        "items": items,
        "page": paging.page(request, offset, len(items), total),
        "sort": sort,
        "descending": descending,
        "groups": groups,
        "query": request.query_params,
        "sorts": list(stations.SORTS),
    }


@web.view(Role.VIEWER)
def stations_list(request: Request, who: Who, form: Form) -> Response:
    values = station_rows(request)
    template = "stations_table.html" if web.is_htmx(request) else "stations.html"
    return web.render(request, template, who, **values, form=form)


def _station_id(request: Request) -> int:
    raw = str(request.path_params["station_id"])
    if not raw.isdigit() or len(raw) > 18:
        raise InvalidInputError("station_id: not a station id", field="station_id")
    return int(raw)


def _detail(request: Request, who: Who, form: Form, status: int = 200) -> Response:
    ctx = web.ctx_of(request)
    station_id = _station_id(request)
    with ctx.db.reading() as session:
        offline_after = options.get(session, "offline_after_seconds")
        station = stations.get(session, station_id)
        online = stations.is_online(station, offline_after, ctx.presence.pending(station_id))
        try:
            state = states.get(session, station_id)
        except NotFoundError:
            state = None
        job_rows, _ = jobs.search(session, station_id=station_id, limit=20)
        job_views = jobs.views(session, job_rows, 0)
        alert_rows, alert_total = alerts.search(session, station_id=station_id, limit=20)
        timeline, event_total = events.search(
            session, events.EventQuery(station_id=station_id), 30, 0
        )
        tree = process_trees.process_tree(session, station_id, limit=200)
        sensors = sensor_status.station_sensors(session, station_id)
        runs = AgentKind(station.agent_kind).job_types
        config_kinds = []
        for kind in CONFIG_KINDS:
            report = configs.last_report(session, station_id, kind)
            if report is not None:
                config_kinds.append((kind, configs.differences(session, station_id, kind)))
    return web.render(
        request,
        "station.html",
        who,
        status=status,
        station=station,
        online=online,
        state=state,
        jobs=job_views,
        alerts=alert_rows,
        alert_total=alert_total,
        timeline=timeline,
        event_total=event_total,
        tree=tree,
        sensors=sensors,
        configs=config_kinds,
        can_run={name for name, quick in QUICK_JOBS.items() if quick.type in runs},
        form=form,
    )


@web.view(Role.VIEWER)
def station_detail(request: Request, who: Who, form: Form) -> Response:
    return _detail(request, who, form)


def _param(quick: QuickJob, form: Form) -> dict[str, Any]:
    if quick.field is None or quick.param is None:
        return {}
    value: Any = form.get(quick.field).strip()
    if quick.type == JobType.SCAN:
        value = value or "/"
    if quick.number and value.isdigit() and len(value) < 18:
        value = int(value)
    return {quick.param: value}


@web.view(Role.OPERATOR)
def station_job(request: Request, who: Who, form: Form) -> Response:
    """A detail page button: queue that job for this station (the admin API's rules)."""
    station_id = _station_id(request)
    quick = QUICK_JOBS.get(form.get("action"))
    if quick is None:
        form.errors["form"] = f"action must be one of {', '.join(QUICK_JOBS)}"
        return _detail(request, who, form, 422)
    body = web.validate(
        s.JobIn,
        {
            "type": quick.type,
            "station_ids": [station_id],
            "priority": JobPriority.HIGH,
            "params": _param(quick, form),
        },
        form,
    )
    if body is None:
        return _detail(request, who, form, 422)
    try:
        view = job_actions.create_job(
            web.ctx_of(request).db,
            who.actor,
            body.type,
            body.priority,
            body.params,
            station_ids=body.station_ids,
            target_limit=0,
        )
    except GarrisonError as exc:
        # A parameter's problem (``params.path``) is shown beside the field that gave it;
        # any other (the station's agent cannot run the job) above the buttons.
        param = quick.field and exc.field and exc.field.startswith("params.")
        form.errors[quick.field if param and quick.field else "form"] = exc.message
        return _detail(request, who, form, 422)
    return web.redirect(request, f"/jobs/{view.job.id}")
