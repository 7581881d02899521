"""The update: fetch the signed manifest, verify it, get its files (kept, delta or download),
install them into a new directory, load a new engine from it, then swap.

Scanning never waits for an update: the new engine is built while the old one keeps serving
scans, and the swap is one symlink rename plus one attribute assignment (a scan that already
started finishes with the engine it started with).  When anything fails before the swap, the
new directory is dropped and the old content stays in force; the reason reaches the server
as ``station_update_failed`` (once per manifest and reason).  After a swap, a State report
carries the new versions (the server's ``virus_bases_received``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from garrison.agent.content import budget as budgetmod
from garrison.agent.content import wire
from garrison.agent.content.download import Downloader, Fetched, sync_file
from garrison.agent.content.errors import ContentDeferred, ContentError, ContentRefused
from garrison.agent.content.keys import TrustStore
from garrison.agent.content.store import ContentStore, Installed, disk_error
from garrison.agent.content.verify import verify
from garrison.agent.errors import RefusedError
from garrison.agent.prevention import protect
from garrison.agent.scan.signatures import YARA_SUFFIXES, SignatureDB, SignatureError, load_database
from garrison.agent.transport import Transport

if TYPE_CHECKING:
    from garrison.agent.context import Agent

log = logging.getLogger("garrison.agent.content")
MANIFEST_PATH = "content/manifest"
PRODUCT = "garrison-content"


@dataclass
class Outcome:
    status: str  # installed | unchanged | refused | deferred | unavailable
    message: str
    manifest: wire.Manifest | None = None
    fetched: dict[str, Fetched] = field(default_factory=dict)
    swap_seconds: float = 0.0
    db: SignatureDB | None = None

    @property
    def failed(self) -> bool:
        return self.status in ("refused", "deferred")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def on_checkin(agent: Agent, announced: wire.Announcement | None) -> Outcome | None:
    """At a check-in: update when the server announces content other than what is
    installed, unless that very manifest was refused for good already.  None: nothing to do
    (no announcement, from an older server, or the same content)."""
    if announced is None:
        return None
    store = ContentStore(agent.state)
    found = store.installed()
    if found is not None and found.manifest.sha256 == announced.manifest_sha256:
        if agent.loaded_content != found.manifest.sha256:
            # Installed on disk by another process (a check-in by hand): load it here too.
            agent.reload_signatures()
            log.info(
                "content serial %d loaded (installed by another process)", found.manifest.serial
            )
        return None
    if store.refused(announced.manifest_sha256):
        return None
    return update(agent, announced=announced)


def update(
    agent: Agent,
    *,
    announced: wire.Announcement | None = None,
    force: bool = False,
    budget: budgetmod.Budget = budgetmod.DEFAULT,
    now: dt.datetime | None = None,
) -> Outcome:
    """One update, serialized with any other (the daemon's, a job's, another process's).
    ``force`` (an UpdateSignatures job): also retry a manifest refused before, and report
    its failure again.  Server unreachable or refusing raises the transport's AgentError."""
    with agent.state.lock("content"):
        store = ContentStore(agent.state)
        found = store.installed()
        etag = f'"{found.manifest.sha256}"' if found else ""
        with agent.transport() as transport:
            try:
                answer = transport.get_if_changed(MANIFEST_PATH, etag)
            except RefusedError as exc:
                if exc.status == 404:
                    return Outcome("unavailable", "this server does not sign content")
                raise
            if answer is None:
                return _unchanged(found)
            sha = ""
            body = answer[1]
            manifest = body.get("manifest") if isinstance(body, dict) else None
            serial = manifest.get("serial") if isinstance(manifest, dict) else None
            target = serial if isinstance(serial, int) and not isinstance(serial, bool) else None
            try:
                envelope = wire.parse_envelope(body)
                sha = wire.manifest_sha256(envelope.manifest)
                if found is not None and sha == found.manifest.sha256:
                    return _unchanged(found)
                if not force and store.refused(sha):
                    return Outcome("refused", store.last_failure().get("reason", "refused"))
                return _install(agent, store, transport, envelope, found, budget, now or _now())
            except ContentError as exc:
                return _failed(
                    agent, store, sha or _announced(announced), exc, found, force, target
                )


def _announced(announced: wire.Announcement | None) -> str:
    return announced.manifest_sha256 if announced else ""


def _unchanged(found: Installed | None) -> Outcome:
    if found is None:
        return Outcome("unchanged", "no signed content assigned yet")
    return Outcome(
        "unchanged", f"content serial {found.manifest.serial} is current", found.manifest
    )


def _failed(
    agent: Agent,
    store: ContentStore,
    sha: str,
    exc: ContentError,
    found: Installed | None,
    force: bool,
    target: int | None = None,
) -> Outcome:
    status = "refused" if exc.permanent else "deferred"
    log.warning("content update %s: %s", status, exc.message)
    if store.record_failure(sha, exc.message, exc.permanent) or force:
        data: dict[str, object] = {"product": PRODUCT, "description": exc.message[:2000]}
        if found is not None:
            data["from_revision"] = str(found.manifest.serial)
            data["from_revision_date"] = found.manifest.issued.isoformat()
        if target is not None:
            data["to_revision"] = str(target)
        agent.event("station_update_failed", data)
    return Outcome(status, exc.message)


# -- installing ----------------------------------------------------------------------------


def _install(
    agent: Agent,
    store: ContentStore,
    transport: Transport,
    envelope: wire.Envelope,
    found: Installed | None,
    budget: budgetmod.Budget,
    now: dt.datetime,
) -> Outcome:
    trust = TrustStore.load(agent.state)
    changes = trust.walk(envelope.rotations, now)
    for change in changes:
        log.info("content keys: %s", change)
    if changes:
        trust.save(agent.state)
    manifest = verify(envelope, trust, found.manifest if found else None, now)
    new = store.new_dir(manifest.serial)
    swapped, previous = False, None
    try:
        fetched = _files(store, Downloader(transport), manifest, found, new)
        db = _load(agent, store, manifest, new, budget)
        store.write_manifest(new, envelope.raw)
        started = time.perf_counter()
        previous = store.swap(new)
        agent.swap_signatures(db, manifest.sha256)
        swapped = True
        swap_seconds = time.perf_counter() - started
    finally:
        if not swapped:
            store.discard(new)
    store.prune({p for p in (new, previous) if p is not None})
    store.prune_partials(set())  # every file of the manifest in force is complete
    store.clear_failure()
    how = ", ".join(f"{name} ({f.how})" for name, f in sorted(fetched.items())) or "no file"
    message = (
        f"content serial {manifest.serial} installed: {len(manifest.files)} rule set(s), "
        f"{db.hash_count} hash and {db.yara_count} YARA record(s); fetched {how}"
    )
    log.info("%s; swapped in %.3f ms", message, swap_seconds * 1000)
    _report_state(agent)
    return Outcome("installed", message, manifest, fetched, swap_seconds, db)


def _report_state(agent: Agent) -> None:
    from garrison.agent.tasks import state  # the State task reads this package: no cycle

    state.run(agent)


def _kept(found: Installed | None, entry: wire.FileEntry) -> Path | None:
    """The installed copy of the same bytes (same hash), to link instead of downloading."""
    if found is None:
        return None
    for old in found.manifest.files:
        if old.sha256 == entry.sha256:
            path = found.directory / old.name
            with contextlib.suppress(OSError):
                if path.stat().st_size == entry.size:
                    return path
    return None


def _files(
    store: ContentStore,
    downloader: Downloader,
    manifest: wire.Manifest,
    found: Installed | None,
    new: Path,
) -> dict[str, Fetched]:
    fetched: dict[str, Fetched] = {}
    for entry in manifest.files:
        target = new / entry.name
        kept = _kept(found, entry)
        if kept is not None:
            try:
                store.link_or_copy(kept, target)
            except OSError as exc:
                raise disk_error(f"{entry.name}: cannot keep the installed copy", exc) from None
            continue
        partial = store.partial(entry.sha256)
        base = found.manifest.file(entry.ruleset) if found and entry.line_oriented else None
        if base is not None and found is not None and not partial.exists():
            try:
                fetched[entry.name] = downloader.fetch_delta(
                    entry, found.directory / base.name, base.sha256, target
                )
                continue
            except ContentDeferred as exc:
                with contextlib.suppress(FileNotFoundError):
                    target.unlink()
                log.info("%s; downloading the whole file", exc.message)
        fetched[entry.name] = downloader.fetch(entry, partial)
        try:
            sync_file(partial)
            os.replace(partial, target)
        except OSError as exc:
            raise disk_error(f"{entry.name}: cannot install the download", exc) from None
    return fetched


def _load(
    agent: Agent,
    store: ContentStore,
    manifest: wire.Manifest,
    new: Path,
    budget: budgetmod.Budget,
) -> SignatureDB:
    """The engine's database from the new directory, built while the old one serves."""
    use_yara = agent.config.scan.yara
    yara_files = sorted(
        new / f.name for f in manifest.files if Path(f.name).suffix.lower() in YARA_SUFFIXES
    )
    if use_yara and yara_files:
        budgetmod.check(yara_files, budget)
    try:
        db = load_database(store.engine_dirs(manifest, new), use_yara)
    except SignatureError as exc:
        raise ContentRefused(f"the new engine does not load: {exc}") from None
    except MemoryError:
        raise ContentRefused("the new engine does not load: out of memory") from None
    named = protect.named_by(db.blocklist)
    if named:
        raise ContentRefused(
            "the block list names what this agent runs on, refused (the agent does not "
            f"block itself or its interpreter): {'; '.join(named)}"
        )
    return db
