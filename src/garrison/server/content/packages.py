"""Agent packages for ``UpgradeAgent`` (issue 21; docs/agent.md "Self-update").

An administrator uploads a package (``garrison.common.agent_package``); the server checks
it as the agent will, stores its bytes and signs its *statement* with the content key, the
key agents already pin at enrollment for signed content:

    {"type": "garrison-agent-package-1", "server_id", "id", "version", "architecture",
     "sha256", "size"}

An agent fetches the statement, its signature and the key rotations (to walk to a newer
key, as for content manifests), then the bytes, and installs only what matches.  A
statement signed by a key that is no longer the current one is signed again when served,
so a package outlives a key rotation.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from garrison.common import agent_package
from garrison.common.vocabulary import AgentKind
from garrison.server.audit import service as audit
from garrison.server.audit.actor import Actor
from garrison.server.content import service
from garrison.server.content.delivery import ContentDelivery
from garrison.server.content.models import AgentPackage
from garrison.server.content.signing import sign
from garrison.server.errors import ConflictError, ForbiddenError, InvalidInputError, NotFoundError
from garrison.server.stations.credentials import AgentCredential, named_station
from garrison.server.stations.models import Station

STATEMENT_TYPE = "garrison-agent-package-1"
MAX_COMMENT = 1000


@dataclass(frozen=True)
class PackageView:
    id: int
    version: str
    architecture: str
    sha256: str
    size: int
    key_id: str
    comment: str
    uploaded_by: str
    created_at: dt.datetime


def view(row: AgentPackage) -> PackageView:
    return PackageView(
        row.id,
        row.version,
        row.architecture,
        row.sha256,
        row.size,
        row.key_id,
        row.comment,
        row.uploaded_by,
        row.created_at,
    )


def statement(server_id: str, row: AgentPackage) -> dict[str, Any]:
    return {
        "type": STATEMENT_TYPE,
        "server_id": server_id,
        "id": row.id,
        "version": row.version,
        "architecture": row.architecture,
        "sha256": row.sha256,
        "size": row.size,
    }


def _signer(content: ContentDelivery) -> tuple[str, Any]:
    key = content.ring.get(content.ring.current_id)
    if key is None:
        raise ConflictError("this node has no current content key to sign with")
    return content.ring.current_id, key


# -- administrators --------------------------------------------------------------------------


def upload(
    content: ContentDelivery,
    actor: Actor,
    data: bytes,
    version: str,
    architecture: str,
    comment: str = "",
) -> PackageView:
    """Check, store and sign a package; its manifest must say the version and architecture
    the administrator gives (a mislabelled build is refused here, not on every agent)."""
    try:
        agent_package.check_version(version)
        agent_package.check_architecture(architecture)
        manifest = agent_package.read(data)
    except agent_package.PackageError as exc:
        raise InvalidInputError(f"agent package refused: {exc}", field="file") from None
    if (manifest.version, manifest.architecture) != (version, architecture):
        raise InvalidInputError(
            f"agent package refused: its manifest says {manifest.version} for "
            f"{manifest.architecture}, not {version} for {architecture}",
            field="version",
        )
    if len(comment) > MAX_COMMENT:
        raise InvalidInputError(f"comment is longer than {MAX_COMMENT}", field="comment")
    content.initialise_once()
    key_id, key = _signer(content)
    with content.db.transaction() as session:
        taken = session.scalar(
            select(AgentPackage.id).where(
                AgentPackage.version == version, AgentPackage.architecture == architecture
            )
        )
        if taken is not None:
            raise ConflictError(
                f"agent package {version} for {architecture} exists already (id {taken}): "
                "delete it first to replace it"
            )
        row = AgentPackage(
            version=version,
            architecture=architecture,
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            data=data,
            key_id=key_id,
            signature="",
            comment=comment,
            uploaded_by=actor.username,
        )
        session.add(row)
        session.flush()  # the id is part of what is signed
        row.signature = sign(key, statement(content.server_id, row))
        audit.record(
            session,
            actor,
            "agent_package.upload",
            str(row.id),
            version=version,
            architecture=architecture,
            sha256=row.sha256,
            size=row.size,
        )
        return view(row)


def list_packages(content: ContentDelivery) -> list[PackageView]:
    with content.db.reading() as session:
        rows = session.scalars(
            select(AgentPackage).order_by(AgentPackage.created_at, AgentPackage.id)
        ).all()
        return [view(r) for r in rows]


def remove(content: ContentDelivery, actor: Actor, package_id: int) -> None:
    with content.db.transaction() as session:
        row = session.get(AgentPackage, package_id)
        if row is None:
            raise NotFoundError(f"no agent package {package_id}")
        session.execute(delete(AgentPackage).where(AgentPackage.id == package_id))
        audit.record(session, actor, "agent_package.delete", str(package_id), version=row.version)


def resolve(session: Session, version: str, architecture: str | None) -> AgentPackage:
    """The package an ``UpgradeAgent`` job names: the given architecture's, else the
    architecture-independent one, else the only one of that version."""
    rows = session.scalars(select(AgentPackage).where(AgentPackage.version == version)).all()
    if not rows:
        raise InvalidInputError(
            f"no agent package of version {version}: upload one (POST /admin/v1/agent-packages)",
            field="params.version",
        )
    by_arch = {r.architecture: r for r in rows}
    if architecture is not None:
        found = by_arch.get(architecture)
        if found is None:
            raise InvalidInputError(
                f"no agent package {version} for {architecture} (there are: "
                f"{', '.join(sorted(by_arch))})",
                field="params.architecture",
            )
        return found
    if agent_package.ANY_ARCHITECTURE in by_arch:
        return by_arch[agent_package.ANY_ARCHITECTURE]
    if len(rows) == 1:
        return rows[0]
    raise InvalidInputError(
        f"agent package {version} exists for {', '.join(sorted(by_arch))}: "
        "give params.architecture",
        field="params.architecture",
    )


# -- agents -----------------------------------------------------------------------------------


def _for_agent(session: Session, credential: AgentCredential, package_id: int) -> AgentPackage:
    if credential.station_id is None:
        raise ForbiddenError("agent packages need a station's own credential (its agent token)")
    station = named_station(session, credential.station_id)
    if station.agent_kind != AgentKind.GARRISON:
        raise NotFoundError("agent packages are for Garrison agents only")
    row = session.get(AgentPackage, package_id)
    if row is None:
        raise NotFoundError(f"no agent package {package_id}")
    return row


def descriptor(
    content: ContentDelivery, credential: AgentCredential, package_id: int
) -> tuple[int, bytes]:
    """(station id, JSON): the package's statement, signature, key id and the rotations."""
    content.initialise_once()
    server_id = content.server_id
    with content.db.transaction() as session:
        row = _for_agent(session, credential, package_id)
        if row.key_id != content.ring.current_id:
            # Signed before a key rotation: the current key signs it again (agents walk
            # the rotations to trust it), so a package outlives the old key's overlap.
            row.key_id, key = _signer(content)
            row.signature = sign(key, statement(server_id, row))
        body = {
            "statement": statement(server_id, row),
            "signature": row.signature,
            "key_id": row.key_id,
            "rotations": service.rotations(session),
        }
        return int(credential.station_id or 0), orjson.dumps(body)


def package_bytes(
    content: ContentDelivery, credential: AgentCredential, package_id: int
) -> tuple[int, bytes]:
    with content.db.reading() as session:
        row = _for_agent(session, credential, package_id)
        return int(credential.station_id or 0), bytes(row.data)


# -- the fleet ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FleetVersions:
    total: int
    versions: dict[str, int]  # agent version -> stations reporting it
    by_kind: dict[str, dict[str, int]]  # agent kind -> version -> stations


def fleet_versions(content: ContentDelivery) -> FleetVersions:
    """How many stations report each agent version (their latest State report, or
    enrollment), counted by the database."""
    with content.db.reading() as session:
        rows = session.execute(
            select(Station.agent_kind, Station.agent_version, func.count()).group_by(
                Station.agent_kind, Station.agent_version
            )
        ).all()
    versions: Counter[str] = Counter()
    by_kind: dict[str, Counter[str]] = {}
    for kind, version, count in rows:
        versions[version or "unknown"] += int(count)
        by_kind.setdefault(str(kind), Counter())[version or "unknown"] += int(count)
    return FleetVersions(
        sum(versions.values()),
        dict(versions.most_common()),
        {k: dict(c.most_common()) for k, c in sorted(by_kind.items())},
    )
