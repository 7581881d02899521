"""The fleet block list (``/admin/v1/blocklist``): hashes no station may execute or open.

A thin surface over the signed content's ``blocklist`` rule set (content/blocklist.py):
viewers read, admins write; each change is a new version, audited, applied by the agents at
their next check-in.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from garrison.server.adminapi.deps import Admin, Ctx, Viewer
from garrison.server.adminapi.schemas import Strict
from garrison.server.content import actions, blocklist

router = APIRouter(prefix="/blocklist", tags=["prevention"])
Sha256 = Annotated[str, Path(description="SHA-256 in hex")]


class BlocklistIn(Strict):
    sha256: str = Field(description="SHA-256 of the file, 64 hex digits")
    comment: str = Field(default="", max_length=blocklist.MAX_COMMENT)


class BlocklistEntryOut(BaseModel):
    sha256: str
    comment: str
    added_by: str
    added_at: str
    version: int = Field(description="the version of the blocklist rule set holding it")


class BlocklistOut(BaseModel):
    version: int = Field(description="the blocklist rule set's latest version (0: none)")
    ruleset: str = blocklist.NAME
    entries: list[BlocklistEntryOut]


class BlocklistRemovedOut(BaseModel):
    sha256: str
    version: int


@router.post("", response_model=BlocklistEntryOut, status_code=201, summary="Block a hash")
def add(body: BlocklistIn, actor: Admin, ctx: Ctx) -> BlocklistEntryOut:
    version, entry = actions.blocklist_add(ctx.content, actor, body.sha256, body.comment)
    return BlocklistEntryOut(**entry.__dict__, version=version)


@router.get("", response_model=BlocklistOut, summary="The fleet block list")
def list_entries(actor: Viewer, ctx: Ctx) -> BlocklistOut:
    with ctx.db.reading() as session:
        version, found = blocklist.entries(session)
    return BlocklistOut(
        version=version,
        entries=[BlocklistEntryOut(**e.__dict__, version=version) for e in found],
    )


@router.delete("/{sha256}", response_model=BlocklistRemovedOut, summary="Lift a block")
def remove(sha256: Sha256, actor: Admin, ctx: Ctx) -> BlocklistRemovedOut:
    version = actions.blocklist_remove(ctx.content, actor, sha256)
    return BlocklistRemovedOut(sha256=sha256.strip().lower(), version=version)
