"""The console's routes, for ``app.create_app`` to add: every page, and its static files
(vendored htmx and Pico, its own script and stylesheet) under /console/static."""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from garrison.server.console import (
    admin_pages,
    alerts_pages,
    auth_pages,
    dashboard,
    events_pages,
    exports_pages,
    files_pages,
    hunts_pages,
    jobs_pages,
    keys_pages,
    live,
    procedures_pages,
    stations_pages,
    web,
)

ASSETS = ("garrison.server.console", "static")
GET = ["GET"]
POST = ["POST"]


def routes() -> list[BaseRoute]:
    return [
        Route("/", auth_pages.home, methods=GET),
        Route("/login", auth_pages.login_form, methods=GET),
        Route("/login", auth_pages.login, methods=POST),
        Route("/logout", auth_pages.logout, methods=POST),
        Route("/live", live.live, methods=GET),
        Route("/dashboard", dashboard.dashboard, methods=GET),
        Route("/stations", stations_pages.stations_list, methods=GET),
        Route("/stations/{station_id}", stations_pages.station_detail, methods=GET),
        Route("/stations/{station_id}/jobs", stations_pages.station_job, methods=POST),
        Route("/jobs", jobs_pages.jobs_list, methods=GET),
        Route("/jobs", jobs_pages.job_create, methods=POST),
        Route("/jobs/new", jobs_pages.job_new, methods=["GET", "POST"]),
        Route("/jobs/{job_id}", jobs_pages.job_detail, methods=GET),
        Route("/jobs/{job_id}/cancel", jobs_pages.job_cancel, methods=POST),
        Route("/alerts", alerts_pages.alerts_list, methods=GET),
        Route("/alerts/acknowledge", alerts_pages.acknowledge, methods=POST),
        Route("/alerts/assign", alerts_pages.assign, methods=POST),
        Route("/alerts/{alert_id}", alerts_pages.alert_detail, methods=GET),
        Route("/alerts/{alert_id}", alerts_pages.alert_post, methods=POST),
        Route("/hunts", hunts_pages.hunts_list, methods=GET),
        Route("/hunts", hunts_pages.hunt_create, methods=POST),
        Route("/hunts/{hunt_id}", hunts_pages.hunt_detail, methods=GET),
        Route("/hunts/{hunt_id}/stop", hunts_pages.hunt_stop, methods=POST),
        Route("/hunts/{hunt_id}/results.csv", hunts_pages.hunt_csv, methods=GET),
        Route("/files", files_pages.files_list, methods=GET),
        Route("/files/{sha256}", files_pages.file_download, methods=GET),
        Route("/events", events_pages.events_search, methods=GET),
        Route("/events/export.ndjson", events_pages.events_export, methods=GET),
        Route("/events/ioc-sweep", events_pages.ioc_sweep, methods=POST),
        Route("/keys", keys_pages.keys_list, methods=GET),
        Route("/keys", keys_pages.key_create, methods=POST),
        Route("/keys/{key_id}/revoke", keys_pages.key_revoke, methods=POST),
        Route("/procedures", procedures_pages.procedures_list, methods=GET),
        Route("/procedures/{event}", procedures_pages.procedure_editor, methods=GET),
        Route("/procedures/{event}", procedures_pages.procedure_post, methods=POST),
        Route("/exports", exports_pages.exports_list, methods=GET),
        Route("/exports", exports_pages.export_create, methods=POST),
        Route("/exports/{target_id}/test", exports_pages.export_test, methods=POST),
        Route("/users", admin_pages.users_list, methods=GET),
        Route("/users", admin_pages.user_create, methods=POST),
        Route("/users/{username}", admin_pages.user_update, methods=POST),
        Route("/audit", admin_pages.audit_log, methods=GET),
        Route("/settings", admin_pages.settings_page, methods=GET),
        Route("/settings", admin_pages.settings_save, methods=POST),
        Mount(web.STATIC, StaticFiles(packages=[ASSETS]), name="console-static"),
    ]
