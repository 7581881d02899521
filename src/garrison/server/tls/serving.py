"""What ``garrison serve`` needs to serve HTTPS: the listening SSL context, the fingerprint to
print, and the periodic refresh that renews the certificate and reloads the revocation list
without a restart.

uvicorn binds one SSL context for the life of the listener, so that context never changes:
its SNI callback (which OpenSSL calls on every handshake, with or without a server name)
moves each new connection onto the context built from the current files.  Connections
already open keep theirs; agents notice nothing but a new leaf signed by the same CA.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from garrison.server.settings import Settings
from garrison.server.tls.authority import (
    Authority,
    cert_names,
    fingerprint,
    load_chain,
    utcnow,
)

log = structlog.get_logger("garrison.server")

CRL_LIFETIME = dt.timedelta(days=30)


def tls_dir(settings: Settings) -> Path:
    return settings.data_dir / "tls"


def server_names(settings: Settings) -> list[str]:
    """The names the generated certificate holds: the bound address (the loopback ones for
    a wildcard), this host's names, and the operator's ``GARRISON_TLS_NAMES``."""
    names = [n.strip() for n in settings.tls_names.split(",") if n.strip()]
    host = settings.host.strip("[]")
    if host not in ("", "0.0.0.0", "::"):  # noqa: S104 (a comparison, not a bind)
        names.append(host)
    names += ["localhost", "127.0.0.1", "::1"]
    for name in (socket.gethostname(), socket.getfqdn()):
        names.append(name)
        with contextlib.suppress(OSError):
            names += [str(info[4][0]) for info in socket.getaddrinfo(name, None)]
    return names


def anchor_pem(settings: Settings) -> bytes:
    """What agents pin: the CA's certificate, or the top of the operator's own chain (its
    CA, or the certificate itself when it is self-signed)."""
    if settings.tls_cert_file is None:
        return (tls_dir(settings) / "ca.pem").read_bytes()
    return load_chain(settings.tls_cert_file)[-1].public_bytes(serialization.Encoding.PEM)


@dataclass
class ServerTls:
    """The server's TLS state in one process.  ``anchor_pem``: what agents pin (the CA, or
    the top of an operator's own chain), served at ``GET /api/tls/ca``."""

    settings: Settings
    authority: Authority
    created: bool
    cert_file: Path
    key_file: Path
    listening: ssl.SSLContext = field(init=False)
    _current: ssl.SSLContext = field(init=False)
    _seen: tuple[int, int] = (0, 0)
    _revoked: frozenset[str] = frozenset()
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def own_certificate(self) -> bool:
        return self.settings.tls_cert_file is not None

    @property
    def anchor_pem(self) -> bytes:
        return anchor_pem(self.settings)

    @property
    def fingerprint(self) -> str:
        return fingerprint(x509.load_pem_x509_certificate(self.anchor_pem))

    @property
    def anchor_file(self) -> Path:
        """Where what agents pin is: ``ca.pem``, or the operator's chain (its last one)."""
        return self.cert_file if self.own_certificate else self.authority.ca_file

    @classmethod
    def prepare(cls, settings: Settings) -> ServerTls:
        """Open (first: create) the CA, make sure a valid server certificate exists, and
        build the listening context.  ValueError/OSError say what cannot be used."""
        if settings.tls_renew_before_seconds >= settings.tls_cert_lifetime_seconds:
            raise ValueError(
                "GARRISON_TLS_RENEW_BEFORE_SECONDS must be less than "
                "GARRISON_TLS_CERT_LIFETIME_SECONDS (the certificate would renew at once)"
            )
        authority, created = Authority.open(tls_dir(settings))
        if settings.tls_cert_file is not None:
            if settings.tls_key_file is None:
                raise ValueError("--tls-cert needs --tls-key (GARRISON_TLS_KEY_FILE)")
            cert_file, key_file = settings.tls_cert_file, settings.tls_key_file
        else:
            cert_file, key_file = authority.server_cert_file, authority.server_key_file
        tls = cls(settings, authority, created, cert_file, key_file)
        tls.renew_if_due()
        if not authority.crl_file.exists():
            authority.write_crl((), CRL_LIFETIME)
        tls._current = tls._build()
        tls.listening = tls._build()
        tls.listening.sni_callback = tls._select
        return tls

    # -- contexts --------------------------------------------------------------------------

    def _build(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
        except ssl.SSLError as exc:
            raise ValueError(
                f"the certificate {self.cert_file} and key {self.key_file} do not load: {exc}"
            ) from None
        if self.settings.tls_client_certs:
            # Optional at the handshake (an agent enrolls before it has a certificate); a
            # certificate presented must chain to the CA and not be revoked.
            context.verify_mode = ssl.CERT_OPTIONAL
            context.load_verify_locations(cafile=self.authority.ca_file)
            context.load_verify_locations(cafile=self.authority.crl_file)
            context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
        self._seen = self._stamp()
        return context

    def _select(self, sslobj: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext) -> None:
        sslobj.context = self._current

    def _stamp(self) -> tuple[int, int]:
        stamps = []
        for path in (self.cert_file, self.authority.crl_file):
            try:
                stamps.append(path.stat().st_mtime_ns)
            except OSError:
                stamps.append(0)
        return stamps[0], stamps[1]

    # -- renewal and revocation ---------------------------------------------------------------

    @contextlib.contextmanager
    def _files_lock(self) -> Iterator[None]:
        """Between the processes sharing the data dir (workers, a second node on it)."""
        with open(self.authority.directory / ".lock", "a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def renew_if_due(self) -> bool:
        """Reissue the generated server certificate when missing, within
        ``tls_renew_before_seconds`` of its end, or missing one of the names it should hold.
        An operator's own certificate is never reissued (only reloaded when it changes)."""
        if self.own_certificate:
            return False
        lifetime = dt.timedelta(seconds=self.settings.tls_cert_lifetime_seconds)
        before = dt.timedelta(seconds=self.settings.tls_renew_before_seconds)
        wanted = server_names(self.settings)
        with self._files_lock():
            reason = self._renewal_reason(wanted, before)
            if reason is None:
                return False
            self.authority.write_server(wanted, lifetime)
        log.info("tls_certificate_issued", reason=reason, file=str(self.cert_file))
        return True

    def _renewal_reason(self, wanted: list[str], before: dt.timedelta) -> str | None:
        try:
            leaf = load_chain(self.cert_file)[0]
        except (OSError, ValueError, IndexError):
            return "missing"
        if not self.key_file.exists():
            return "missing"
        if leaf.issuer != self.authority.cert.subject:
            return "another CA"
        if leaf.not_valid_after_utc - utcnow() < before:
            return "expiring"
        have = cert_names(leaf)
        if any(name.strip("[]").lower() not in have for name in wanted):
            return "new names"
        return None

    def revoke(self, serials: Iterable[str]) -> bool:
        """Make ``serials`` the revoked client certificates (mutual TLS); True when the
        list changed."""
        revoked = frozenset(serials)
        if revoked == self._revoked and not self._crl_ageing():
            return False
        with self._files_lock():
            self.authority.write_crl(revoked, CRL_LIFETIME)
        self._revoked = revoked
        log.info("tls_revocations_updated", revoked=len(revoked))
        return True

    def _crl_ageing(self) -> bool:
        """Past half its validity: rewritten, or it would expire and with it every client
        certificate (OpenSSL refuses all of an issuer's once its CRL is out of date)."""
        try:
            written = self.authority.crl_file.stat().st_mtime
        except OSError:
            return True
        return time.time() - written > CRL_LIFETIME.total_seconds() / 2

    def refresh(self, revoked: Iterable[str] | None = None) -> bool:
        """Renew when due, take the revoked serials, and move new connections onto a context
        of the current files when they changed (here or in another process).  True then."""
        with self._lock:
            self.renew_if_due()
            if revoked is not None:
                self.revoke(revoked)
            if self._stamp() == self._seen:
                return False
            self._current = self._build()
        log.info("tls_context_reloaded", certificate=str(self.cert_file))
        return True

    def run_refresher(
        self, revoked: Callable[[], Iterable[str]] | None, stop: threading.Event
    ) -> threading.Thread:
        """A daemon thread calling :meth:`refresh` every ``tls_refresh_seconds`` until
        ``stop`` is set; a failed round is logged and retried at the next."""

        def loop() -> None:
            while not stop.wait(self.settings.tls_refresh_seconds):
                try:
                    self.refresh(revoked() if revoked is not None else None)
                except Exception as exc:
                    log.warning("tls_refresh_failed", error=str(exc))

        thread = threading.Thread(target=loop, name="tls-refresh", daemon=True)
        thread.start()
        return thread
