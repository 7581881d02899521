"""Signed content: rule sets and versions, assignments, the content key, the fleet view.

Viewers read; writes need the admin role (content decides what agents detect, block and
delete).  Every write is audited by the content slice.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from garrison.server.adminapi.deps import Admin, Ctx, Viewer
from garrison.server.adminapi.schemas import Strict
from garrison.server.content import actions, clamav_import, formats, service
from garrison.server.content.models import DEFAULT_SCOPE, ContentAssignment, RuleSet, RuleVersion
from garrison.server.errors import InvalidInputError

router = APIRouter(tags=["content"])

RuleName = Annotated[str, Path(pattern=formats.NAME.pattern, description="rule set name")]
Version = Annotated[int, Field(ge=1, le=2**31 - 1)]


# -- shapes --------------------------------------------------------------------------------


class RuleIn(Strict):
    kind: str = Field(description=" | ".join(formats.KINDS))
    name: str = Field(description="[A-Za-z0-9._-]{1,64}")
    content: str
    comment: str = Field(default="", max_length=service.MAX_COMMENT)


class RuleVersionOut(BaseModel):
    name: str
    kind: str
    version: int
    file: str = Field(description="the bundle file name agents install it as")
    sha256: str
    size: int
    records: int
    author: str
    created_at: dt.datetime
    comment: str
    meta: dict[str, Any] = Field(default_factory=dict)
    approved_at: dt.datetime | None = Field(
        default=None, description="scripts: only approved versions enter manifests"
    )
    approved_by: str | None = None
    content: str | None = Field(default=None, description="in show answers only")


class RuleVersionsOut(BaseModel):
    name: str
    kind: str
    latest: int
    versions: list[RuleVersionOut]


class DiffOut(BaseModel):
    name: str
    old: int
    new: int
    diff: list[str] = Field(description="a unified diff, one line each")


class AssignedRule(Strict):
    name: str
    version: Literal["latest"] | Version = "latest"


class AssignmentIn(Strict):
    rules: list[AssignedRule] | None = Field(
        default=None, description="null: every rule set at its latest version"
    )
    allow_unsigned_sources: bool = False


class GroupAssignmentIn(AssignmentIn):
    priority: int = Field(default=0, ge=service.MIN_PRIORITY, le=service.MAX_PRIORITY)


class AssignmentOut(BaseModel):
    scope: str
    group: str | None = None
    priority: int = 0
    rules: list[dict[str, Any]] | None
    allow_unsigned_sources: bool
    updated_at: dt.datetime | None = None
    updated_by: str = ""


class RotateIn(Strict):
    overlap_hours: int = Field(
        default=168, ge=service.MIN_OVERLAP_HOURS, le=service.MAX_OVERLAP_HOURS
    )


class KeyOut(BaseModel):
    key_id: str
    public_key: str
    created_at: dt.datetime
    retired_at: dt.datetime | None
    valid_until: dt.datetime | None
    current: bool


class ContentStatusOut(BaseModel):
    server_id: str
    serial: int
    serial_at: dt.datetime
    key_id: str
    keys: list[KeyOut]
    rotations: list[dict[str, Any]]


class FleetStationOut(BaseModel):
    station_id: int
    hostname: str
    group: str | None
    content_serial: int | None
    reported_at: dt.datetime | None
    behind: bool
    rules: list[dict[str, Any]] = Field(
        description="per assigned rule set: the version assigned and the one it reports"
    )


class FleetOut(BaseModel):
    serial: int
    stations: list[FleetStationOut]
    behind: int
    versions: dict[str, dict[str, int]] = Field(
        description="rule set -> version reported -> stations running it"
    )


# -- conversions ---------------------------------------------------------------------------


def _version(ruleset: RuleSet, v: RuleVersion, with_content: bool = False) -> RuleVersionOut:
    return RuleVersionOut(
        name=ruleset.name,
        kind=ruleset.kind,
        version=v.version,
        file=formats.file_name(ruleset.name, v.ext),
        sha256=v.sha256,
        size=v.size,
        records=v.records,
        author=v.author,
        created_at=v.created_at,
        comment=v.comment,
        meta=dict(v.meta or {}),
        approved_at=v.approved_at,
        approved_by=v.approved_by,
        content=v.content if with_content else None,
    )


def _assignment(row: ContentAssignment | None, group: str | None) -> AssignmentOut:
    scope = DEFAULT_SCOPE if group is None else "group"
    if row is None:
        return AssignmentOut(scope=scope, group=group, rules=None, allow_unsigned_sources=False)
    return AssignmentOut(
        scope=scope,
        group=group,
        priority=row.priority,
        rules=list(row.rules) if row.rules is not None else None,
        allow_unsigned_sources=row.allow_unsigned_sources,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


# -- rule sets -----------------------------------------------------------------------------


@router.post(
    "/rules",
    response_model=RuleVersionOut,
    status_code=201,
    summary="Create a rule set or add a version (200 with the latest when it is unchanged)",
)
def add_rule(body: RuleIn, actor: Admin, ctx: Ctx, response: Response) -> RuleVersionOut:
    added = actions.add_version(
        ctx.content, actor, body.kind, body.name, body.content, body.comment
    )
    if not added.created:
        response.status_code = 200
    return _version(added.ruleset, added.version)


class ClamAVImportOut(BaseModel):
    container: dict[str, Any] = Field(description="the verified container header")
    rulesets: list[RuleVersionOut] = Field(description="one per .hdb/.hsb/.ndb member")
    skipped: dict[str, int] = Field(description="member kinds not used -> their records")
    refused_lines: dict[str, int] = Field(description="rule set -> lines the format refused")


CLAMAV_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.post(
    "/rules/import/clamav",
    response_model=ClamAVImportOut,
    status_code=201,
    summary="Import a ClamAV .cvd/.cld (raw body), verified with ClamAV's keys",
    openapi_extra=CLAMAV_BODY,
)
async def import_clamav(
    request: Request,
    actor: Admin,
    ctx: Ctx,
    filename: Annotated[str, Query(max_length=255, description="e.g. daily.cvd")],
    name: Annotated[str | None, Query(max_length=64, description="rule set base name")] = None,
    comment: Annotated[str, Query(max_length=service.MAX_COMMENT)] = "",
) -> ClamAVImportOut:
    data = await request.body()
    if not data:
        raise InvalidInputError("the body must be the container file's bytes", field="file")
    keys = clamav_import.load_keys(ctx.settings.clamav_keys_file)
    imported = await run_in_threadpool(
        actions.import_clamav, ctx.content, actor, filename, data, keys, name, comment
    )
    return ClamAVImportOut(
        **clamav_import.summary(imported),
        rulesets=[_version(a.ruleset, a.version) for a in imported.added],
    )


@router.get("/rules", response_model=list[RuleVersionOut], summary="Rule sets, latest versions")
def list_rules(
    actor: Viewer, ctx: Ctx, kind: Annotated[str | None, Query()] = None
) -> list[RuleVersionOut]:
    with ctx.db.reading() as session:
        return [_version(r, v) for r, v in service.list_rulesets(session, kind)]


@router.get("/rules/{name}", response_model=RuleVersionOut, summary="A rule set's version")
def show_rule(
    name: RuleName,
    actor: Viewer,
    ctx: Ctx,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> RuleVersionOut:
    with ctx.db.reading() as session:
        ruleset, found = service.version_of(session, name, version)
        return _version(ruleset, found, with_content=True)


@router.get("/rules/{name}/versions", response_model=RuleVersionsOut)
def rule_versions(name: RuleName, actor: Viewer, ctx: Ctx) -> RuleVersionsOut:
    with ctx.db.reading() as session:
        ruleset, rows = service.versions(session, name)
        return RuleVersionsOut(
            name=ruleset.name,
            kind=ruleset.kind,
            latest=ruleset.latest,
            versions=[_version(ruleset, v) for v in rows],
        )


@router.post(
    "/rules/{name}/versions/{version}/approve",
    response_model=RuleVersionOut,
    summary="Approve a script version: it enters manifests (the approved script library)",
)
def approve_script(
    name: RuleName, version: Annotated[int, Path(ge=1, le=2**31 - 1)], actor: Admin, ctx: Ctx
) -> RuleVersionOut:
    ruleset, found = actions.set_approval(ctx.content, actor, name, version, True)
    return _version(ruleset, found)


@router.post(
    "/rules/{name}/versions/{version}/unapprove",
    response_model=RuleVersionOut,
    summary="Withdraw a script version's approval: it leaves manifests",
)
def unapprove_script(
    name: RuleName, version: Annotated[int, Path(ge=1, le=2**31 - 1)], actor: Admin, ctx: Ctx
) -> RuleVersionOut:
    ruleset, found = actions.set_approval(ctx.content, actor, name, version, False)
    return _version(ruleset, found)


@router.get("/rules/{name}/diff", response_model=DiffOut, summary="Diff two versions")
def rule_diff(
    name: RuleName,
    actor: Viewer,
    ctx: Ctx,
    old: Annotated[int, Query(ge=1, le=2**31 - 1, alias="from")],
    new: Annotated[int | None, Query(ge=1, le=2**31 - 1, alias="to")] = None,
) -> DiffOut:
    with ctx.db.reading() as session:
        ruleset, a, b, lines = service.diff(session, name, old, new)
        return DiffOut(name=ruleset.name, old=a.version, new=b.version, diff=lines)


# -- assignments ---------------------------------------------------------------------------


def _rules_body(body: AssignmentIn) -> list[dict[str, Any]] | None:
    if body.rules is None:
        return None
    return [{"name": r.name, "version": r.version} for r in body.rules]


@router.get("/content/assignments", response_model=list[AssignmentOut])
def list_assignments(actor: Viewer, ctx: Ctx) -> list[AssignmentOut]:
    with ctx.db.reading() as session:
        rows = service.list_assignments(session)
    out = [_assignment(row, group) for row, group in rows]
    if not any(a.scope == DEFAULT_SCOPE for a in out):
        out.insert(0, _assignment(None, None))
    return out


@router.get("/content/assignments/default", response_model=AssignmentOut)
def get_default(actor: Viewer, ctx: Ctx) -> AssignmentOut:
    with ctx.db.reading() as session:
        return _assignment(service.assignment(session, DEFAULT_SCOPE), None)


@router.put("/content/assignments/default", response_model=AssignmentOut)
def put_default(body: AssignmentIn, actor: Admin, ctx: Ctx) -> AssignmentOut:
    row, _ = actions.set_assignment(
        ctx.content, actor, None, _rules_body(body), body.allow_unsigned_sources
    )
    return _assignment(row, None)


@router.get("/groups/{name}/content", response_model=AssignmentOut)
def get_group(name: str, actor: Viewer, ctx: Ctx) -> AssignmentOut:
    with ctx.db.reading() as session:
        group, row = service.group_assignment(session, name)
        return _assignment(row, group.name)


@router.put("/groups/{name}/content", response_model=AssignmentOut)
def put_group(name: str, body: GroupAssignmentIn, actor: Admin, ctx: Ctx) -> AssignmentOut:
    row, group = actions.set_assignment(
        ctx.content, actor, name, _rules_body(body), body.allow_unsigned_sources, body.priority
    )
    return _assignment(row, group)


@router.delete("/groups/{name}/content", status_code=204)
def delete_group(name: str, actor: Admin, ctx: Ctx) -> None:
    actions.unset_group_assignment(ctx.content, actor, name)


# -- key, status, fleet --------------------------------------------------------------------


@router.get("/content", response_model=ContentStatusOut, summary="Serial, server id and keys")
def status(actor: Viewer, ctx: Ctx) -> ContentStatusOut:
    ctx.content.initialise_once()
    with ctx.db.reading() as session:
        row = service.server_row(session)
        current = service.current_key(session)
        keys = [
            KeyOut(
                key_id=k.key_id,
                public_key=k.public_key,
                created_at=k.created_at,
                retired_at=k.retired_at,
                valid_until=k.valid_until,
                current=k.key_id == current.key_id,
            )
            for k in service.all_keys(session)
        ]
        return ContentStatusOut(
            server_id=row.server_id,
            serial=row.serial,
            serial_at=row.serial_at,
            key_id=current.key_id,
            keys=keys,
            rotations=service.rotations(session),
        )


@router.post(
    "/content-key/rotate",
    summary="A new content key; the old one signs the rotation and stays valid for the overlap",
)
def rotate(body: RotateIn, actor: Admin, ctx: Ctx) -> dict[str, Any]:
    return actions.rotate_key(ctx.content, actor, body.overlap_hours)


@router.get(
    "/content/fleet",
    response_model=FleetOut,
    summary="Which Garrison stations run which content version, and which are behind",
)
def fleet(actor: Viewer, ctx: Ctx, behind: Annotated[bool, Query()] = False) -> FleetOut:
    ctx.content.initialise_once()
    with ctx.db.reading() as session:
        serial, found = service.fleet(session, behind_only=behind)
    versions: dict[str, dict[str, int]] = {}
    stations = []
    for item in found:
        for name, version in item.running.items():
            counts = versions.setdefault(name, {})
            counts[str(version)] = counts.get(str(version), 0) + 1
        stations.append(
            FleetStationOut(
                station_id=item.station_id,
                hostname=item.hostname,
                group=item.scope_group,
                content_serial=item.content_serial,
                reported_at=item.reported_at,
                behind=item.behind,
                rules=[
                    {
                        "name": f["ruleset"],
                        "assigned": f["version"],
                        "running": item.running.get(f["ruleset"]),
                    }
                    for f in item.expected
                ],
            )
        )
    return FleetOut(
        serial=serial,
        stations=stations,
        behind=sum(1 for s in stations if s.behind),
        versions=versions,
    )
