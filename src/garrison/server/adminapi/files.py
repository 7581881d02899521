from __future__ import annotations

import re
from collections.abc import Iterator
from typing import IO

from fastapi import APIRouter
from starlette.responses import StreamingResponse

from garrison.server.adminapi import schemas as s
from garrison.server.adminapi.deps import Admin, Ctx
from garrison.server.adminapi.inputs import Id, Limit, Offset
from garrison.server.errors import InvalidInputError
from garrison.server.files import actions
from garrison.server.files import service as files

router = APIRouter(prefix="/files", tags=["files"])
SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


def _sha256(value: str) -> str:
    if not SHA256.match(value):
        raise InvalidInputError("sha256 must be 64 hexadecimal digits", field="sha256")
    return value.lower()


@router.get(
    "",
    response_model=s.Page[s.FileOut],
    summary="Collected files: each upload with its station, job, size and time (admins)",
)
def list_files(
    actor: Admin,
    ctx: Ctx,
    station_id: Id | None = None,
    job_id: Id | None = None,
    sha256: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> s.Page[s.FileOut]:
    digest = _sha256(sha256) if sha256 else None
    with ctx.db.reading() as session:
        rows, total = files.uploads(
            session, sha256=digest, station_id=station_id, job_id=job_id, limit=limit, offset=offset
        )
        items = [s.FileOut.model_validate(r) for r in rows]
    return s.Page(items=items, total=total, limit=limit, offset=offset)


def _stream(data: IO[bytes]) -> Iterator[bytes]:
    try:
        while chunk := data.read(1 << 16):
            yield chunk
    finally:
        data.close()


@router.get(
    "/{sha256}",
    summary="Download a collected file as a zip encrypted with the password 'infected' (admins; "
    "audited)",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/zip": {}}}},
)
def download_file(sha256: str, actor: Admin, ctx: Ctx) -> StreamingResponse:
    found = actions.download(ctx.db, actor, _sha256(sha256))
    return StreamingResponse(
        _stream(found.data),
        media_type="application/zip",
        headers={
            "Content-Disposition": f'attachment; filename="{found.filename}"',
            "Content-Length": str(found.size),
            "X-Content-Type-Options": "nosniff",
        },
    )
