"""Administrative file actions: download (audited) and the retention sweep."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import IO

from garrison.server.audit import service as audit
from garrison.server.audit.actor import Actor
from garrison.server.files import archive
from garrison.server.files import service as files
from garrison.server.store.unit import Transactions


@dataclass(frozen=True)
class Download:
    sha256: str
    filename: str  # of the zip
    size: int  # of the zip
    data: IO[bytes]


def download(db: Transactions, actor: Actor, sha256: str) -> Download:
    """The stored file as a password-protected zip; the download is audited, and a failure
    to build the zip leaves no audit entry of a download that did not happen."""
    with db.transaction() as session:
        stored = files.get(session, sha256)
        found, _ = files.uploads(session, sha256=sha256, limit=1)
        original = posixpath.basename(found[0].path) if found and found[0].path else ""
        member = f"{sha256}-{original}" if original else sha256
        data = archive.password_zip(member, files.chunks(session, sha256))
        size = data.seek(0, 2)
        data.seek(0)
        audit.record(
            session, actor, "file.download", sha256, size=stored.size, name=original or None
        )
    return Download(sha256, f"{sha256}.zip", size, data)


def expire(db: Transactions) -> int:
    with db.transaction() as session:
        return files.expire(session)
