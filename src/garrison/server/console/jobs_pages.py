"""Jobs: the list, a job's progress (live), the new-job form (for a selection of stations
or a group) and cancelling while queued: ``jobs.actions``, checked by the admin API's
``JobIn``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from garrison.common.vocabulary import JobPriority, JobType, Role
from garrison.server.adminapi import schemas as s
from garrison.server.console import paging, web
from garrison.server.console.web import Form, Who
from garrison.server.errors import GarrisonError, InvalidInputError
from garrison.server.jobs import actions
from garrison.server.jobs import service as jobs
from garrison.server.stations import service as stations

TARGETS_SHOWN = 200


def _id(request: Request, name: str) -> int:
    raw = str(request.path_params[name])
    if not raw.isdigit() or len(raw) > 18:
        raise InvalidInputError(f"{name}: not an id", field=name)
    return int(raw)


@web.view(Role.VIEWER)
def jobs_list(request: Request, who: Who, form: Form) -> Response:
    ctx = web.ctx_of(request)
    offset = paging.offset_of(request)
    status = request.query_params.get("status") or None
    with ctx.db.reading() as session:
        rows, total = jobs.search(session, status=status, limit=paging.PAGE_SIZE, offset=offset)
        views = jobs.views(session, rows, 0)
    template = "jobs_table.html" if web.is_htmx(request) else "jobs.html"
    return web.render(
        request,
        template,
        who,
        jobs=views,
        page=paging.page(request, offset, len(views), total),
        query=request.query_params,
    )


def _form_page(request: Request, who: Who, form: Form, status: int = 200) -> Response:
    ctx = web.ctx_of(request)
    with ctx.db.reading() as session:
        groups = [g.name for g, _ in stations.list_groups(session)]
    return web.render(
        request,
        "job_new.html",
        who,
        status=status,
        form=form,
        groups=groups,
        types=list(JobType),
        priorities=[(str(p.value), p.label) for p in JobPriority],
        selected=form.lists.get("station_ids", []),
    )


@web.view(Role.OPERATOR)
def job_new(request: Request, who: Who, form: Form) -> Response:
    """GET: the form; POST from the stations list: the form for the selected stations."""
    if request.method == "GET":
        form.lists["station_ids"] = request.query_params.getlist("station_ids")
    return _form_page(request, who, form)


def _station_ids(form: Form) -> list[Any]:
    raw = form.lists.get("station_ids", [])
    typed = form.get("station_list").replace(",", " ").split()
    return [int(v) if v.isdigit() else v for v in [*raw, *typed]]


@web.view(Role.OPERATOR)
def job_create(request: Request, who: Who, form: Form) -> Response:
    params: dict[str, Any] = {}
    job_type = form.get("type")
    if job_type == JobType.SCAN:
        params["path"] = form.get("path")
    priority = form.get("priority", str(JobPriority.MEDIUM.value))
    body = web.validate(
        s.JobIn,
        {
            "type": job_type,
            "station_ids": _station_ids(form),
            "group": form.get("group") or None,
            "priority": int(priority) if priority.isdigit() else priority,
            "params": params,
        },
        form,
    )
    if body is None:
        return _form_page(request, who, form, 422)
    try:
        view = actions.create_job(
            web.ctx_of(request).db,
            who.actor,
            body.type,
            body.priority,
            body.params,
            station_ids=body.station_ids,
            group=body.group,
            target_limit=0,
        )
    except GarrisonError as exc:
        web.failed(form, exc)
        return _form_page(request, who, form, 422)
    return web.redirect(request, f"/jobs/{view.job.id}")


@web.view(Role.VIEWER)
def job_detail(request: Request, who: Who, form: Form) -> Response:
    ctx = web.ctx_of(request)
    job_id = _id(request, "job_id")
    with ctx.db.reading() as session:
        view = jobs.views(session, [jobs.get(session, job_id)], TARGETS_SHOWN)[0]
        names = {
            st.id: st.hostname or st.uuid
            for st in stations.by_ids(session, [t.station_id for t in view.targets])
        }
    template = "job_progress.html" if web.is_htmx(request) else "job.html"
    return web.render(request, template, who, view=view, names=names, form=form)


@web.view(Role.OPERATOR)
def job_cancel(request: Request, who: Who, form: Form) -> Response:
    job_id = _id(request, "job_id")
    actions.cancel_job(web.ctx_of(request).db, who.actor, job_id, None)
    return web.redirect(request, f"/jobs/{job_id}")
