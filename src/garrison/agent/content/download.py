"""Fetching a manifest's files: ``GET /api/content/files/<sha256>``, resumed with
``Range: bytes=N-`` after an interruption, or ``?base=<sha256>`` for a line delta applied to
the copy this agent has.  Whatever arrives, the result is kept only if its size and SHA-256
are the signed manifest's: the download channel itself is not trusted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from garrison.agent.content.errors import ContentDeferred, ContentRefused
from garrison.agent.content.store import disk_error
from garrison.agent.content.wire import HEX64, FileEntry
from garrison.agent.transport import Transport, api_url

CHUNK = 1 << 20
DELTA_FORMAT = "line-delta-1"
CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


@dataclass(frozen=True)
class Fetched:
    how: str  # full | resumed | delta
    received: int  # bytes over the wire


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def apply_delta(base: bytes, remove: list[str], add: list[str]) -> bytes:
    """Drop every line of ``base`` that ``remove`` lists, keep the others in their order,
    append ``add``; every line of the result ends with a newline (no line: empty)."""
    gone = {line.encode("utf-8") for line in remove}
    lines = base.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    kept = [line for line in lines if line not in gone]
    kept.extend(line.encode("utf-8") for line in add)
    return b"".join(line + b"\n" for line in kept)


def _delta(body: Any, entry: FileEntry, base_sha: str) -> tuple[list[str], list[str]]:
    if not isinstance(body, dict) or body.get("format") != DELTA_FORMAT:
        raise ContentDeferred(f"{entry.name}: the delta is not {DELTA_FORMAT}")
    if body.get("base") != base_sha or body.get("target") != entry.sha256:
        raise ContentDeferred(f"{entry.name}: the delta is for another base or target")
    remove, add = body.get("remove"), body.get("add")
    if not isinstance(remove, list) or not isinstance(add, list):
        raise ContentDeferred(f"{entry.name}: the delta has no remove/add arrays")
    if not all(isinstance(x, str) and "\n" not in x for x in [*remove, *add]):
        raise ContentDeferred(f"{entry.name}: a delta line is not a single line of text")
    return remove, add


def _write(entry: FileEntry, response: httpx.Response, path: Path, mode: str, have: int) -> int:
    """Append the body to ``path`` (holding ``have`` bytes), never past the signed size:
    what a server sends beyond it is not kept.  Returns the bytes received."""
    received, written = 0, have
    try:
        with open(path, mode) as handle:
            for chunk in response.iter_bytes():
                received += len(chunk)
                room = entry.size - written
                handle.write(chunk[:room])
                written += min(room, len(chunk))
                if len(chunk) >= room:
                    break
    except OSError as exc:
        raise disk_error(f"{entry.name}: cannot write the download", exc) from None
    return received


class Downloader:
    """One update's downloads over one connection."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def _url(self, sha256: str) -> str:
        return api_url(self.transport.base_url, f"content/files/{sha256}")

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.transport.identity.token:
            headers["Authorization"] = f"Bearer {self.transport.identity.token}"
        return headers

    def _status_error(self, entry: FileEntry, response: httpx.Response) -> ContentDeferred:
        with contextlib.suppress(httpx.HTTPError):
            response.read()
        text = response.text.strip()[:200] if response.content else response.reason_phrase
        return ContentDeferred(
            f"{entry.name}: the server answered {response.status_code} for its file ({text})"
        )

    # -- the whole file ------------------------------------------------------------------

    def fetch(self, entry: FileEntry, partial: Path) -> Fetched:
        """Download into ``partial``, resuming what is there; the finished file's size and
        hash are the entry's (else ContentRefused, and the partial file is dropped)."""
        have = partial.stat().st_size if partial.exists() else 0
        if have > entry.size:
            partial.unlink()
            have = 0
        received = 0
        if have < entry.size:
            received = self._get(entry, partial, have)
        self.check(entry, partial)
        return Fetched("resumed" if have else "full", received)

    def _get(self, entry: FileEntry, partial: Path, have: int) -> int:
        headers = self._headers({"Range": f"bytes={have}-"} if have else None)
        received = 0
        try:
            with self.transport.client.stream("GET", self._url(entry.sha256), headers=headers) as r:
                if r.status_code == 416 and have:
                    partial.unlink()  # the server's file is not what we hold a part of
                    raise ContentDeferred(f"{entry.name}: the server refused the resume (416)")
                if r.status_code == 206:
                    match = CONTENT_RANGE.match(r.headers.get("content-range", ""))
                    if match is None or int(match.group(1)) != have:
                        raise ContentDeferred(
                            f"{entry.name}: the server resumed at the wrong place "
                            f"({r.headers.get('content-range', 'no Content-Range')})"
                        )
                    mode = "ab"
                elif r.status_code == 200:
                    mode, have = "wb", 0  # the server sent the whole file
                else:
                    raise self._status_error(entry, r)
                received = _write(entry, r, partial, mode, have)
        except httpx.HTTPError as exc:
            got = partial.stat().st_size if partial.exists() else 0
            raise ContentDeferred(
                f"{entry.name}: download interrupted at {got} of {entry.size} bytes "
                f"({exc or type(exc).__name__}); it resumes at the next check-in"
            ) from None
        return received

    @staticmethod
    def check(entry: FileEntry, path: Path) -> None:
        size = path.stat().st_size
        if size < entry.size:
            raise ContentDeferred(
                f"{entry.name}: truncated download ({size} of {entry.size} bytes); "
                "it resumes at the next check-in"
            )
        if size > entry.size or _sha256_file(path) != entry.sha256:
            path.unlink()
            raise ContentRefused(
                f"{entry.name}: the file does not match the signed manifest "
                f"(size {size}, expected {entry.size} bytes with sha256 {entry.sha256[:16]}…): "
                "tampered with or corrupt"
            )

    # -- a delta -------------------------------------------------------------------------

    def fetch_delta(self, entry: FileEntry, base: Path, base_sha: str, out: Path) -> Fetched:
        """Ask for a delta from ``base``; the server may answer the whole file instead.
        A delta whose result is not the signed hash raises ContentDeferred (the caller then
        downloads the whole file)."""
        if not HEX64.match(base_sha):
            raise ContentDeferred(f"{entry.name}: no usable base")
        limit = max(2 * entry.size, 1 << 20) + (1 << 20)
        try:
            with self.transport.client.stream(
                "GET", self._url(entry.sha256), params={"base": base_sha}, headers=self._headers()
            ) as r:
                if r.status_code != 200:
                    raise self._status_error(entry, r)
                kind = r.headers.get("content-type", "").split(";")[0].strip().lower()
                if kind == "application/json":
                    chunks, size = [], 0
                    for chunk in r.iter_bytes():
                        size += len(chunk)
                        if size > limit:
                            raise ContentDeferred(f"{entry.name}: the delta is too large")
                        chunks.append(chunk)
                    body = b"".join(chunks)
                else:
                    received = _write(entry, r, out, "wb", 0)
                    self.check(entry, out)
                    return Fetched("full", received)
        except httpx.HTTPError as exc:
            raise ContentDeferred(
                f"{entry.name}: the delta download was interrupted ({exc or type(exc).__name__})"
            ) from None
        try:
            remove, add = _delta(json.loads(body), entry, base_sha)
        except ValueError:
            raise ContentDeferred(f"{entry.name}: the delta is not JSON") from None
        try:
            result = apply_delta(base.read_bytes(), remove, add)
        except OSError as exc:
            raise disk_error(f"{entry.name}: cannot read the delta's base", exc) from None
        if len(result) != entry.size or hashlib.sha256(result).hexdigest() != entry.sha256:
            raise ContentDeferred(f"{entry.name}: the delta's result is not the signed file")
        try:
            with open(out, "wb") as handle:
                handle.write(result)
        except OSError as exc:
            with contextlib.suppress(OSError):
                out.unlink()
            raise disk_error(f"{entry.name}: cannot write the file", exc) from None
        return Fetched("delta", len(body))


def sync_file(path: Path) -> None:
    """fsync a finished file before it is made live."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
