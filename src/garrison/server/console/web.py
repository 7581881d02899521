"""The console's plumbing: templates, the security headers of every page, the session
cookie, and :func:`view`, which every page goes through (session, role, CSRF token)."""

from __future__ import annotations

import functools
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import jinja2
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from garrison import __version__
from garrison.common.vocabulary import Role
from garrison.server.audit.actor import Actor
from garrison.server.context import ServerContext
from garrison.server.errors import ForbiddenError, GarrisonError, NotAuthenticatedError
from garrison.server.errors_http import status_of
from garrison.server.users import service as users
from garrison.server.users import sessions

COOKIE = "garrison_console"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
LIVE_HEADER = "x-console-live"
STATIC = "/console/static"
CSRF_REFUSED = (
    "this change came without this session's CSRF token; reload the page and try again "
    "(nothing was changed)"
)
# No inline script or style anywhere: scripts and styles come from the console's own files.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("garrison.server.console", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.globals["static"] = STATIC
_env.globals["version"] = __version__


@dataclass(frozen=True)
class Who:
    """The console user of a request: the audit's actor, the session's CSRF token."""

    actor: Actor
    csrf_token: str
    session_id: int

    def can(self, role: Role) -> bool:
        return users.role_allows(self.actor.role, role)


@dataclass
class Form:
    """A submitted form: its values, and the problems to show beside its fields."""

    values: dict[str, str] = field(default_factory=dict)
    # Every value of each name (checkbox lists: the stations of a bulk action).
    lists: dict[str, list[str]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def get(self, name: str, default: str = "") -> str:
        return self.values.get(name, default)


def ctx_of(request: Request) -> ServerContext:
    ctx: ServerContext = request.app.state.ctx
    return ctx


def address_of(request: Request) -> str:
    return request.client.host if request.client else ""


def secure(request: Request) -> bool:
    return request.url.scheme == "https"


def render(
    request: Request,
    template: str,
    who: Who | None,
    status: int = 200,
    **values: Any,
) -> HTMLResponse:
    body = _env.get_template(template).render(
        request=request,
        who=who,
        path=request.url.path,
        Role=Role,
        partial=is_htmx(request),
        **values,
    )
    return HTMLResponse(body, status_code=status, headers=HEADERS)


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def redirect(request: Request, url: str) -> Response:
    """Back to a page after a change (POST, redirect, GET); htmx follows HX-Redirect."""
    if is_htmx(request):
        return Response(status_code=204, headers={**HEADERS, "HX-Redirect": url})
    return RedirectResponse(url, status_code=303, headers=HEADERS)


def to_login(request: Request, message: str) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    query = urllib.parse.urlencode({"next": target, "message": message})
    response = redirect(request, f"/login?{query}")
    response.delete_cookie(COOKIE, path="/")
    return response


def error_page(request: Request, who: Who | None, exc: GarrisonError) -> HTMLResponse:
    return render(request, "error.html", who, status=status_of(exc), error=exc)


def validate(schema: type[_M], data: Mapping[str, Any], form: Form) -> _M | None:
    """``data`` checked by the admin API's own schema; on failure the problems are in
    ``form.errors`` by field, with the admin API's messages."""
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            name = ".".join(str(p) for p in err.get("loc", ())) or "form"
            form.errors.setdefault(name, str(err.get("msg", "invalid")))
        return None


def failed(form: Form, exc: GarrisonError) -> None:
    """A domain error from a use case, shown beside its field (or above the form)."""
    form.errors[exc.field or "form"] = exc.message


_M = TypeVar("_M", bound=BaseModel)
Handler = Callable[[Request, Who, Form], Response]


def _who(request: Request, touch: bool) -> Who:
    token = request.cookies.get(COOKIE)
    if not token:
        raise NotAuthenticatedError("please log in")
    ctx = ctx_of(request)
    with ctx.db.reading() as session:
        principal = sessions.resolve(session, token, ctx.settings.console_idle_seconds)
    # Only what the user does keeps a session alive: the live stream and the reloads it
    # triggers (console.js marks them) do not, or an open tab would never go idle.
    touch = touch and request.headers.get(LIVE_HEADER) is None
    if touch and sessions.needs_touch(principal):
        with ctx.db.transaction() as session:
            sessions.touch(session, principal.session_id)
    actor = Actor(principal.username, principal.role, address_of(request), principal.user_id)
    return Who(actor, principal.csrf_token, principal.session_id)


Endpoint = Callable[[Request], Awaitable[Response]]


def view(role: Role = Role.VIEWER, touch: bool = True) -> Callable[[Handler], Endpoint]:
    """A console page or action for ``role`` and above.  A POST is a change: it needs the
    session's CSRF token (form field or X-CSRF-Token header), checked before anything runs.
    The handler runs in the thread pool (it reads and writes the database)."""

    def wrap(handler: Handler) -> Endpoint:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            data: FormData | None = await request.form() if request.method == "POST" else None
            try:
                who = await run_in_threadpool(_who, request, touch)
            except NotAuthenticatedError as exc:
                return to_login(request, exc.message)
            except ForbiddenError as exc:
                return error_page(request, None, exc)
            if not who.can(role):
                refused = ForbiddenError(f"this needs the {role} role; you are {who.actor.role}")
                return error_page(request, who, refused)
            form = Form()
            if data is not None:
                given = data.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
                if not isinstance(given, str) or not sessions.csrf_matches(who.csrf_token, given):
                    return error_page(request, who, ForbiddenError(CSRF_REFUSED))
                for name, value in data.multi_items():
                    if isinstance(value, str) and name != CSRF_FIELD:
                        form.values.setdefault(name, value)
                        form.lists.setdefault(name, []).append(value)
            try:
                return await run_in_threadpool(handler, request, who, form)
            except GarrisonError as exc:
                return error_page(request, who, exc)

        return endpoint

    return wrap
