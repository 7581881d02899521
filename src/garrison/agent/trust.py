"""The agent's trust in its server: the pinned CA, and its own client certificate.

``[server] ca_sha256`` in agent.toml is the pin: the SHA-256 of the DER certificate the
server prints at its first start (its CA).  The certificate itself is kept in the state dir
(``server-ca.pem``), fetched once from ``GET /api/tls/ca`` over a connection that is not yet
trusted and kept only when its digest is the pin.  From then on the server's chain is
verified against that certificate alone (not the system's CAs), host name included, so a
certificate not signed by it is refused however valid it is elsewhere.  With a pin, plain
``http://`` is refused: a proxy cannot downgrade the agent.
"""

from __future__ import annotations

import hashlib
import re
import ssl
from collections.abc import Callable
from pathlib import Path

import httpx

from garrison.agent.errors import UnreachableError, UsageProblem
from garrison.agent.state import StateDir, write_private

CA_FILE = "server-ca.pem"
CLIENT_CERT = "client.pem"
CLIENT_KEY = "client-key.pem"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
# OpenSSL's verify codes the messages below explain.
_EXPIRED, _NOT_YET_VALID = 10, 9
_UNTRUSTED = {18, 19, 20, 21}
_HOST_MISMATCH = {62, 64}  # host name, IP address


class TlsError(UnreachableError):
    """The server could not be trusted: nothing was sent, and what is queued stays queued."""


def normalize_pin(text: str) -> str:
    pin = re.sub(r"[\s:]", "", text).lower().removeprefix("sha256")
    if not _HEX64.match(pin):
        raise UsageProblem(
            f"--ca-sha256 must be 64 hex digits (the SHA-256 garrison serve prints), not {text!r}"
        )
    return pin


def pem_fingerprint(pem: str) -> str:
    """SHA-256 of the DER form of the first certificate in ``pem``."""
    try:
        der = ssl.PEM_cert_to_DER_cert(pem.strip())
    except ValueError:
        raise TlsError("the server's CA certificate is not a PEM certificate") from None
    return hashlib.sha256(der).hexdigest()


def ca_path(state: StateDir) -> Path:
    return state.path / CA_FILE


def fetch_anchor(url: str) -> str:
    """The certificate the server says agents pin, read without trusting it yet: the
    caller trusts it only when its digest is the pin."""
    if not url.startswith("https://"):
        raise TlsError(f"the server's CA is only fetched over https://, not {url}")
    try:
        response = httpx.get(f"{url.rstrip('/')}/api/tls/ca", verify=False, timeout=10)  # noqa: S501
    except httpx.HTTPError as exc:
        refused = tls_failure(exc, url, False)
        if refused is not None:
            raise refused from None
        raise UnreachableError(f"server {url} unreachable: {exc or type(exc).__name__}") from None
    if response.status_code != 200:
        raise TlsError(
            f"server {url} did not give its CA certificate (GET /api/tls/ca answered "
            f"{response.status_code}); is it a Garrison server with TLS on?"
        )
    return response.text


def check_anchor(pem: str, pin: str, url: str) -> str:
    got = pem_fingerprint(pem)
    if got != pin:
        raise TlsError(
            f"the CA of server {url} has SHA-256 {got}, not the pinned {pin}: refusing it "
            "(a different server, or someone in between); nothing was changed"
        )
    return pem


def trust_anchor(state: StateDir, pin: str, url: str) -> str:
    """The pinned CA's PEM: the stored one when it matches the pin, else fetched from the
    server and checked (then stored)."""
    path = ca_path(state)
    try:
        stored = path.read_text()
    except OSError:
        stored = ""
    if stored and pem_fingerprint(stored) == pin:
        return stored
    pem = check_anchor(fetch_anchor(url), pin, url)
    write_private(path, pem.encode())
    return pem


class PinnedContext(ssl.SSLContext):
    """A client context trusting the pinned CA alone; ``client_cert``: whether it presents
    the station's certificate (so a closed connection can be explained)."""

    client_cert = False


