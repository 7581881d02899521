"""Zip archives scanned inside, with limits that keep a zip bomb harmless."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
MAX_MEMBERS = 10_000
MAX_DEPTH = 3


@dataclass(frozen=True)
class Member:
    name: str  # "inner.zip/eicar.com" for nested archives
    data: bytes


class ArchiveError(Exception):
    pass


def is_zip(data: bytes) -> bool:
    return data[:4] in ZIP_MAGIC


def members(
    data: bytes, max_member_size: int, depth: int = 1, prefix: str = ""
) -> Iterator[Member | ArchiveError]:
    """Each member's bytes (nested zips opened up to MAX_DEPTH); problems are yielded, not
    raised, so one bad member does not hide the others."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        yield ArchiveError(f"{prefix or 'archive'}: not a readable zip ({exc})")
        return
    with archive:
        infos = [i for i in archive.infolist() if not i.is_dir()]
        if len(infos) > MAX_MEMBERS:
            yield ArchiveError(
                f"{prefix or 'archive'}: more than {MAX_MEMBERS} members, rest skipped"
            )
            infos = infos[:MAX_MEMBERS]
        for info in infos:
            name = f"{prefix}{info.filename}"
            if info.flag_bits & 0x1:
                yield ArchiveError(f"{name}: encrypted member, not scanned")
                continue
            if info.file_size > max_member_size:
                yield ArchiveError(f"{name}: larger than the archive member limit, not scanned")
                continue
            try:
                with archive.open(info) as handle:
                    # Read one byte past the limit: a lying header cannot inflate forever.
                    content = handle.read(max_member_size + 1)
            except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError, ValueError) as exc:
                yield ArchiveError(f"{name}: cannot extract ({exc})")
                continue
            if len(content) > max_member_size:
                yield ArchiveError(f"{name}: larger than the archive member limit, not scanned")
                continue
            yield Member(name, content)
            if is_zip(content) and depth < MAX_DEPTH:
                yield from members(content, max_member_size, depth + 1, f"{name}/")
