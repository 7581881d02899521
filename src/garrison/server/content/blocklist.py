"""The fleet-wide block list: a thin admin surface over one rule set of the signed content.

Prevention adds no second way to ship content: ``POST/GET/DELETE /admin/v1/blocklist`` read
and write the rule set ``blocklist`` (kind ``blocklist``), each change a new version (so
the history, its authors and a rollback are the repository's), delivered by the signed
manifest and applied by the agents at their next check-in.  Every scope gets it, whatever
its assignment names (``service.FLEET_RULESETS``).

Each entry is two lines: a comment with its metadata as JSON (``#= {"sha256", "comment",
"added_by", "added_at"}``) and the indicator ``hash:<sha256>``.  A hash the fleet's agents
report they run on (State ``avdetails.protected_sha256``: their interpreter, their entry
script, the system's python3) is refused: blocking it would stop the agents themselves.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from garrison.server.audit import service as audit
from garrison.server.audit.actor import Actor
from garrison.server.content import service
from garrison.server.content.models import RuleSet, RuleVersion
from garrison.server.errors import ConflictError, InvalidInputError, NotFoundError
from garrison.server.states.models import StationState
from garrison.server.store.base import utcnow

NAME = "blocklist"
KIND = "blocklist"
META = "#= "
SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_COMMENT = 500
HEADER = "# The fleet-wide block list (garrison blocklist); one entry is #= {meta} then hash:\n"


class ProtectedHashError(ConflictError):
    """The hash is one the agents run on: blocking it would stop them."""

    code = "protected_hash"


@dataclass(frozen=True)
class Entry:
    sha256: str
    comment: str
    added_by: str
    added_at: str


def _sha256(value: Any) -> str:
    text = value.strip().lower() if isinstance(value, str) else ""
    if not SHA256.match(text):
        raise InvalidInputError("sha256 must be 64 hexadecimal digits", field="sha256")
    return text


def parse(content: str) -> list[Entry]:
    entries: list[Entry] = []
    meta: dict[str, Any] = {}
    for line in content.split("\n"):
        if line.startswith(META):
            try:
                loaded = json.loads(line[len(META) :])
            except ValueError:
                loaded = {}
            meta = loaded if isinstance(loaded, dict) else {}
        elif line.startswith("hash:"):
            digest = line[5:].strip().lower()
            same = meta.get("sha256") == digest
            entries.append(
                Entry(
                    digest,
                    str(meta.get("comment", "")) if same else "",
                    str(meta.get("added_by", "")) if same else "",
                    str(meta.get("added_at", "")) if same else "",
                )
            )
            meta = {}
    return entries


def render(entries: list[Entry]) -> str:
    lines = [HEADER.rstrip("\n")]
    for e in entries:
        meta = {
            "sha256": e.sha256,
            "comment": e.comment,
            "added_by": e.added_by,
            "added_at": e.added_at,
        }
        lines.append(META + json.dumps(meta, sort_keys=True, ensure_ascii=False))
        lines.append(f"hash:{e.sha256}")
    return "\n".join(lines) + "\n"


def _latest(session: Session) -> RuleVersion | None:
    ruleset = session.scalar(select(RuleSet).where(RuleSet.name == NAME))
    if ruleset is None or not ruleset.latest:
        return None
    return session.scalar(
        select(RuleVersion).where(
            RuleVersion.ruleset_id == ruleset.id, RuleVersion.version == ruleset.latest
        )
    )


def entries(session: Session) -> tuple[int, list[Entry]]:
    """The version in force (0: none yet) and its entries."""
    latest = _latest(session)
    if latest is None:
        return 0, []
    return latest.version, parse(latest.content)


def protected_hashes(session: Session) -> dict[str, int]:
    """sha256 -> how many stations report they run on it."""
    out: dict[str, int] = {}
    for details in session.scalars(select(StationState.avdetails)):
        for item in details or []:
            if isinstance(item, dict) and item.get("attr") == "protected_sha256":
                for digest in str(item.get("value", "")).split(";"):
                    if SHA256.match(digest):
                        out[digest] = out.get(digest, 0) + 1
    return out


def add(session: Session, actor: Actor, sha256: Any, comment: Any) -> tuple[int, Entry]:
    digest = _sha256(sha256)
    if comment is None:
        comment = ""
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT or "\n" in comment:
        raise InvalidInputError(
            f"comment must be one line of at most {MAX_COMMENT} characters", field="comment"
        )
    stations = protected_hashes(session).get(digest)
    if stations:
        raise ProtectedHashError(
            f"{digest} is the agent's own interpreter or program on {stations} station(s): "
            "the agent does not block itself or the Python it runs on",
            field="sha256",
        )
    _version, current = entries(session)
    if any(e.sha256 == digest for e in current):
        raise ConflictError(f"{digest} is on the block list already", field="sha256")
    entry = Entry(digest, comment, actor.username[:64], service.rfc3339(utcnow()))
    added = service.add_version(
        session, actor, KIND, NAME, render([*current, entry]), f"add {digest}: {comment}"[:500]
    )
    audit.record(session, actor, "blocklist.add", digest, comment=comment)
    return added.version.version, entry


def remove(session: Session, actor: Actor, sha256: Any) -> int:
    digest = _sha256(sha256)
    _version, current = entries(session)
    kept = [e for e in current if e.sha256 != digest]
    if len(kept) == len(current):
        raise NotFoundError(f"{digest} is not on the block list")
    added = service.add_version(session, actor, KIND, NAME, render(kept), f"remove {digest}")
    audit.record(session, actor, "blocklist.remove", digest)
    return added.version.version
