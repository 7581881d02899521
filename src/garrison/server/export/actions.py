"""Administrative actions on export targets: create, change, delete, send a test event."""

from __future__ import annotations

from typing import Any

import structlog

from garrison.server.audit.actor import Actor
from garrison.server.errors import InvalidInputError, UpstreamFailedError
from garrison.server.export import service as targets
from garrison.server.export.encoding import encoder, record_for
from garrison.server.export.mapping import StationInfo
from garrison.server.export.policy import ExportPolicy
from garrison.server.export.secrets import SecretBox
from garrison.server.export.target import Target, make_transport
from garrison.server.export.transports import TransportError
from garrison.server.store.base import utcnow
from garrison.server.store.engine import Database
from garrison.server.store.unit import Transactions

log = structlog.get_logger("garrison.export")
# What a failed test send answers: an administrator learns that the event did not arrive,
# not whether a port is closed, filtered or answered something (that would make the test a
# port scanner); the reason is in the server log.
NOT_DELIVERED = "test event not delivered: could not deliver to the target (see the server log)"


class ExportTestFailedError(UpstreamFailedError):
    code = "export_test_failed"


def create_target(
    db: Transactions,
    policy: ExportPolicy,
    actor: Actor,
    name: str,
    format_: str,
    transport: str,
    *,
    host: str = "",
    port: int = 0,
    path: str = "",
    url: str = "",
    options: dict[str, Any] | None = None,
    enabled: bool = True,
    start_at: str = "now",
) -> targets.TargetView:
    """A new target; ``start_at`` "now" exports events from now on, "beginning" the whole
    stored log."""
    with db.transaction() as session:
        target = targets.create(
            session,
            policy,
            actor,
            name,
            format_,
            transport,
            host,
            port,
            path,
            url,
            options,
            enabled,
            start_at,
        )
        return targets.view(session, target)


def update_target(
    db: Transactions, policy: ExportPolicy, actor: Actor, target_id: int, changes: dict[str, Any]
) -> targets.TargetView:
    """Change the given fields (``options`` are merged into the current ones)."""
    with db.transaction() as session:
        return targets.view(session, targets.update(session, policy, actor, target_id, changes))


def delete_target(db: Transactions, actor: Actor, target_id: int) -> None:
    with db.transaction() as session:
        targets.delete(session, actor, target_id)


def seal_clear_secrets(db: Transactions, box: SecretBox) -> int:
    """At start: seal the secrets an older version stored in clear."""
    with db.transaction() as session:
        return targets.seal_clear_secrets(session, box)


def send_test_event(db: Database, policy: ExportPolicy, target_id: int) -> bytes:
    """Encode and send one test event to the target now, outside any transaction; returns
    the message sent.  Raises :class:`ExportTestFailedError` with the reason when it cannot
    be delivered."""
    with db.reading() as session:
        target = Target.of(targets.get(session, target_id), policy)
    record = record_for(
        target,
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
    message: bytes = encoder(target)(record)
    try:
        # A host or URL stored before they were checked may not encode or parse: the socket
        # layer would raise TypeError or UnicodeError (a 500); it is undeliverable instead.
        targets.check_address(target.transport, target.host, target.url)
    except InvalidInputError as exc:
        raise ExportTestFailedError(f"test event not delivered: {exc.message}") from None
    try:
        transport = make_transport(target, policy.confinement)
        try:
            transport.send([message])
        finally:
            transport.close()
    except TransportError as exc:
        if exc.refused:  # a rule of the operator's: saying which one tells nothing more
            raise ExportTestFailedError(f"test event not delivered: {exc}") from None
        log.warning("export test failed", target=target.name, error=str(exc))
        raise ExportTestFailedError(NOT_DELIVERED) from None
    return message
