"""The one-line install for an endpoint: ``garrison-agent install --server URL
--ca-sha256 HEX --key KEY``, for an enrollment key (admin API, CLI and console).

It runs as root on the endpoint.  The server URL is the public URL when one is set
(``GARRISON_PUBLIC_URL``), else the one the administrator reached this server at (https
when it serves TLS).  The pin (https URLs only) is
the SHA-256 of the CA certificate at ``<data-dir>/tls/ca.pem``, left out when there is none
(TLS ended by a proxy).  A key is stored hashed: the command holds the full key only when
it was asked for by the key's text (or at creation); asked for by id, it holds the key's
first group followed by ``XXXXX`` groups to fill in (``key_included`` false).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from garrison.server.enrollment.models import EnrollmentKey
from garrison.server.enrollment.service import KEY_RE, key_status, shown
from garrison.server.errors import ConflictError
from garrison.server.tls.authority import fingerprint

PROGRAM = "garrison-agent"


def server_url(public_url: str, base_url: str) -> str:
    """The URL put in the command: the public URL setting, else the request's base URL."""
    return (public_url or base_url).rstrip("/")


def ca_file(data_dir: Path) -> Path:
    return data_dir / "tls" / "ca.pem"


def ca_sha256(path: Path) -> str | None:
    """SHA-256 (hex) of the DER certificate in the PEM file; None when there is no file.
    A file that holds no certificate raises ValueError (a command with a wrong pin, or
    none, would hide it)."""
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        return None
    return fingerprint(x509.load_pem_x509_certificate(pem))


@dataclass(frozen=True)
class InstallCommand:
    command: str
    server_url: str
    ca_sha256: str | None
    key_included: bool


def for_key(
    key: EnrollmentKey, key_text: str | None, server_url: str, data_dir: Path
) -> InstallCommand:
    """``key_text``: the full key when the caller has it (it is checked to be this key's
    format); else the command names the key by its first group."""
    status = key_status(key)
    if status != "active":
        raise ConflictError(f"key {shown(key)} is {status}: no station can enroll with it")
    text = key_text.strip().upper() if key_text else ""
    included = bool(KEY_RE.match(text)) and text.startswith(key.key_prefix)
    shown_key = text if included else key.key_prefix + "-XXXXX" * 4
    url = server_url.rstrip("/")
    pin = None
    if url.startswith("https://"):  # a pin with an http:// URL is refused by the agent
        try:
            pin = ca_sha256(ca_file(data_dir))
        except ValueError as exc:  # no PEM certificate in the file: no wrong pin
            raise ConflictError(
                f"cannot read the CA certificate {ca_file(data_dir)}: {exc}"
            ) from None
    words = [PROGRAM, "install", "--server", url]
    if pin is not None:
        words += ["--ca-sha256", pin]
    words += ["--key", shown_key]
    return InstallCommand(shlex.join(words), url, pin, included)
