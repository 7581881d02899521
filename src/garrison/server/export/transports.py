"""Where exported messages go: syslog over UDP, TCP and TLS, a rotated NDJSON file, or an
HTTP POST webhook.  Every transport raises :class:`TransportError` when a message may not
have arrived, so the exporter retries it."""

from __future__ import annotations

import contextlib
import os
import select
import socket
import ssl
from pathlib import Path
from typing import Any, Protocol

import httpx

from garrison.server.export.config import header_problem
from garrison.server.export.confinement import Confinement, ConfinementError


class TransportError(Exception):
    """``sent``: how many messages of the call were delivered before the failure;
    ``refused``: the confinement refused the address or path (the message says which rule,
    and may be shown to an administrator; other messages go to the server log only)."""

    def __init__(self, message: str, sent: int = 0, *, refused: bool = False) -> None:
        super().__init__(message)
        self.sent = sent
        self.refused = refused


def _resolved(
    confinement: Confinement | None, host: str, port: int, kind: int
) -> list[tuple[int, str]]:
    """The addresses to connect to: each checked by the confinement (``None``: unchecked,
    for tests of the transports themselves)."""
    if confinement is None:
        infos = socket.getaddrinfo(host, port, type=kind)
        return [(family, str(sockaddr[0])) for family, _, _, _, sockaddr in infos]
    try:
        return confinement.resolve(host, port, kind)
    except ConfinementError as exc:
        raise TransportError(exc.message, refused=True) from None


class Transport(Protocol):
    def send(self, messages: list[bytes]) -> int:
        """Send in order; returns how many were sent before any failure (then raises)."""

    def close(self) -> None: ...


class UdpTransport:
    """Sends to the address ``host`` resolved to when it was made (checked then)."""

    def __init__(self, host: str, port: int, confinement: Confinement | None = None) -> None:
        try:
            family, address = _resolved(confinement, host, port, socket.SOCK_DGRAM)[0]
        except OSError as exc:
            raise TransportError(f"cannot resolve {host}: {exc}") from exc
        self.address = (address, port)
        self.sock = socket.socket(family, socket.SOCK_DGRAM)

    def send(self, messages: list[bytes]) -> int:
        for count, message in enumerate(messages):
            try:
                self.sock.sendto(message, self.address)
            except OSError as exc:
                raise TransportError(f"UDP send failed: {exc}", count) from exc
        return len(messages)

    def close(self) -> None:
        self.sock.close()


class StreamTransport:
    """TCP, optionally TLS.  Before each write it checks that the receiver has not closed
    the connection, so a restarted SIEM is noticed before a message is written into the
    void."""

    def __init__(
        self,
        host: str,
        port: int,
        tls: ssl.SSLContext | None = None,
        timeout: float = 10.0,
        confinement: Confinement | None = None,
    ) -> None:
        self.host, self.port, self.tls, self.timeout = host, port, tls, timeout
        self.confinement = confinement
        self.sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        """Resolved, and every address checked, at each connection; the connection goes to
        a checked address, not to a second resolution of the name."""
        try:
            addresses = _resolved(self.confinement, self.host, self.port, socket.SOCK_STREAM)
        except OSError as exc:
            raise TransportError(f"cannot resolve {self.host}: {exc}") from exc
        raw: socket.socket | None = None
        failure: OSError | None = None
        for _, address in addresses:
            try:
                raw = socket.create_connection((address, self.port), timeout=self.timeout)
                break
            except OSError as exc:
                failure = exc
        if raw is None:
            raise TransportError(f"cannot connect to {self.host}:{self.port}: {failure}")
        if self.tls is None:
            return raw
        try:
            return self.tls.wrap_socket(raw, server_hostname=self.host)
        except (ssl.SSLError, OSError) as exc:
            raw.close()
            raise TransportError(
                f"TLS handshake with {self.host}:{self.port} failed: {exc}"
            ) from exc

    def _alive(self, sock: socket.socket) -> bool:
        try:
            # poll, not select: select refuses descriptors past 1023, which a server with
            # many agent connections hands out (every batch would then reconnect).
            probe = select.poll()
            probe.register(sock, select.POLLIN)
            if not probe.poll(0):
                return True
            if isinstance(sock, ssl.SSLSocket):
                return self._tls_alive(sock)
            return sock.recv(1, socket.MSG_PEEK) != b""
        except (OSError, ssl.SSLError, ValueError):
            return False

    @staticmethod
    def _tls_alive(sock: ssl.SSLSocket) -> bool:
        """A TLS socket refuses MSG_PEEK, and a TLS 1.3 receiver sends session tickets
        after the handshake, which make the socket readable although the receiver is
        fine.  Read what is there without blocking: only an end of stream (close_notify or
        EOF) means the receiver has gone.  Closing on a mere ticket would reset the
        connection and make the receiver's kernel drop what it had not read yet."""
        timeout = sock.gettimeout()
        sock.setblocking(False)
        try:
            while True:
                try:
                    if not sock.recv(65536):
                        return False
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                    return True
        finally:
            sock.settimeout(timeout)

    def send(self, messages: list[bytes]) -> int:
        for count, message in enumerate(messages):
            if self.sock is not None and not self._alive(self.sock):
                self.close()
            if self.sock is None:
                self.sock = self._connect()
            try:
                self.sock.sendall(message)
            except (OSError, ssl.SSLError) as exc:
                self.close()
                raise TransportError(
                    f"send to {self.host}:{self.port} failed: {exc}", count
                ) from exc
        return len(messages)

    def close(self) -> None:
        if self.sock is not None:
            try:
                if isinstance(self.sock, ssl.SSLSocket):
                    # Closing with unread session tickets would send a reset, and the
                    # receiver's kernel would drop what the receiver had not read yet.
                    with contextlib.suppress(OSError, ssl.SSLError, ValueError):
                        self._tls_alive(self.sock)
                self.sock.close()
            finally:
                self.sock = None


