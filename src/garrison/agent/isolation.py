"""Network isolation with nftables: table ``inet garrison_isolation`` drops all traffic except
loopback, the Garrison server's address and port, and DNS to the configured resolvers.

The rule set is kept in the state dir and re-applied when the daemon starts, so isolation
survives an agent restart or a reboot.  Needs ``nft`` and root (CAP_NET_ADMIN).
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
import subprocess
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from garrison.agent.state import StateDir

TABLE = "garrison_isolation"
RESOLV_CONF = Path("/etc/resolv.conf")


class IsolationError(Exception):
    pass


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    addresses: tuple[str, ...]


def server_endpoint(url: str) -> Endpoint:
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname:
        raise IsolationError(f"cannot isolate: no server host in {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise IsolationError(f"cannot resolve the server {parts.hostname}: {exc}") from None
    addresses = tuple(sorted({str(info[4][0]) for info in infos}))
    return Endpoint(parts.hostname, port, addresses)


def nameservers(path: Path = RESOLV_CONF) -> list[str]:
    out: list[str] = []
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            try:
                out.append(str(ipaddress.ip_address(fields[1].split("%")[0])))
            except ValueError:
                continue
    return out


def _family(address: str) -> str:
    return "ip6" if ipaddress.ip_address(address).version == 6 else "ip"


def ruleset(endpoint: Endpoint, dns: list[str]) -> str:
    """The nft script: replaces the table atomically (create, delete, define)."""
    out_rules = ['    oif "lo" accept']
    for address in endpoint.addresses:
        out_rules.append(f"    {_family(address)} daddr {address} tcp dport {endpoint.port} accept")
    for address in dns:
        fam = _family(address)
        out_rules.append(f"    {fam} daddr {address} udp dport 53 accept")
        out_rules.append(f"    {fam} daddr {address} tcp dport 53 accept")
    lines = [
        f"table inet {TABLE} {{}}",
        f"delete table inet {TABLE}",
        f"table inet {TABLE} {{",
        "  chain input {",
        "    type filter hook input priority -100; policy drop;",
        '    iif "lo" accept',
        "    ct state established,related accept",
        "  }",
        "  chain forward {",
        "    type filter hook forward priority -100; policy drop;",
        "  }",
        "  chain output {",
        "    type filter hook output priority -100; policy drop;",
        *out_rules,
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _nft(args: list[str], stdin: str | None = None) -> str:
    program = shutil.which("nft") or shutil.which("nft", path="/usr/sbin:/sbin")
    if program is None:
        raise IsolationError("nft (nftables) is not installed: cannot change network isolation")
    try:
        done = subprocess.run(  # noqa: S603 - fixed program, arguments built here
            [program, *args], input=stdin, capture_output=True, text=True, timeout=30, check=False
        )
    except FileNotFoundError:
        raise IsolationError(
            "nft (nftables) is not installed: cannot change network isolation"
        ) from None
    except (OSError, subprocess.SubprocessError) as exc:
        raise IsolationError(f"nft failed: {exc}") from None
    if done.returncode != 0:
        # nft says "Error: ..." and then echoes the command with carets under the culprit.
        reason = done.stderr.strip().splitlines()
        errors = [line for line in reason if line.startswith("Error:")]
        text = (errors or reason or [f"exit code {done.returncode}"])[0]
        if "Operation not permitted" in done.stderr:
            text += " (network isolation needs root or CAP_NET_ADMIN)"
        raise IsolationError(f"nft refused: {text}")
    return done.stdout


def apply(text: str) -> None:
    _nft(["-f", "-"], stdin=text)


def remove() -> None:
    try:
        _nft(["delete", "table", "inet", TABLE])
    except IsolationError as exc:
        if "No such file or directory" not in str(exc):
            raise


def active_ruleset() -> str:
    return _nft(["list", "table", "inet", TABLE])


# -- persisted state -------------------------------------------------------------------------


def saved(state: StateDir) -> dict[str, Any] | None:
    data = state.read_json(state.isolation_file, None)
    return data if isinstance(data, dict) and isinstance(data.get("ruleset"), str) else None


def is_isolated(state: StateDir) -> bool:
    return saved(state) is not None


def isolate(state: StateDir, server_url: str) -> str:
    endpoint = server_endpoint(server_url)
    text = ruleset(endpoint, nameservers())
    apply(text)
    state.write_json(
        state.isolation_file,
        {
            "ruleset": text,
            "server": server_url,
            "addresses": list(endpoint.addresses),
            "port": endpoint.port,
            "since": int(time.time()),
        },
    )
    return text


def rejoin(state: StateDir) -> None:
    remove()
    state.isolation_file.unlink(missing_ok=True)


def reapply(state: StateDir) -> bool:
    """At daemon start: put saved isolation back in force.  True when it did."""
    data = saved(state)
    if data is None:
        return False
    apply(str(data["ruleset"]))
    return True
