"""UpdateSignatures.

Without a source: fetch the signed content the server assigns now (``content/sync.py``),
even a manifest refused before, and report its failure again; against a server that signs
no content, reload what is there.

With a source (``params.source``, or ``path``/``url``: a file, a directory, an http(s) URL):
unsigned, so refused unless the signed manifest in force allows unsigned sources for this
station (its group's policy); a plain-HTTP URL is refused by the same rule.  When allowed,
files are checked in a temporary dir first: a broken update never replaces working files."""

from __future__ import annotations

import logging
import shutil
import ssl
import tempfile
import urllib.parse
from pathlib import Path

import httpx

from garrison.agent import trust
from garrison.agent.content import sync as contentsync
from garrison.agent.content.store import ContentStore
from garrison.agent.context import Agent
from garrison.agent.errors import AgentError, JobError
from garrison.agent.jobstore import Job
from garrison.agent.scan.signatures import (
    HASH_SUFFIXES,
    YARA_SUFFIXES,
    SignatureDB,
    SignatureError,
    validate_files,
)
from garrison.agent.tasks import state

log = logging.getLogger("garrison.agent.signatures")
MAX_DOWNLOAD = 256 * 1024 * 1024
SUFFIXES = (*HASH_SUFFIXES, *YARA_SUFFIXES)


def _source(job: Job) -> str:
    if not isinstance(job.obj, dict):
        return ""
    for key in ("source", "url", "path"):
        value = job.obj.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def _download(agent: Agent, url: str, into: Path) -> list[Path]:
    name = Path(urllib.parse.urlparse(url).path).name
    if Path(name).suffix.lower() not in SUFFIXES:
        raise JobError(f"{url}: the file name must end in {', '.join(SUFFIXES)}")
    headers = {}
    creds = agent.state.credentials()
    verify: ssl.SSLContext | bool = True
    if creds and creds.token and url.startswith(agent.server_url.rstrip("/") + "/"):
        headers["Authorization"] = f"Bearer {creds.token}"
        # The agent's own server: trusted as every other request to it (the pinned CA).
        verify = trust.verify_for(agent.state, agent.config.server.ca_sha256, url)
    target = into / name
    try:
        with httpx.stream(
            "GET", url, headers=headers, timeout=60, follow_redirects=True, verify=verify
        ) as resp:
            if resp.status_code != 200:
                raise JobError(f"{url}: download failed ({resp.status_code})")
            size = 0
            with open(target, "wb") as handle:
                for chunk in resp.iter_bytes():
                    size += len(chunk)
                    if size > MAX_DOWNLOAD:
                        raise JobError(f"{url}: larger than {MAX_DOWNLOAD} bytes")
                    handle.write(chunk)
    except httpx.HTTPError as exc:
        raise JobError(f"{url}: download failed ({exc})") from None
    return [target]


def _copy(source: Path, into: Path) -> list[Path]:
    if source.is_dir():
        files = [
            p for p in sorted(source.iterdir()) if p.is_file() and p.suffix.lower() in SUFFIXES
        ]
        if not files:
            raise JobError(f"{source}: no .hdb, .hsb, .yar or .yara file in it")
    elif source.is_file():
        files = [source]
    else:
        raise JobError(f"{source}: no such file or directory")
    out = []
    for path in files:
        target = into / path.name
        try:
            shutil.copyfile(path, target)
        except OSError as exc:
            raise JobError(f"{path}: {exc.strerror}") from None
        out.append(target)
    return out


def install(agent: Agent, source: str) -> list[str]:
    live = agent.state.signatures_dir
    live.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(dir=agent.state.path) as tmp:
        staging = Path(tmp)
        if source.startswith(("http://", "https://")):
            files = _download(agent, source, staging)
        else:
            files = _copy(Path(source), staging)
        try:
            validate_files(files)
        except SignatureError as exc:
            raise JobError(f"signature update refused: {exc}") from None
        for path in files:
            path.replace(live / path.name)  # same file system: atomic
    return [p.name for p in files]


def _policy_refusal(agent: Agent, source: str) -> str | None:
    """Why a source is refused, or None when the content policy allows unsigned sources."""
    try:  # the policy in force now: an administrator may just have changed it
        contentsync.update(agent)
    except AgentError as exc:
        log.warning("UpdateSignatures: the content policy could not be refreshed: %s", exc.message)
    found = ContentStore(agent.state).installed()
    if found is not None and found.manifest.allow_unsigned_sources:
        return None
    what = "a plain-HTTP URL" if source.lower().startswith("http://") else "an unsigned source"
    return (
        f"UpdateSignatures refused: {source} is {what}; this station accepts only the signed "
        "content its server assigns (an administrator can allow unsigned sources for its "
        "station group)"
    )


def _assigned(agent: Agent) -> str:
    try:
        outcome = contentsync.update(agent, force=True)
    except AgentError as exc:
        raise JobError(f"signed content: {exc.message}") from None
    if outcome.failed:
        raise JobError(f"signature update failed: {outcome.message}")
    if outcome.status == "installed" and outcome.db is not None:
        return f"{outcome.message}{_skipped(outcome.db)}"
    # Unchanged, or a server without signed content: reload what is there.
    return _reload(agent, outcome.message)


def _skipped(db: SignatureDB) -> str:
    """What the engine could not take: YARA rules refused, ClamAV kinds it cannot evaluate."""
    text = f" ({db.yara_skipped})" if db.yara_skipped else ""
    if db.skipped:
        text += f"; skipped, cannot evaluate: {db.skipped_summary}"
    return text


def _reload(agent: Agent, prefix: str) -> str:
    try:
        db = agent.reload_signatures()
    except SignatureError as exc:
        raise JobError(f"signature database does not load: {exc}") from None
    # The new bases' version and record counts reach the server now (virus_bases_received),
    # not at the next scheduled State.
    state.run(agent)
    text = (
        f"signatures {db.version}: {db.hash_count} hash, {db.ndb.count} ClamAV body and"
        f" {db.yara_count} YARA record(s)"
    )
    return f"{prefix}; {text}{_skipped(db)}" if prefix else text + _skipped(db)


def handle(agent: Agent, job: Job) -> str:
    source = _source(job)
    if not source:
        return _assigned(agent)
    refusal = _policy_refusal(agent, source)
    if refusal:
        raise JobError(refusal)
    log.warning("UpdateSignatures: installing from %s, unsigned (allowed by policy)", source)
    installed = install(agent, source)
    return _reload(agent, f"installed {', '.join(installed)} (unsigned)")
