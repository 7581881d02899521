"""The console's routes, for ``app.create_app`` to add: every page, and its static files
(vendored htmx and Pico, its own script and stylesheet) under /console/static."""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from garrison.server.console import auth_pages, live, stations_pages, web

ASSETS = ("garrison.server.console", "static")


def routes() -> list[BaseRoute]:
    return [
        Route("/", auth_pages.home, methods=["GET"]),
        Route("/login", auth_pages.login_form, methods=["GET"]),
        Route("/login", auth_pages.login, methods=["POST"]),
        Route("/logout", auth_pages.logout, methods=["POST"]),
        Route("/live", live.live, methods=["GET"]),
        Route("/stations", stations_pages.stations_list, methods=["GET"]),
        Route("/stations/{station_id}", stations_pages.station_detail, methods=["GET"]),
        Route("/stations/{station_id}/jobs", stations_pages.station_job, methods=["POST"]),
        Mount(web.STATIC, StaticFiles(packages=[ASSETS]), name="console-static"),
    ]
