"""A signed envelope checked (after its rotations were walked, ``TrustStore.walk``): the
signature by a trusted unexpired key over ``canonical(manifest)``, the manifest's shape, its
server and a serial above the one installed (a replayed or rolled-back manifest is refused;
an administrator's pin to an older version comes with a new, higher serial)."""

from __future__ import annotations

import datetime as dt

from garrison.agent.content import wire
from garrison.agent.content.errors import ContentRefused
from garrison.agent.content.keys import TrustStore


def verify(
    envelope: wire.Envelope,
    trust: TrustStore,
    installed: wire.Manifest | None,
    now: dt.datetime,
) -> wire.Manifest:
    if not trust.keys:
        raise ContentRefused(
            "no content key is pinned: enroll this agent again with a server that signs content"
        )
    trust.verify(envelope.key_id, envelope.signature, wire.canonical(envelope.manifest), now)
    manifest = wire.parse_manifest(envelope.manifest)
    if manifest.server_id != trust.server_id:
        raise ContentRefused(
            f"the manifest is from another server (server_id {manifest.server_id[:64]}; this "
            f"agent is enrolled with {trust.server_id or 'no known server'})"
        )
    if (
        installed is not None
        and installed.server_id == manifest.server_id
        and manifest.serial <= installed.serial
    ):
        raise ContentRefused(
            f"the manifest's serial {manifest.serial} is not above the installed "
            f"{installed.serial} (a replay or a rollback)"
        )
    return manifest
