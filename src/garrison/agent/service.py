"""The agent's systemd unit: one text, written by ``garrison-agent install`` and shipped in
the .deb (``scripts/build-debs`` renders it with the package's program path).

Hardened with what the agent's work still allows.  It runs as root and keeps only the
capabilities it uses: reading every file (scans, GetFile, hashes), moving and restoring
quarantined files with their owner and mode, nftables isolation and the netlink sensors
(``CAP_NET_ADMIN``, also for ``SO_RCVBUFFORCE``), fanotify on-access marks
(``CAP_SYS_ADMIN``), reading other processes' ``/proc/<pid>/maps``, ``exe`` and ``fd``
(``CAP_SYS_PTRACE``) and the Kill job (``CAP_KILL``).  Not used, because they would break
that work: ``ProtectSystem`` and ``ProtectHome`` (quarantine moves files out of ``/usr/local``,
``/etc`` and ``/home``), ``PrivateTmp`` and ``PrivateDevices`` (the file sensor watches
``/tmp`` and ``/dev/shm``), ``MemoryDenyWriteExecute`` (ctypes callbacks need it off).
"""

from __future__ import annotations

DEFAULT_STATE_DIR = "/var/lib/garrison-agent"
UNIT_NAME = "garrison-agent.service"

CAPABILITIES = (
    "CAP_DAC_READ_SEARCH",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_CHOWN",
    "CAP_NET_ADMIN",
    "CAP_SYS_ADMIN",
    "CAP_SYS_PTRACE",
    "CAP_KILL",
)

_TEMPLATE = """\
# systemd unit for the Garrison endpoint agent (garrison.agent.service renders it).
# Installed by `garrison-agent install` or the garrison-agent .deb; docs/agent.md.
[Unit]
Description=Garrison endpoint agent (scans, jobs, sensors, offline spool)
Documentation=https://github.com/garrison-security/garrison/blob/main/docs/agent.md
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart={program} run
Environment=GARRISON_AGENT_STATE_DIR={state_dir}
{state_directory}UMask=0077
Restart=on-failure
RestartSec=5s
# 3 = not enrolled (or uninstalled): restarting would not help.
RestartPreventExitStatus=3
# SIGTERM: the agent sends SHUTTING_DOWN and flushes its spool (a few seconds at most).
KillSignal=SIGTERM
TimeoutStopSec=45s
Nice=10
IOSchedulingClass=idle
# Root, with only the capabilities its work needs (see garrison/agent/service.py).
CapabilityBoundingSet={capabilities}
NoNewPrivileges=yes
ProtectKernelTunables=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
RestrictNamespaces=yes
LockPersonality=yes
SystemCallArchitectures=native
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
SystemCallFilter=~@clock @cpu-emulation @module @obsolete @raw-io @reboot @swap

[Install]
WantedBy=multi-user.target
"""


def unit_text(program: str, state_dir: str = DEFAULT_STATE_DIR) -> str:
    """The unit for the agent program at ``program`` keeping its state in ``state_dir``
    (systemd creates the default one itself, 0700: ``StateDirectory``)."""
    for name, value in (("program", program), ("state dir", state_dir)):
        if not value.startswith("/") or any(c.isspace() for c in value):
            raise ValueError(f"the {name} must be an absolute path without spaces: {value!r}")
    default = state_dir.rstrip("/") == DEFAULT_STATE_DIR
    return _TEMPLATE.format(
        program=program,
        state_dir=state_dir,
        state_directory=(
            "StateDirectory=garrison-agent\nStateDirectoryMode=0700\n" if default else ""
        ),
        capabilities=" ".join(CAPABILITIES),
    )
