"""The server's own certificate authority (``cryptography``): the CA, the server certificate
it signs, the per-station client certificates and the revocation list.

Files, all under ``<data-dir>/tls/`` (0700; the keys 0600):

    ca.pem, ca-key.pem          the CA (ten years); ca.pem is what agents pin
    server.pem, server-key.pem  the server certificate (leaf + CA chain), renewed in place
    crl.pem                     serials of revoked client certificates (mutual TLS)

Agents pin the SHA-256 of the CA's DER encoding, so the server certificate can be reissued
(renewal, a new address) without any agent noticing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from garrison.server.errors import InvalidInputError

CA_LIFETIME = dt.timedelta(days=3650)
# Certificates are valid from a little before they are made: clocks differ.
BACKDATE = dt.timedelta(minutes=5)
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, lower-case hex: what ``--ca-sha256`` takes."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def write_file(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Atomic (temp file, rename): a process loading the pair never reads half of it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def san_entries(names: Iterable[str]) -> list[x509.GeneralName]:
    """Host names and addresses, each once, addresses as IP entries (a client connecting to
    127.0.0.1 checks an IP SAN, never a DNS one)."""
    entries: list[x509.GeneralName] = []
    seen: set[str] = set()
    for raw in names:
        name = raw.strip().strip("[]")
        if not name or name.lower() in seen:
            continue
        seen.add(name.lower())
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return entries


def cert_names(cert: x509.Certificate) -> set[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    names = {str(n).lower() for n in san.get_values_for_type(x509.DNSName)}
    names |= {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    return names


@dataclass(frozen=True)
class Issued:
    cert_pem: str
    serial: str  # hex
    not_after: dt.datetime


@dataclass
class Authority:
    """The CA: its certificate and key, loaded from (or first written to) ``directory``."""

    directory: Path
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def server_cert_file(self) -> Path:
        return self.directory / "server.pem"

    @property
    def server_key_file(self) -> Path:
        return self.directory / "server-key.pem"

    @property
    def crl_file(self) -> Path:
        return self.directory / "crl.pem"

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.cert)

    @property
    def ca_pem(self) -> bytes:
        return _pem(self.cert)

    @classmethod
    def open(cls, directory: Path) -> tuple[Authority, bool]:
        """The CA of ``directory``, created there when it has none; True when created."""
        cert_file, key_file = directory / "ca.pem", directory / "ca-key.pem"
        if cert_file.exists() and key_file.exists():
            return cls(directory, *_load_ca(cert_file, key_file)), False
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        directory.chmod(0o700)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Garrison"),
                x509.NameAttribute(NameOID.COMMON_NAME, "Garrison CA"),
            ]
        )
        now = utcnow()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + CA_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        # The key first: a ca.pem without its key would be taken for a complete CA.
        write_file(key_file, _key_pem(key))
        write_file(cert_file, _pem(cert), 0o644)
        return cls(directory, cert, key), True

    def _leaf(
        self,
        subject: x509.Name,
        public_key: ec.EllipticCurvePublicKey,
        lifetime: dt.timedelta,
        usage: x509.ObjectIdentifier,
        names: list[x509.GeneralName] | None = None,
        now: dt.datetime | None = None,
    ) -> x509.Certificate:
        now = now or utcnow()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(min(now + lifetime, self.cert.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), False
            )
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def issue_server(
        self, names: Iterable[str], lifetime: dt.timedelta, now: dt.datetime | None = None
    ) -> tuple[bytes, bytes]:
        """(certificate chain PEM, key PEM) for ``names`` (host names and addresses)."""
        entries = san_entries(names)
        key = ec.generate_private_key(ec.SECP256R1())
        first = str(entries[0].value) if entries else "garrison"
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, first[:64])])
        cert = self._leaf(
            subject, key.public_key(), lifetime, ExtendedKeyUsageOID.SERVER_AUTH, entries, now
        )
        return _pem(cert) + self.ca_pem, _key_pem(key)

    def write_server(self, names: Iterable[str], lifetime: dt.timedelta) -> None:
        chain, key = self.issue_server(names, lifetime)
        # The key first, then the certificate: a reader that finds a new certificate finds
        # its key too (see serving.ServerTls, which reloads when server.pem changes).
        write_file(self.server_key_file, key)
        write_file(self.server_cert_file, chain)

    def sign_client(self, csr_pem: str, station_uuid: str, lifetime: dt.timedelta) -> Issued:
        """A client certificate for the station's own key (its CSR, whose signature proves
        it holds the key); the subject is the station's uuid, whatever the CSR asked."""
        try:
            csr = x509.load_pem_x509_csr(csr_pem.encode())
        except ValueError:
            raise InvalidInputError("csr is not a PEM certificate request", field="csr") from None
        if not csr.is_signature_valid:
            raise InvalidInputError("the csr's signature does not verify", field="csr")
        public_key = csr.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise InvalidInputError("the csr's key must be an EC key", field="csr")
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Garrison station"),
                x509.NameAttribute(NameOID.COMMON_NAME, station_uuid[:64]),
            ]
        )
        cert = self._leaf(subject, public_key, lifetime, ExtendedKeyUsageOID.CLIENT_AUTH)
        return Issued(
            _pem(cert).decode(), format(cert.serial_number, "x"), cert.not_valid_after_utc
        )

    def write_crl(self, revoked_serials: Iterable[str], lifetime: dt.timedelta) -> None:
        """A CRL listing ``revoked_serials`` (hex); an empty one too: with revocation checks
        on, OpenSSL refuses every client certificate whose issuer has no CRL."""
        now = utcnow()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(now - BACKDATE)
            .next_update(now + lifetime)
        )
        for serial in sorted(set(revoked_serials)):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(int(serial, 16))
                .revocation_date(now - BACKDATE)
                .build()
            )
        crl = builder.sign(self.key, hashes.SHA256())
        write_file(self.crl_file, crl.public_bytes(serialization.Encoding.PEM), 0o644)


def _load_ca(
    cert_file: Path, key_file: Path
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except ValueError as exc:
        raise ValueError(f"the CA in {cert_file.parent} does not load: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_file} does not hold the EC key of a Garrison CA")
    return cert, key


def load_chain(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())
