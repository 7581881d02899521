from __future__ import annotations

from fastapi import APIRouter

from garrison.server.adminapi import schemas as s
from garrison.server.adminapi.deps import Admin, Ctx, Viewer
from garrison.server.configs import actions
from garrison.server.configs import service as configs

router = APIRouter(prefix="/configs", tags=["configs"])


@router.get(
    "/{kind}/baseline",
    response_model=s.ConfigOut,
    summary="The shared baseline (first value reported per attribute)",
)
def get_baseline(kind: str, actor: Viewer, ctx: Ctx) -> s.ConfigOut:
    with ctx.db.reading() as session:
        configs.check_kind(kind)
        return s.ConfigOut(kind=kind, attributes=dict(configs.baseline(session, kind)))


@router.get(
    "/{kind}/desired",
    response_model=s.ConfigOut,
    summary="The configuration agents fetch with GET /api/avconfigs or /api/schedulers",
)
def get_desired(kind: str, actor: Viewer, ctx: Ctx) -> s.ConfigOut:
    with ctx.db.reading() as session:
        return s.ConfigOut(kind=kind, attributes=dict(configs.desired(session, kind)))


@router.put("/{kind}/desired", response_model=s.ConfigOut)
def put_desired(kind: str, body: s.DesiredIn, actor: Admin, ctx: Ctx) -> s.ConfigOut:
    pairs = [(a.attr, a.value) for a in body.attributes]
    return s.ConfigOut(kind=kind, attributes=dict(actions.set_desired(ctx.db, actor, kind, pairs)))
