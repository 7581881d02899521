"""An export target as the exporter uses it (a snapshot of its row), and its transport."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from garrison.server.export.config import TargetOptions
from garrison.server.export.confinement import Confinement, ConfinementError
from garrison.server.export.models import ExportTarget
from garrison.server.export.policy import ExportPolicy
from garrison.server.export.secrets import SecretsUnreadableError
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
    # With the secrets opened: what the transport sends.
    options: TargetOptions
    # When the row last changed: a consumer built from an older version is replaced.
    version: dt.datetime
    # Why the secrets could not be opened (the transport is then not made), or None.
    secrets_error: str | None = None

    @classmethod
    def of(cls, row: ExportTarget, policy: ExportPolicy) -> Target:
        headers = dict((row.options or {}).get("http_headers") or {})
        error = None
        try:
            for name, sealed in ((row.secrets or {}).get("http_headers") or {}).items():
                headers[str(name)] = policy.box.open(str(sealed))
        except SecretsUnreadableError as exc:
            error = str(exc)
        return cls(
            row.id,
            row.name,
            row.format,
            row.transport,
            row.host,
            row.port,
            row.path,
            row.url,
            TargetOptions.model_validate({**(row.options or {}), "http_headers": headers}),
            row.updated_at,
            error,
        )


def make_transport(target: Target, confinement: Confinement) -> Transport:
    """The target's transport; a TLS file that cannot be read, or an address or path the
    confinement refuses, is a TransportError (retried, and named in the test-send answer)."""
    if target.secrets_error is not None:
        raise TransportError(target.secrets_error)
    try:
        return _make_transport(target, confinement)
    except ConfinementError as exc:
        raise TransportError(exc.message, refused=True) from None
    except (OSError, ValueError) as exc:
        raise TransportError(f"cannot set up the {target.transport} transport: {exc}") from exc


def _make_transport(target: Target, confinement: Confinement) -> Transport:
    o = target.options
    if target.transport == "udp":
        return UdpTransport(target.host, target.port, confinement)
    if target.transport == "tcp":
        return StreamTransport(target.host, target.port, confinement=confinement)
    if target.transport == "tls":
        context = tls_context(o.model_dump())
        return StreamTransport(target.host, target.port, context, confinement=confinement)
    if target.transport == "relp":
        tls = tls_context(o.model_dump()) if o.relp_tls else None
        return RelpTransport(target.host, target.port, tls, confinement=confinement)
    if target.transport == "file":
        return FileTransport(target.path, o.file_max_bytes, o.file_keep, confinement)
    custom_tls = o.tls_ca or o.tls_cert or not o.tls_verify
    verify = tls_context(o.model_dump()) if custom_tls else True
    return HttpTransport(target.url, o.http_headers, verify=verify, confinement=confinement)
