"""UpdateSignatures: install signature files from a path or URL (``params.source``, or
``path``/``url``), check them, then reload the engine.  Without a source, reload what is there.
Files are checked in a temporary dir first: a broken update never replaces working files."""

from __future__ import annotations

import shutil
import tempfile
import urllib.parse
from pathlib import Path

import httpx

from garrison.agent.context import Agent
from garrison.agent.errors import JobError
from garrison.agent.jobstore import Job
from garrison.agent.scan.signatures import (
    HASH_SUFFIXES,
    YARA_SUFFIXES,
    SignatureError,
    validate_files,
)
from garrison.agent.tasks import state

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
    if creds and creds.token and url.startswith(agent.server_url.rstrip("/") + "/"):
        headers["Authorization"] = f"Bearer {creds.token}"
    target = into / name
    try:
        with httpx.stream("GET", url, headers=headers, timeout=60, follow_redirects=True) as resp:
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


def handle(agent: Agent, job: Job) -> str:
    source = _source(job)
    installed = install(agent, source) if source else []
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
    if installed:
        text = f"installed {', '.join(installed)}; " + text
    if db.yara_skipped:
        text += f" ({db.yara_skipped})"
    if db.skipped:
        text += f"; skipped, cannot evaluate: {db.skipped_summary}"
    return text
