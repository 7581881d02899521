from __future__ import annotations

from fastapi import APIRouter

from garrison.server.adminapi import convert
from garrison.server.adminapi import schemas as s
from garrison.server.adminapi.deps import Admin, Ctx, Viewer
from garrison.server.adminapi.inputs import Id
from garrison.server.export import actions
from garrison.server.export import service as targets

router = APIRouter(prefix="/export-targets", tags=["export"])


@router.post(
    "",
    response_model=s.ExportTargetOut,
    status_code=201,
    summary="Add a SIEM / file / webhook target",
)
def create_target(body: s.ExportTargetIn, actor: Admin, ctx: Ctx) -> s.ExportTargetOut:
    view = actions.create_target(
        ctx.db,
        ctx.exports.policy,
        actor,
        body.name,
        body.format,
        body.transport,
        host=body.host,
        port=body.port,
        path=body.path,
        url=body.url,
        options=body.options,
        enabled=body.enabled,
        start_at=body.start_at,
    )
    return convert.export_target(view)


@router.get("", response_model=list[s.ExportTargetOut])
def list_targets(actor: Viewer, ctx: Ctx) -> list[s.ExportTargetOut]:
    with ctx.db.reading() as session:
        return [convert.export_target(v) for v in targets.views(session, targets.list_all(session))]


@router.get("/{target_id}", response_model=s.ExportTargetOut)
def get_target(target_id: Id, actor: Viewer, ctx: Ctx) -> s.ExportTargetOut:
    with ctx.db.reading() as session:
        return convert.export_target(targets.view(session, targets.get(session, target_id)))


@router.patch("/{target_id}", response_model=s.ExportTargetOut)
def update_target(
    target_id: Id, body: s.ExportTargetPatch, actor: Admin, ctx: Ctx
) -> s.ExportTargetOut:
    changes = body.model_dump(exclude_none=True)
    return convert.export_target(
        actions.update_target(ctx.db, ctx.exports.policy, actor, target_id, changes)
    )


@router.delete("/{target_id}", status_code=204)
def delete_target(target_id: Id, actor: Admin, ctx: Ctx) -> None:
    actions.delete_target(ctx.db, actor, target_id)


@router.post(
    "/{target_id}/test",
    response_model=s.ExportTestOut,
    summary="Send one test event now; 502 with the reason if it cannot be delivered",
)
def test_target(target_id: Id, actor: Admin, ctx: Ctx) -> s.ExportTestOut:
    message = actions.send_test_event(ctx.db, ctx.exports.policy, target_id)
    return s.ExportTestOut(sent=True, message=message.decode("utf-8", errors="replace"))
