"""An export target as the exporter uses it (a snapshot of its row), and its transport."""

from __future__ import annotations

import datetime as dt
import ssl
from dataclasses import dataclass

from garrison.server.export.config import TargetOptions
from garrison.server.export.models import ExportTarget
from garrison.server.export.transports import (
    FileTransport,
    HttpTransport,
    RelpTransport,
    StreamTransport,
    Transport,
    TransportError,
    UdpTransport,
    tls_context,
)

SYSLOG_TRANSPORTS = ("udp", "tcp", "tls", "relp")


@dataclass(frozen=True)
class Target:
    id: int
    name: str
    format: str
    transport: str
    host: str
    port: int
    path: str
    url: str
    options: TargetOptions
    # When the row last changed: a consumer built from an older version is replaced.
    version: dt.datetime

    @classmethod
    def of(cls, row: ExportTarget) -> Target:
        return cls(
            row.id,
            row.name,
            row.format,
            row.transport,
            row.host,
            row.port,
            row.path,
            row.url,
            TargetOptions.model_validate(row.options),
            row.updated_at,
        )


def make_transport(target: Target) -> Transport:
    """The target's transport; a TLS file that cannot be read is a TransportError (retried,
    and named in the test-send answer)."""
    try:
        return _make_transport(target)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise TransportError(f"cannot set up the {target.transport} transport: {exc}") from exc


def _make_transport(target: Target) -> Transport:
    o = target.options
    if target.transport == "udp":
        return UdpTransport(target.host, target.port)
    if target.transport == "tcp":
        return StreamTransport(target.host, target.port)
    if target.transport == "tls":
        return StreamTransport(target.host, target.port, tls_context(o.model_dump()))
    if target.transport == "relp":
        tls = tls_context(o.model_dump()) if o.relp_tls else None
        return RelpTransport(target.host, target.port, tls)
    if target.transport == "file":
        return FileTransport(target.path, o.file_max_bytes, o.file_keep)
    return HttpTransport(target.url, o.http_headers, verify=o.tls_ca or o.tls_verify)
