"""Agent packages for ``UpgradeAgent`` and the agent versions across the fleet (issue 21).

Uploading needs the admin role (a package is code every targeted endpoint runs as root);
the list and the version counts are for viewers too.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from garrison.server.adminapi.deps import Admin, Ctx, Viewer
from garrison.server.adminapi.inputs import Id
from garrison.server.content import packages
from garrison.server.errors import InvalidInputError

router = APIRouter(tags=["agent packages"])

PACKAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


class AgentPackageOut(BaseModel):
    id: int
    version: str
    architecture: str = Field(description="'all' or one machine (e.g. amd64)")
    sha256: str
    size: int
    key_id: str = Field(description="the content key that signed its statement")
    comment: str
    uploaded_by: str
    created_at: dt.datetime


class AgentVersionsOut(BaseModel):
    total: int = Field(description="stations")
    versions: dict[str, int] = Field(description="agent version -> stations, most first")
    by_kind: dict[str, dict[str, int]] = Field(description="agent kind -> version -> stations")


def _out(found: packages.PackageView) -> AgentPackageOut:
    return AgentPackageOut(**found.__dict__)


@router.post(
    "/agent-packages",
    response_model=AgentPackageOut,
    status_code=201,
    summary="Upload an agent package (raw zip body), checked and signed with the content key",
    openapi_extra=PACKAGE_BODY,
)
async def upload_package(
    request: Request,
    actor: Admin,
    ctx: Ctx,
    version: Annotated[str, Query(max_length=64, description="what its manifest says")],
    architecture: Annotated[str, Query(max_length=32)] = "all",
    comment: Annotated[str, Query(max_length=packages.MAX_COMMENT)] = "",
) -> AgentPackageOut:
    data = await request.body()
    if not data:
        raise InvalidInputError("the body must be the package's bytes", field="file")
    stored = await run_in_threadpool(
        packages.upload, ctx.content, actor, data, version, architecture, comment
    )
    return _out(stored)


@router.get(
    "/agent-packages", response_model=list[AgentPackageOut], summary="Uploaded agent packages"
)
def list_packages(actor: Viewer, ctx: Ctx) -> list[AgentPackageOut]:
    return [_out(p) for p in packages.list_packages(ctx.content)]


@router.delete("/agent-packages/{package_id}", status_code=204, summary="Delete an agent package")
def delete_package(package_id: Id, actor: Admin, ctx: Ctx) -> Response:
    packages.remove(ctx.content, actor, package_id)
    return Response(status_code=204)


@router.get(
    "/agent-versions",
    response_model=AgentVersionsOut,
    summary="How many stations run each agent version",
)
def agent_versions(actor: Viewer, ctx: Ctx) -> AgentVersionsOut:
    found = packages.fleet_versions(ctx.content)
    return AgentVersionsOut(total=found.total, versions=found.versions, by_kind=found.by_kind)