def tls_context(options: dict[str, Any]) -> ssl.SSLContext:
    """The TLS context of ``tls_ca``, ``tls_cert``, ``tls_key`` and ``tls_verify``.  Any
    failure is the same TransportError, whether a file is missing, unreadable or not a
    certificate: the answer must not tell an administrator which files exist on the server."""
    try:
        context = ssl.create_default_context(cafile=options.get("tls_ca") or None)
        if options.get("tls_cert"):
            context.load_cert_chain(options["tls_cert"], options.get("tls_key") or None)
    except (OSError, ssl.SSLError, ValueError):
        raise TransportError(
            "cannot use the TLS files given (tls_ca, tls_cert, tls_key): each must be a "
            "readable PEM file"
        ) from None
    if options.get("tls_verify", True) is False:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class FileTransport:
    """NDJSON lines appended to a file, rotated at ``max_bytes`` keeping ``keep`` old files.

    With a confinement, the path is checked again at each write (a directory swapped for a
    symbolic link since the target was made is refused), the file is opened without
    following a symbolic link, and every file is created with mode 0600."""

    def __init__(
        self,
        path: str,
        max_bytes: int = 100 * 1024 * 1024,
        keep: int = 5,
        confinement: Confinement | None = None,
    ) -> None:
        self.raw = path
        self.confinement = confinement
        self.path = self._checked()
        self.max_bytes = max_bytes
        self.keep = keep

    def _checked(self) -> Path:
        if self.confinement is None:
            return Path(self.raw)
        try:
            return self.confinement.file_path(self.raw)
        except ConfinementError as exc:
            raise TransportError(exc.message, refused=True) from None

    def _rotate(self) -> None:
        # rename() moves a symbolic link itself, never what it points to; lexists() does
        # not follow one either.
        for index in range(self.keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if os.path.lexists(older):
                older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))

    def send(self, messages: list[bytes]) -> int:
        self.path = self._checked()
        try:
            self._make_parent()
            self.path = self._checked()  # the directories made are inside too
            fd = self._open()
            if os.fstat(fd).st_size >= self.max_bytes:
                os.close(fd)
                self._rotate()
                fd = self._open()
            with os.fdopen(fd, "ab") as handle:
                for message in messages:
                    handle.write(message.rstrip(b"\n") + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise TransportError(f"cannot write {self.path}: {exc}", 0) from exc
        return len(messages)

    def _open(self) -> int:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        return os.open(self.path, flags, 0o600)

    def _make_parent(self) -> None:
        """Each missing directory is made private (0700): ``mkdir(parents=True)`` would give
        the parents the default mode."""
        missing = []
        for directory in self.path.parents:
            if os.path.lexists(directory):
                break
            missing.append(directory)
        for directory in reversed(missing):
            with contextlib.suppress(FileExistsError):
                directory.mkdir(mode=0o700)

    def close(self) -> None:
        return None


class HttpTransport:
    """One POST per batch: an NDJSON body; any 2xx is delivery."""

    def __init__(
        self,
        url: str,
        headers: dict[str, str] | None = None,
        verify: bool | ssl.SSLContext = True,
        timeout: float = 10.0,
        confinement: Confinement | None = None,
    ) -> None:
        self.url = url
        self.confinement = confinement
        for name, value in (headers or {}).items():
            problem = header_problem(name, value)
            if problem is not None:  # a row stored before the rule existed
                raise TransportError(f"header refused: {problem}", refused=True)
        # No redirects (the default, said again): one could lead to an address the
        # confinement refuses.
        self.client = httpx.Client(
            timeout=timeout,
            verify=verify,
            follow_redirects=False,
            headers={"Content-Type": "application/x-ndjson", **(headers or {})},
        )

    def _pinned(self) -> tuple[httpx.URL, dict[str, str], dict[str, Any]]:
        """The URL with its host replaced by a checked address, the Host header and the TLS
        server name it had: the name is resolved and checked here, at each send, and the
        request goes to the address checked (no second resolution to rebind)."""
        url = httpx.URL(self.url)
        if self.confinement is None:
            return url, {}, {}
        port = url.port or (443 if url.scheme == "https" else 80)
        _, address = _resolved(self.confinement, url.host, port, socket.SOCK_STREAM)[0]
        host_header = url.netloc.decode("ascii")
        extensions: dict[str, Any] = {"sni_hostname": url.host} if url.scheme == "https" else {}
        return url.copy_with(host=address), {"Host": host_header}, extensions

    def send(self, messages: list[bytes]) -> int:
        body = b"".join(m.rstrip(b"\n") + b"\n" for m in messages)
        try:
            url, headers, extensions = self._pinned()
            response = self.client.post(url, content=body, headers=headers, extensions=extensions)
        except OSError as exc:
            raise TransportError(f"POST {self.url}: cannot resolve: {exc}", 0) from exc
        except httpx.HTTPError as exc:
            raise TransportError(f"POST {self.url} failed: {exc}", 0) from exc
        if not 200 <= response.status_code < 300:
            raise TransportError(f"POST {self.url} answered {response.status_code}", 0)
        return len(messages)

    def close(self) -> None:
        self.client.close()


class RelpTransport:
    """RELP, rsyslog's Reliable Event Logging Protocol: the receiver acknowledges each
    message once it has taken it, so a receiver that stops mid-stream loses nothing (plain
    TCP only tells that the peer's kernel got the bytes, not that the receiver read them)."""

    def __init__(
        self,
        host: str,
        port: int,
        tls: ssl.SSLContext | None = None,
        timeout: float = 10.0,
        window: int = 256,
        confinement: Confinement | None = None,
    ) -> None:
        self.stream = StreamTransport(host, port, tls, timeout, confinement)
        self.window = window
        self.txnr = 0
        self.buffer = b""

    def _next(self) -> int:
        self.txnr = self.txnr + 1 if self.txnr < 999_999_999 else 1
        return self.txnr

    @staticmethod
    def _frame(txnr: int, command: str, data: bytes) -> bytes:
        head = f"{txnr} {command} {len(data)}".encode()
        return head + (b" " + data if data else b"") + b"\n"

    def _read_frame(self, sock: socket.socket) -> tuple[int, str, bytes]:
        while True:
            parts = self.buffer.split(b" ", 3)
            if len(parts) >= 3 and parts[2].split(b"\n", 1)[0].isdigit():
                length = int(parts[2].split(b"\n", 1)[0])
                header = b" ".join(parts[:3])
                start = len(header) + (1 if length else 0)
                end = start + length
                if len(self.buffer) >= end + 1:
                    frame = self.buffer[:end]
                    self.buffer = self.buffer[end + 1 :]
                    return int(parts[0]), parts[1].decode("ascii", "replace"), frame[start:end]
            chunk = sock.recv(65536)
            if not chunk:
                raise OSError("the RELP receiver closed the connection")
            self.buffer += chunk

    def _open(self) -> socket.socket:
        sock = self.stream._connect()
        self.buffer = b""
        self.txnr = 0
        offers = b"relp_version=0\nrelp_software=garrison\ncommands=syslog"
        txnr = self._next()
        try:
            sock.sendall(self._frame(txnr, "open", offers))
            _, command, data = self._read_frame(sock)
        except OSError as exc:
            sock.close()
            raise TransportError(f"RELP open failed: {exc}") from exc
        if command != "rsp" or not data.startswith(b"200"):
            sock.close()
            raise TransportError(f"RELP open refused: {data[:200]!r}")
        return sock

    def send(self, messages: list[bytes]) -> int:
        acked = 0  # messages the receiver confirmed, in order
        while acked < len(messages):
            if self.stream.sock is None:
                self.stream.sock = self._open()
            sock = self.stream.sock
            chunk = messages[acked : acked + self.window]
            offsets: dict[int, int] = {}
            confirmed: set[int] = set()
            try:
                frames = []
                for offset, message in enumerate(chunk):
                    txnr = self._next()
                    offsets[txnr] = offset
                    frames.append(self._frame(txnr, "syslog", message.rstrip(b"\n")))
                sock.sendall(b"".join(frames))
                while len(confirmed) < len(chunk):
                    txnr, command, data = self._read_frame(sock)
                    if command == "serverclose":
                        raise OSError("the RELP receiver is closing")
                    if command != "rsp" or txnr not in offsets:
                        continue
                    if not data.startswith(b"200"):
                        raise OSError(f"the RELP receiver refused a message: {data[:200]!r}")
                    confirmed.add(offsets[txnr])
            except (OSError, ssl.SSLError) as exc:
                self.stream.close()
                prefix = 0
                while prefix in confirmed:
                    prefix += 1
                raise TransportError(f"RELP send failed: {exc}", acked + prefix) from exc
            acked += len(chunk)
        return acked

    def close(self) -> None:
        if self.stream.sock is not None:
            with contextlib.suppress(OSError):
                self.stream.sock.sendall(self._frame(self._next(), "close", b""))
        self.stream.close()
