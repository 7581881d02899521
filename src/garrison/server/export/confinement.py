"""Where export targets may write and connect: rules the operator sets at start
(``GARRISON_EXPORT_*``), never the admin API.

An administrator who creates targets must not gain the server user's file system or its
network position: a file target writes only below ``<data-dir>/export`` (or a directory the
operator added), and a network target may not reach this host (loopback, its own addresses)
nor link-local addresses (cloud metadata services live there).  Each rule is checked when a
target is created or changed, and again when it sends: a name is resolved then, every
address it resolves to is checked, and the transport connects to the checked address, so
a DNS answer that changes in between (rebinding) reaches nothing new.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

from garrison.server.errors import InvalidInputError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

EXPORT_DIR = "export"


class ConfinementError(Exception):
    """A target's path or address is outside what the operator allows.  ``field`` names the
    target field at fault."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def as_input_error(self) -> InvalidInputError:
        return InvalidInputError(self.message, field=self.field)


class UnresolvedError(ConfinementError):
    """The name does not resolve (now): a target may be created for a SIEM whose name comes
    later; it is checked again at each connection."""


def _own_address(address: IPAddress) -> bool:
    """Whether ``address`` is one of this host's: binding a socket to it succeeds only then
    (Python has no portable list of interface addresses; this asks the kernel directly)."""
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.bind((str(address), 0))
    except OSError:
        return False
    return True


def _local(address: IPAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _local(address.ipv4_mapped)
    return (
        address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or address.is_multicast
        or address.is_reserved
        or _own_address(address)
    )


@dataclass(frozen=True)
class Confinement:
    """``file_dirs``: where file targets may write, the first one (``<data-dir>/export``) is
    where a relative path goes.  ``allow_local``: any address is allowed (a test bed, or a
    SIEM on this host); ``allow_networks``: these are allowed although local."""

    file_dirs: tuple[Path, ...]
    allow_local: bool = False
    allow_networks: tuple[IPNetwork, ...] = field(default_factory=tuple)
    # Never written but below file_dirs[0], even when an extra directory holds it: the
    # database, admin.token and secrets.key live there.
    data_dir: Path | None = None

    @classmethod
    def of(
        cls,
        data_dir: Path,
        extra_dirs: str = "",
        allow_local: bool = False,
        allow_networks: str = "",
    ) -> Confinement:
        """From the settings; raises ValueError on a relative extra directory or a bad
        network."""
        dirs = [Path(os.path.abspath(data_dir / EXPORT_DIR))]
        for item in extra_dirs.split(os.pathsep):
            if not item.strip():
                continue
            path = Path(item.strip())
            if not path.is_absolute():
                raise ValueError(f"GARRISON_EXPORT_FILE_DIRS: {item!r} is not an absolute path")
            dirs.append(Path(os.path.abspath(path)))
        networks = tuple(
            ipaddress.ip_network(n.strip(), strict=False)
            for n in allow_networks.split(",")
            if n.strip()
        )
        return cls(tuple(dirs), allow_local, networks, Path(os.path.abspath(data_dir)))

    # -- files ---------------------------------------------------------------------------

    def file_path(self, raw: str) -> Path:
        """The absolute path a file target's ``path`` names, if it is allowed: no NUL, no
        ``..``, inside one of ``file_dirs`` (a relative path is taken below the first), and
        no symbolic link on the way that leads out of it.  Raises ConfinementError."""
        if not raw or "\x00" in raw:
            raise ConfinementError("path must be a non-empty file name without NUL", "path")
        if ".." in Path(raw).parts:
            raise ConfinementError("path may not contain '..'", "path")
        candidate = Path(raw) if os.path.isabs(raw) else self.file_dirs[0] / raw
        candidate = Path(os.path.normpath(candidate))
        for base in self.file_dirs:
            if candidate != base and candidate.is_relative_to(base):
                self._no_escape(base, candidate)
                self._not_in_data_dir(candidate)
                return candidate
        allowed = ", ".join(str(d) for d in self.file_dirs)
        raise ConfinementError(
            f"path must be a file below {allowed} (set by the operator: GARRISON_EXPORT_FILE_DIRS)",
            "path",
        )

    def _not_in_data_dir(self, candidate: Path) -> None:
        if self.data_dir is None:
            return
        export = self.file_dirs[0]
        real = Path(os.path.realpath(candidate))
        for path in (candidate, real):
            inside_data = path.is_relative_to(self.data_dir) or path.is_relative_to(
                os.path.realpath(self.data_dir)
            )
            inside_export = path.is_relative_to(export) or path.is_relative_to(
                os.path.realpath(export)
            )
            if inside_data and not inside_export:
                raise ConfinementError(
                    "path may not be in the data directory (only below its export/)", "path"
                )

    @staticmethod
    def _no_escape(base: Path, candidate: Path) -> None:
        """The directories that exist on the way resolve inside ``base`` (a symbolic link
        pointing out is refused), and the file itself is not a symbolic link."""
        real_base = Path(os.path.realpath(base))
        real_parent = Path(os.path.realpath(candidate.parent))
        if real_parent != real_base and not real_parent.is_relative_to(real_base):
            raise ConfinementError("path leads out of the export directory", "path")
        if candidate.is_symlink():
            raise ConfinementError("path is a symbolic link", "path")

    # -- addresses -----------------------------------------------------------------------

    def allowed(self, address: IPAddress) -> bool:
        if self.allow_local or not _local(address):
            return True
        return any(address in network for network in self.allow_networks)

    def resolve(
        self, host: str, port: int, kind: int = socket.SOCK_STREAM, field: str = "host"
    ) -> list[tuple[int, str]]:
        """Every (family, address) ``host`` resolves to, all of them allowed; raises
        ConfinementError when any is not (a name with one bad address among good ones is
        refused: which one is used is the resolver's choice) or the name does not resolve."""
        try:
            infos = socket.getaddrinfo(host, port, type=kind)
        except (OSError, UnicodeError):
            raise UnresolvedError(f"{field}: cannot resolve {host!r}", field) from None
        found: list[tuple[int, str]] = []
        for family, _, _, _, sockaddr in infos:
            address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            if not self.allowed(address):
                raise ConfinementError(
                    f"{field}: {host!r} is a loopback, link-local or this server's own address; "
                    "the operator allows those with GARRISON_EXPORT_ALLOW_LOCAL or "
                    "GARRISON_EXPORT_ALLOW_NETWORKS",
                    field,
                )
            if (family, str(sockaddr[0])) not in found:
                found.append((family, str(sockaddr[0])))
        if not found:
            raise UnresolvedError(f"{field}: cannot resolve {host!r}", field)
        return found
