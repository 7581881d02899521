from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy.orm import Session

from garrison.server.adminapi import schemas as s
from garrison.server.adminapi.deps import Admin, Ctx, Viewer
from garrison.server.errors import UpstreamFailedError
from garrison.server.events import consumers
from garrison.server.events.service import last_position
from garrison.server.export import service as targets
from garrison.server.export.exporter import Target, encoder, make_transport
from garrison.server.export.mapping import StationInfo, build
from garrison.server.export.models import ExportTarget
from garrison.server.export.transports import TransportError
from garrison.server.store.base import utcnow

router = APIRouter(prefix="/export-targets", tags=["export"])


class ExportTestFailedError(UpstreamFailedError):
    code = "export_test_failed"


def target_out(session: Session, t: ExportTarget, newest: int) -> s.ExportTargetOut:
    position = consumers.position(session, targets.cursor_name(t.id))
    return s.ExportTargetOut(
        id=t.id,
        name=t.name,
        format=t.format,
        transport=t.transport,
        host=t.host,
        port=t.port,
        path=t.path,
        url=t.url,
        enabled=t.enabled,
        options=targets.parse_options(t.options).model_dump(),
        position=position,
        lag=max(newest - position, 0),
        created_at=t.created_at,
        updated_at=t.updated_at,
    )


@router.post(
    "",
    response_model=s.ExportTargetOut,
    status_code=201,
    summary="Add a SIEM / file / webhook target",
)
def create_target(body: s.ExportTargetIn, actor: Admin, ctx: Ctx) -> s.ExportTargetOut:
    with ctx.db.transaction() as session:
        t = targets.create(
            session,
            actor,
            body.name,
            body.format,
            body.transport,
            body.host,
            body.port,
            body.path,
            body.url,
            body.options,
            body.enabled,
            body.start_at,
        )
        return target_out(session, t, last_position(session))


@router.get("", response_model=list[s.ExportTargetOut])
def list_targets(actor: Viewer, ctx: Ctx) -> list[s.ExportTargetOut]:
    with ctx.db.reading() as session:
        newest = last_position(session)
        return [target_out(session, t, newest) for t in targets.list_all(session)]


@router.get("/{target_id}", response_model=s.ExportTargetOut)
def get_target(target_id: int, actor: Viewer, ctx: Ctx) -> s.ExportTargetOut:
    with ctx.db.reading() as session:
        return target_out(session, targets.get(session, target_id), last_position(session))


@router.patch("/{target_id}", response_model=s.ExportTargetOut)
def update_target(
    target_id: int, body: s.ExportTargetPatch, actor: Admin, ctx: Ctx
) -> s.ExportTargetOut:
    with ctx.db.transaction() as session:
        t = targets.update(session, actor, target_id, body.model_dump(exclude_none=True))
        return target_out(session, t, last_position(session))


@router.delete("/{target_id}", status_code=204)
def delete_target(target_id: int, actor: Admin, ctx: Ctx) -> None:
    with ctx.db.transaction() as session:
        targets.delete(session, actor, target_id)


@router.post(
    "/{target_id}/test",
    response_model=s.ExportTestOut,
    summary="Send one test event now; 502 with the reason if it cannot be delivered",
)
def test_target(target_id: int, actor: Admin, ctx: Ctx) -> s.ExportTestOut:
    with ctx.db.reading() as session:
        target = Target.of(targets.get(session, target_id))
    record = build(
        "threat_detected",
        4,
        utcnow(),
        {
            "id": 0,
            "station": "garrison-test",
            "virus": "Garrison-Test-Event",
            "object": "/garrison/test",
            "action": "none",
            "time": utcnow().isoformat(),
        },
        StationInfo(uuid="00000000-0000-0000-0000-000000000000", hostname="garrison-test"),
    )
    message = encoder(target)(record)
    try:
        transport = make_transport(target)
    except TransportError as exc:
        raise ExportTestFailedError(f"test event not delivered: {exc}") from None
    try:
        transport.send([message])
    except TransportError as exc:
        raise ExportTestFailedError(f"test event not delivered: {exc}") from None
    finally:
        transport.close()
    return s.ExportTestOut(sent=True, message=message.decode("utf-8", errors="replace"))
