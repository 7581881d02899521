"""Import a ClamAV database container (``.cvd``/``.cld``) into the content repository.

The container is verified as libclamav does (:mod:`garrison.common.clamav_cvd`: MD5 and
digital signature with ClamAV's published keys, the signed ``.info``), then each member
Garrison's engine uses becomes a rule set: ``<base>-hdb`` and ``<base>-hsb`` of kind
``hashes``, ``<base>-ndb`` of kind ``clamav-body`` (``base`` defaults to the file's stem,
``daily`` for ``daily.cvd``).  The other members (``.ldb``, ``.mdb``, ``.cdb``, …) are listed
as skipped with their record counts.  See docs/clamav.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from garrison.common import clamav_cvd
from garrison.server.audit.actor import Actor
from garrison.server.content import formats, service
from garrison.server.errors import InvalidInputError

KIND_OF_MEMBER = {"hdb": "hashes", "hsb": "hashes", "ndb": "clamav-body"}
MAX_BASE = 60  # the rule set name is <base>-<ext>, at most 64 characters


@dataclass(frozen=True)
class Imported:
    container: clamav_cvd.Container
    added: list[service.Added]
    skipped: dict[str, int]  # member kind -> records Garrison does not use
    refused: dict[str, int] = field(default_factory=dict)  # rule set -> lines refused


def load_keys(path: Path | None) -> clamav_cvd.ClamAVKeys:
    """ClamAV's published keys, or the ones of ``path`` (JSON ``{"cvd": {"n": "<decimal>",
    "e": <int>}, "info": {...}}``) standing in for them: an operator's own signing, tests."""
    if path is None:
        return clamav_cvd.CLAMAV_KEYS
    try:
        data = json.loads(path.read_text())
        return clamav_cvd.ClamAVKeys(
            cvd=clamav_cvd.RSAPublicKey(int(data["cvd"]["n"]), int(data["cvd"]["e"])),
            info=clamav_cvd.RSAPublicKey(int(data["info"]["n"]), int(data["info"]["e"])),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RuntimeError(f"clamav_keys_file {path}: {exc}") from None


def base_name(filename: str, name: str | None) -> str:
    base = name if name else Path(filename).stem
    if not base or len(base) > MAX_BASE or not formats.NAME.match(base):
        raise InvalidInputError(
            f"name {base[:80]!r}: [A-Za-z0-9._-], at most {MAX_BASE} characters", field="name"
        )
    return base


def _lines(data: bytes) -> list[str]:
    text = data.decode("utf-8", errors="replace")
    return [line.rstrip("\r") for line in text.split("\n") if line.strip()]


def _normalise(kind: str, member: clamav_cvd.Member) -> list[str]:
    lines = _lines(member.data)
    if kind == "hashes":
        # hash:size:name[:min_flevel[:max_flevel]]: the repository keeps at most the first
        # level (Garrison's engine uses neither).
        lines = [":".join(line.split(":")[:4]) for line in lines]
    return lines


def _content(kind: str, lines: list[str]) -> tuple[str, int]:
    """The member as repository content: every line if it validates, else the lines that
    do (the others counted as refused)."""
    content = "".join(line + "\n" for line in lines)
    try:
        formats.check(kind, content)
        return content, 0
    except formats.FormatError:
        pass
    kept = []
    for line in lines:
        try:
            formats.check(kind, line + "\n")
        except formats.FormatError:
            continue
        kept.append(line)
    return "".join(line + "\n" for line in kept), len(lines) - len(kept)


def import_container(
    session: Session,
    actor: Actor,
    filename: str,
    data: bytes,
    keys: clamav_cvd.ClamAVKeys,
    name: str | None = None,
    comment: str = "",
) -> Imported:
    base = base_name(filename, name)
    try:
        container = clamav_cvd.parse(data, clamav_cvd.format_of(filename), keys)
    except clamav_cvd.ContainerError as exc:
        raise InvalidInputError(f"{Path(filename).name}: {exc}", field="file") from None
    header = container.header
    note = comment or (
        f"ClamAV {Path(filename).name} version {header.version} ({header.build_time},"
        f" by {header.builder})"
    )
    added: list[service.Added] = []
    refused: dict[str, int] = {}
    for member in container.members:
        kind = KIND_OF_MEMBER[member.kind]
        content, bad = _content(kind, _normalise(kind, member))
        ruleset = f"{base}-{member.kind}"
        if bad:
            refused[ruleset] = bad
        if not content:
            continue
        added.append(service.add_version(session, actor, kind, ruleset, content, note))
    if not added:
        raise InvalidInputError(
            f"{Path(filename).name} holds no signatures Garrison uses (.hdb, .hsb, .ndb)",
            field="file",
        )
    return Imported(container, added, dict(container.skipped), refused)


def summary(imported: Imported) -> dict[str, Any]:
    header = imported.container.header
    return {
        "container": {
            "format": imported.container.format,
            "version": header.version,
            "signatures": header.sigs,
            "functionality_level": header.flevel,
            "build_time": header.build_time,
            "builder": header.builder,
            "stime": header.stime,
        },
        "skipped": imported.skipped,
        "refused_lines": imported.refused,
    }
