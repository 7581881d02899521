"""A collected file as the download administrators get: a zip encrypted with AES-256 under
the password ``infected`` (the convention for malware samples), so that neither a browser
nor a desktop antivirus acts on the sample on its way (pyzipper writes WinZip AES, which
7-Zip and most archive tools open)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from typing import IO

import pyzipper

PASSWORD = b"infected"
IN_MEMORY = 8 << 20


def password_zip(member: str, chunks: Iterable[bytes]) -> IO[bytes]:
    """The zip, in a temporary file (in memory up to 8 MiB), positioned at its start."""
    out = tempfile.SpooledTemporaryFile(max_size=IN_MEMORY)  # noqa: SIM115 (returned open)
    with pyzipper.AESZipFile(
        out, "w", compression=pyzipper.ZIP_DEFLATED, encryption=pyzipper.WZ_AES
    ) as archive:
        archive.setpassword(PASSWORD)
        archive.setencryption(pyzipper.WZ_AES, nbits=256)
        with archive.open(member, "w") as entry:
            for chunk in chunks:
                entry.write(chunk)
    out.seek(0)
    return out
