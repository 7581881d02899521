from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from garrison.server.adminapi import convert
from garrison.server.adminapi import schemas as s
from garrison.server.adminapi.deps import Admin, Ctx, Operator, Viewer
from garrison.server.adminapi.inputs import Id, Limit, Offset, UtcTime
from garrison.server.configs import service as configs
from garrison.server.context import ServerContext
from garrison.server.events import tree as process_trees
from garrison.server.options import service as options
from garrison.server.states import service as states
from garrison.server.stations import actions
from garrison.server.stations import service as stations

router = APIRouter(tags=["stations"])


@router.get("/stations", response_model=s.Page[s.StationOut])
def list_stations(
    actor: Viewer,
    ctx: Ctx,
    search: Annotated[
        str | None, Query(max_length=255, description="in hostname, uuid or address")
    ] = None,
    group: str | None = None,
    online: bool | None = None,
    os_name: str | None = None,
    antivirus: str | None = None,
    agent_kind: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> s.Page[s.StationOut]:
    f = stations.StationFilter(
        search=search,
        group=group,
        online=online,
        os_name=os_name,
        antivirus=antivirus,
        agent_kind=agent_kind,
    )
    with ctx.db.reading() as session:
        offline_after = options.get(session, "offline_after_seconds")
        rows, total = stations.search(session, f, offline_after, limit, offset)
        items = [convert.station(st, offline_after, ctx.presence.pending(st.id)) for st in rows]
    return s.Page(items=items, total=total, limit=limit, offset=offset)


def _station_out(ctx: ServerContext, station_id: int) -> s.StationOut:
    with ctx.db.reading() as session:
        offline_after = options.get(session, "offline_after_seconds")
        return convert.station(
            stations.get(session, station_id), offline_after, ctx.presence.pending(station_id)
        )


@router.get("/stations/{station_id}", response_model=s.StationOut)
def get_station(station_id: Id, actor: Viewer, ctx: Ctx) -> s.StationOut:
    return _station_out(ctx, station_id)


@router.patch(
    "/stations/{station_id}",
    response_model=s.StationOut,
    summary="Set (or clear) the station's location; a change emits station_geolocation_changed",
)
def patch_station(station_id: Id, body: s.StationPatchIn, actor: Admin, ctx: Ctx) -> s.StationOut:
    if body.model_fields_set:
        actions.locate_station(ctx.db, actor, station_id, body.latitude, body.longitude)
    else:
        _station_out(ctx, station_id)  # its 404
    return _station_out(ctx, station_id)


@router.delete("/stations/{station_id}", status_code=204)
def delete_station(station_id: Id, actor: Admin, ctx: Ctx) -> None:
    actions.delete_station(ctx.db, actor, station_id)


@router.post(
    "/stations/{station_id}/allow",
    response_model=s.StationOut,
    summary="Lift the station's denial by the authorization procedure",
)
def allow_station(station_id: Id, actor: Admin, ctx: Ctx) -> s.StationOut:
    """Admin, like deleting a station: it overrides an authorization decision."""
    actions.allow_station(ctx.db, actor, station_id)
    return _station_out(ctx, station_id)


@router.get("/stations/{station_id}/state", response_model=s.StateOut)
def get_state(station_id: Id, actor: Viewer, ctx: Ctx) -> s.StateOut:
    with ctx.db.reading() as session:
        stations.get(session, station_id)
        return s.StateOut.model_validate(states.get(session, station_id))


@router.get(
    "/stations/{station_id}/configs/{kind}",
    response_model=s.StationConfigOut,
    summary="Baseline, this station's differences and its effective configuration",
)
def station_config(station_id: Id, kind: str, actor: Viewer, ctx: Ctx) -> s.StationConfigOut:
    with ctx.db.reading() as session:
        stations.get(session, station_id)
        configs.check_kind(kind)
        report = configs.last_report(session, station_id, kind)
        return s.StationConfigOut(
            station_id=station_id,
            kind=kind,
            name=report.name if report else "",
            reported_at=report.reported_at if report else None,
            baseline=configs.baseline(session, kind),
            differences=configs.differences(session, station_id, kind),
            effective=configs.effective(session, station_id, kind) if report else {},
        )


@router.get(
    "/stations/{station_id}/process-tree",
    response_model=s.ProcessTreeOut,
    summary="The station's processes by UniquePID: parents, children, times, exit codes",
)
def process_tree(
    station_id: Id,
    actor: Viewer,
    ctx: Ctx,
    root: Annotated[
        str | None,
        Query(max_length=255, description="the UniquePID of the process to start from"),
    ] = None,
    since: UtcTime | None = None,
    until: UtcTime | None = None,
    limit: Annotated[
        int, Query(ge=1, le=process_trees.MAX_NODES, description="at most this many processes")
    ] = 1000,
) -> s.ProcessTreeOut:
    """From the station's ``process_started`` / ``process_stopped`` events.  With ``root``:
    that process and its descendants; without: the newest processes of the window
    (``since``, ``until``).  A process whose parent is not in the answer is a root; a tree
    cut at ``limit`` (or at 64 levels) says so in ``truncated`` and ``reason``."""
    with ctx.db.reading() as session:
        tree = process_trees.process_tree(
            session, station_id, root=root, since=since, until=until, limit=limit
        )
        return convert.process_tree(tree)


@router.get("/states", response_model=list[s.StateOut], tags=["states"])
def list_states(
    actor: Viewer, ctx: Ctx, status: str | None = None, limit: Limit = 100, offset: Offset = 0
) -> list[s.StateOut]:
    with ctx.db.reading() as session:
        rows = states.search(session, status=status, limit=limit, offset=offset)
        return [s.StateOut.model_validate(st) for st in rows]


# Groups -------------------------------------------------------------------------------------


@router.get("/groups", response_model=list[s.GroupOut], tags=["groups"])
def list_groups(actor: Viewer, ctx: Ctx) -> list[s.GroupOut]:
    with ctx.db.reading() as session:
        return [
            s.GroupOut(id=g.id, name=g.name, description=g.description, stations=n)
            for g, n in stations.list_groups(session)
        ]


@router.post("/groups", response_model=s.GroupOut, status_code=201, tags=["groups"])
def create_group(body: s.GroupIn, actor: Operator, ctx: Ctx) -> s.GroupOut:
    group = actions.create_group(ctx.db, actor, body.name, body.description)
    return s.GroupOut(id=group.id, name=group.name, description=group.description, stations=0)


@router.delete("/groups/{name}", status_code=204, tags=["groups"])
def delete_group(name: str, actor: Operator, ctx: Ctx) -> None:
    actions.delete_group(ctx.db, actor, name)


@router.post(
    "/groups/{name}/stations",
    response_model=s.MembershipOut,
    tags=["groups"],
    summary="Add stations to and remove stations from a group",
)
def change_membership(
    name: str, body: s.MembershipIn, actor: Operator, ctx: Ctx
) -> s.MembershipOut:
    members = actions.change_membership(ctx.db, actor, name, body.add, body.remove)
    return s.MembershipOut(group=name, station_ids=members)
