"""Collected files (admins, as in the admin API): the uploads with their station, job and
size, and the download: the file in a zip encrypted with the password ``infected``,
audited by the same use case as ``GET /admin/v1/files/{sha256}``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from garrison.common.vocabulary import Role
from garrison.server.console import paging, web
from garrison.server.console.web import Form, Who
from garrison.server.errors import InvalidInputError
from garrison.server.files import actions
from garrison.server.files import service as files
from garrison.server.jobs import params as checks


def _digest(value: str, form: Form) -> str | None:
    """The filter's sha256, or None; a malformed one is the admin API's message."""
    if not value:
        return None
    try:
        return checks.sha256(value, "sha256")
    except InvalidInputError as exc:
        web.failed(form, exc)
        return None


@web.view(Role.ADMIN)
def files_list(request: Request, who: Who, form: Form) -> Response:
    q = request.query_params
    offset = paging.offset_of(request)
    station = q.get("station_id", "")
    form.values["sha256"] = q.get("sha256", "")
    digest = _digest(q.get("sha256", "").strip(), form)
    with web.ctx_of(request).db.reading() as session:
        rows, total = files.uploads(
            session,
            sha256=digest,
            station_id=int(station) if station.isdigit() and len(station) < 18 else None,
            limit=paging.PAGE_SIZE,
            offset=offset,
        )
    return web.render(
        request,
        "files.html",
        who,
        status=422 if form.errors else 200,
        uploads=rows,
        page=paging.page(request, offset, len(rows), total),
        query=q,
        form=form,
    )


def _stream(data: IO[bytes]) -> Iterator[bytes]:
    try:
        while chunk := data.read(1 << 16):
            yield chunk
    finally:
        data.close()


@web.view(Role.ADMIN)
def file_download(request: Request, who: Who, form: Form) -> Response:
    sha256 = checks.sha256(str(request.path_params["sha256"]), "sha256")
    found = actions.download(web.ctx_of(request).db, who.actor, sha256)
    return StreamingResponse(
        _stream(found.data),
        media_type="application/zip",
        headers={
            **web.HEADERS,
            "Content-Disposition": f'attachment; filename="{found.filename}"',
            "Content-Length": str(found.size),
        },
    )
