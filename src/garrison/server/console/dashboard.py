"""The dashboard: stations online / offline / isolated, threats over time, top threats,
stale bases, sensor health and export lag, each from its slice's own reads."""

from __future__ import annotations

import datetime as dt
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from garrison.common.vocabulary import Role
from garrison.server.alerts import service as alerts
from garrison.server.console import chart, web
from garrison.server.console.web import Form, Who
from garrison.server.export import service as exports
from garrison.server.jobs import service as jobs
from garrison.server.options import service as options
from garrison.server.sensors import status as sensor_status
from garrison.server.states import service as states
from garrison.server.stations import service as stations
from garrison.server.store.base import utcnow

CHART_DAYS = 14
STALE_DAYS = 7


def values(request: Request) -> dict[str, Any]:
    ctx = web.ctx_of(request)
    now = utcnow()
    since = now - dt.timedelta(days=CHART_DAYS)
    with ctx.db.reading() as session:
        total, online = stations.counts(session, options.get(session, "offline_after_seconds"))
        isolated = jobs.isolated_count(session)
        per_day = alerts.per_day(session, since)
        top = alerts.top_threats(session, since, 10)
        stale, stale_total = states.stale_bases(session, now - dt.timedelta(days=STALE_DAYS), 10)
        sensors = sensor_status.fleet_states(session, now - dt.timedelta(days=1), 2_000)
        targets = exports.views(session, exports.list_all(session))
    return {
        "total": total,
        "online": online,
        "offline": total - online,
        "isolated": isolated,
        "chart": chart.daily(per_day, CHART_DAYS, now.date()),
        "top": top,
        "stale": stale,
        "stale_total": stale_total,
        "stale_days": STALE_DAYS,
        "sensors": sensors,
        "targets": targets,
    }


@web.view(Role.VIEWER)
def dashboard(request: Request, who: Who, form: Form) -> Response:
    template = "dashboard_body.html" if web.is_htmx(request) else "dashboard.html"
    return web.render(request, template, who, **values(request))
