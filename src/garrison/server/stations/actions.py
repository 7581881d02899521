"""Administrative actions on stations and groups."""

from __future__ import annotations

from garrison.server.audit.actor import Actor
from garrison.server.stations import service as stations
from garrison.server.stations.models import Group
from garrison.server.store.unit import Transactions


def delete_station(db: Transactions, actor: Actor, station_id: int) -> None:
    """Forget a station; once committed its token stops working on this node at once
    (``STATION_CREDENTIALS_REVOKED`` drops it from the token cache)."""
    with db.transaction() as session:
        stations.delete(session, actor, station_id)
        stations.credentials_revoked(session, [station_id])


def allow_station(db: Transactions, actor: Actor, station_id: int) -> bool:
    """Lift the station's denial by the authorization procedure: its credentials work again
    from commit on.  Returns whether it was denied (allowing an allowed station is no error,
    and audited all the same)."""
    with db.transaction() as session:
        return stations.allow(session, actor, station_id)


def locate_station(
    db: Transactions, actor: Actor, station_id: int, latitude: object, longitude: object
) -> bool:
    """Set (both null: clear) the station's location; returns whether it changed (a change
    to a known place emits ``station_geolocation_changed``)."""
    with db.transaction() as session:
        return stations.locate(session, actor, station_id, latitude, longitude)


def create_group(db: Transactions, actor: Actor, name: str, description: str = "") -> Group:
    with db.transaction() as session:
        return stations.create_group(session, actor, name, description)


def delete_group(db: Transactions, actor: Actor, name: str) -> None:
    with db.transaction() as session:
        stations.delete_group(session, actor, name)


def change_membership(
    db: Transactions, actor: Actor, name: str, add: list[int], remove: list[int]
) -> list[int]:
    """Add stations to and remove stations from a group; returns its members."""
    with db.transaction() as session:
        return stations.set_membership(session, actor, name, add, remove)
