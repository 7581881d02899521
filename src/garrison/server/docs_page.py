"""``/admin/v1/docs``: Swagger UI from assets shipped in the package, not a CDN, so the page
works on a network with no way out.  ``scripts/vendor-swagger`` re-vendors them from the npm
registry's ``swagger-ui-dist`` (the version is in ``static/swagger-ui/VERSION``)."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS = ("garrison.server", "static/swagger-ui")


def install(app: FastAPI, docs_url: str, openapi_url: str) -> None:
    """Serve the docs page at ``docs_url`` and its assets under ``{docs_url}/assets/``."""
    assets = f"{docs_url}/assets"
    app.mount(assets, StaticFiles(packages=[ASSETS]), name="docs-assets")

    async def docs(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - docs",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon-32x32.png",
            # Swagger UI would otherwise ask validator.swagger.io about the spec.
            swagger_ui_parameters={"validatorUrl": None},
        )

    app.add_route(docs_url, docs, methods=["GET"], include_in_schema=False)