def context(anchor_pem: str, state: StateDir | None = None) -> PinnedContext:
    """Verify against ``anchor_pem`` only (host name included); present the station's
    client certificate when it has one (mutual TLS)."""
    ctx = PinnedContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies chain and host name
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_verify_locations(cadata=anchor_pem)
    except ssl.SSLError as exc:
        raise TlsError(f"the pinned CA certificate does not load: {exc}") from None
    # The pinned certificate is a trust anchor even when it is not self-signed (an
    # operator's own chain whose top is an intermediate).
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    if state is not None:
        cert, key = state.path / CLIENT_CERT, state.path / CLIENT_KEY
        if cert.exists() and key.exists():
            try:
                ctx.load_cert_chain(cert, key)
            except (OSError, ssl.SSLError) as exc:
                raise TlsError(f"the client certificate {cert} does not load: {exc}") from None
            ctx.client_cert = True
    return ctx


def verify_for(state: StateDir, pin: str, url: str) -> ssl.SSLContext | bool:
    """What httpx verifies the server with: the pinned CA; the system's CAs when nothing
    is pinned.  A pin with an ``http://`` URL is a downgrade, refused."""
    if url.startswith("http://"):
        if pin:
            raise TlsError(
                f"refusing plain HTTP to {url}: this agent pins the server's CA "
                "([server] ca_sha256 in agent.toml), so it talks https:// only"
            )
        return True
    if not pin:
        return True
    return context(trust_anchor(state, pin, url), state)


def tls_failure(exc: BaseException, url: str, verify: ssl.SSLContext | bool) -> TlsError | None:
    """The TLS reason behind an httpx error, in words, or None when it was not TLS."""
    pinned = isinstance(verify, PinnedContext)
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ssl.SSLError):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        if (
            isinstance(verify, PinnedContext)
            and verify.client_cert
            and isinstance(exc, httpx.RemoteProtocolError)
        ):
            # TLS 1.3: a server refusing the client certificate closes the connection after
            # the handshake, and the client may only see the close.
            return TlsError(
                f"server {url} closed the connection without an answer: with mutual TLS on, "
                "that is how it refuses a revoked client certificate (the station was "
                "deleted, or a newer certificate issued); if so, enroll again"
            )
        return None
    if isinstance(cause, ssl.SSLCertVerificationError):
        code, message = cause.verify_code, cause.verify_message
        if code == _EXPIRED:
            text = f"the certificate of server {url} has expired"
        elif code == _NOT_YET_VALID:
            text = f"the certificate of server {url} is not valid yet (check the clocks)"
        elif code in _HOST_MISMATCH:
            text = f"the certificate of server {url} is not for this host ({message})"
        elif code in _UNTRUSTED and pinned:
            text = (
                f"the certificate of server {url} is not signed by the pinned CA "
                "([server] ca_sha256): refusing it; if the server's CA really changed, "
                "enroll again with its new --ca-sha256"
            )
        elif code in _UNTRUSTED:
            text = (
                f"the certificate of server {url} is not trusted by this machine ({message}): "
                "enroll with --ca-sha256 HEX (printed by garrison serve at its first start) "
                "or, knowingly, --trust-on-first-use"
            )
        else:
            text = f"the certificate of server {url} was refused: {message}"
        return TlsError(text)
    reason = getattr(cause, "reason", None) or str(cause)
    return TlsError(f"TLS with server {url} failed: {reason}")


# -- the client certificate (mutual TLS) ---------------------------------------------------


def client_csr(state: StateDir) -> tuple[str, Callable[[str], None]]:
    """A new key and its CSR; the function stores the certificate issued for it (and the
    key beside it, both 0600), so a refused request leaves the old pair in place."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "garrison-agent")]))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )

    def store(cert_pem: str) -> None:
        try:
            x509.load_pem_x509_certificate(cert_pem.encode())
        except ValueError:
            raise TlsError("the server answered a client certificate that does not load") from None
        write_private(state.path / CLIENT_KEY, key_pem)
        write_private(state.path / CLIENT_CERT, cert_pem.encode())

    return csr.public_bytes(serialization.Encoding.PEM).decode(), store
