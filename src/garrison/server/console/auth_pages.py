"""Log in and out of the console.  The login is ``users.actions.console_login``: the admin
API's rate limits, lockout and audit, with a session in the database instead of a token."""

from __future__ import annotations

import secrets

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from garrison.common.vocabulary import Role
from garrison.server.console import web
from garrison.server.console.web import Form, Who
from garrison.server.errors import NotAuthenticatedError, RateLimitedError
from garrison.server.users import actions

# The login form has no session yet: a cookie of its own, repeated in the form (double
# submit), keeps another site from logging a browser in to an account of its choosing.
LOGIN_CSRF = "garrison_login_csrf"
MAX_FIELD = 1024


def _safe_next(value: str) -> str:
    """Only a path of this site: ``next`` must not send the user elsewhere."""
    if value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/stations"


def _login_page(
    request: Request, status: int = 200, problem: str = "", username: str = ""
) -> Response:
    token = request.cookies.get(LOGIN_CSRF) or secrets.token_urlsafe(32)
    response = web.render(
        request,
        "login.html",
        None,
        status=status,
        message=request.query_params.get("message", "")[:200],
        problem=problem,
        username=username,
        next=_safe_next(request.query_params.get("next", "/stations")),
        login_csrf=token,
    )
    response.set_cookie(
        LOGIN_CSRF,
        token,
        httponly=True,
        samesite="strict",
        secure=web.secure(request),
        path="/login",
    )
    return response


async def login_form(request: Request) -> Response:
    return _login_page(request)


async def login(request: Request) -> Response:
    data = await request.form()
    username = str(data.get("username") or "")[:MAX_FIELD]
    password = str(data.get("password") or "")[:MAX_FIELD]
    given = str(data.get("login_csrf") or "")
    expected = request.cookies.get(LOGIN_CSRF, "")
    if not expected or not secrets.compare_digest(expected.encode(), given.encode()):
        return _login_page(
            request, 403, "the login form had expired; please log in again", username
        )
    if not username or not password:
        return _login_page(request, 422, "enter your username and password", username)
    ctx = web.ctx_of(request)
    try:
        opened = await run_in_threadpool(
            actions.console_login,
            ctx.db,
            username,
            password,
            web.address_of(request),
            ctx.login_guard,
            ctx.settings.admin_token_ttl_seconds,
            ctx.settings.console_idle_seconds,
        )
    except RateLimitedError as exc:
        response = _login_page(request, 429, exc.message, username)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except NotAuthenticatedError as exc:
        return _login_page(request, 401, exc.message, username)
    target = _safe_next(str(data.get("next") or "/stations"))
    response = RedirectResponse(target, status_code=303, headers=web.HEADERS)
    response.set_cookie(
        web.COOKIE,
        opened.token,
        max_age=ctx.settings.admin_token_ttl_seconds,
        httponly=True,
        samesite="strict",
        secure=web.secure(request),
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF, path="/login")
    return response


@web.view(Role.VIEWER)
def logout(request: Request, who: Who, form: Form) -> Response:
    token = request.cookies.get(web.COOKIE, "")
    actions.console_logout(web.ctx_of(request).db, who.actor, token)
    response = RedirectResponse(
        "/login?message=You+are+logged+out.", status_code=303, headers=web.HEADERS
    )
    response.delete_cookie(web.COOKIE, path="/")
    return response


async def home(request: Request) -> Response:
    """``/``: the stations page for a console user, else the login page."""
    if request.cookies.get(web.COOKIE):
        return RedirectResponse("/stations", status_code=303, headers=web.HEADERS)
    return RedirectResponse("/login", status_code=303, headers=web.HEADERS)
