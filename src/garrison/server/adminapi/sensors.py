"""Sensor policies (default, per group, effective per station) and per-station sensor status.

Viewers read; writes need the admin role, like the configuration agents fetch
(``/configs/{kind}/desired``).
"""

from __future__ import annotations

from fastapi import APIRouter

from garrison.common.sensor_policy import version
from garrison.server.adminapi import schemas as s
from garrison.server.adminapi.deps import Admin, Ctx, Viewer
from garrison.server.adminapi.inputs import Id
from garrison.server.sensors import actions, service, status
from garrison.server.sensors.models import SensorPolicy

router = APIRouter(tags=["sensors"])


def _out(row: SensorPolicy | None, group: str | None = None) -> s.SensorPolicyOut:
    scope = "default" if group is None else "group"
    if row is None:
        return s.SensorPolicyOut(scope=scope, group=group, settings={}, version=version({}))
    return s.SensorPolicyOut(
        scope=scope,
        group=group,
        priority=row.priority,
        settings=dict(row.settings),
        version=version(dict(row.settings)),
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


@router.get(
    "/sensor-policy",
    response_model=s.SensorPolicyOut,
    summary="The default sensor policy (empty: agents keep their agent.toml [sensors])",
)
def get_default(actor: Viewer, ctx: Ctx) -> s.SensorPolicyOut:
    with ctx.db.reading() as session:
        return _out(service.default_policy(session))


@router.put("/sensor-policy", response_model=s.SensorPolicyOut)
def put_default(body: s.SensorPolicyIn, actor: Admin, ctx: Ctx) -> s.SensorPolicyOut:
    return _out(actions.set_default(ctx.db, actor, body.settings))


@router.get("/groups/{name}/sensor-policy", response_model=s.SensorPolicyOut)
def get_group(name: str, actor: Viewer, ctx: Ctx) -> s.SensorPolicyOut:
    with ctx.db.reading() as session:
        group, row = service.group_policy(session, name)
        return _out(row, group.name)


@router.put("/groups/{name}/sensor-policy", response_model=s.SensorPolicyOut)
def put_group(name: str, body: s.GroupSensorPolicyIn, actor: Admin, ctx: Ctx) -> s.SensorPolicyOut:
    group, row = actions.set_group(ctx.db, actor, name, body.settings, body.priority)
    return _out(row, group.name)


@router.delete("/groups/{name}/sensor-policy", status_code=204)
def delete_group(name: str, actor: Admin, ctx: Ctx) -> None:
    actions.unset_group(ctx.db, actor, name)


@router.get(
    "/stations/{station_id}/sensor-policy",
    response_model=s.EffectiveSensorPolicyOut,
    summary="The policy the station's agent gets, and where each key comes from",
)
def get_effective(station_id: Id, actor: Viewer, ctx: Ctx) -> s.EffectiveSensorPolicyOut:
    with ctx.db.reading() as session:
        found = service.station_effective(session, station_id)
    return s.EffectiveSensorPolicyOut(
        station_id=station_id,
        version=found.version,
        settings=found.settings,
        sources=found.sources,
        layers=found.layers,
    )


@router.get(
    "/stations/{station_id}/sensors",
    response_model=s.StationSensorsOut,
    summary="The station's sensors, from its latest sensor_health event",
)
def get_sensors(station_id: Id, actor: Viewer, ctx: Ctx) -> s.StationSensorsOut:
    with ctx.db.reading() as session:
        found = status.station_sensors(session, station_id)
    return s.StationSensorsOut(
        station_id=station_id,
        reported_at=found.reported_at,
        received_at=found.received_at,
        policy_version=found.policy_version,
        policy_error=found.policy_error,
        sensors=[
            s.SensorStatusOut(
                sensor=item.sensor, state=item.state, reason=item.reason, **item.counters
            )
            for item in found.sensors
        ],
    )
