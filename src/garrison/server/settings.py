"""Process settings, read from ``GARRISON_*`` environment variables.

These are what a node needs before it can reach its database.  Settings an administrator
changes at run time (getjobs limit, offline timeout) live in the database: see
:mod:`garrison.server.options`.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from garrison.server import logs

# Defaults of events_max_pending / events_max_wait_seconds (see there); the events writer's
# own defaults too.
EVENTS_MAX_PENDING = 50_000
EVENTS_MAX_WAIT_SECONDS = 10.0


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GARRISON_", extra="ignore")

    data_dir: Path = Path("./garrison-data")
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    # Server processes on the port (garrison serve --workers); unset: every core on
    # PostgreSQL, one on SQLite (garrison.cli.workers.default_workers).
    workers: int | None = Field(default=None, ge=1, le=64)
    # Per worker: requests that need a thread (a database read or write) at once; more are
    # answered 503 with Retry-After at once, instead of queueing without bound.
    max_pending_requests: int = Field(default=256, ge=1)
    # Per worker, telemetry (POST /api/events) waiting for its writer: a request that would
    # take the waiting events past events_max_pending, or whose events would wait more than
    # events_max_wait_seconds at the rate the writer has been storing them, is answered 503
    # with Retry-After at once (the agent keeps the events in its spool).  The wait's bound is
    # a third of the agent's 30 s read timeout: a later answer would reach a client that gave up.
    events_max_pending: int = Field(default=EVENTS_MAX_PENDING, ge=1)
    events_max_wait_seconds: float = Field(default=EVENTS_MAX_WAIT_SECONDS, gt=0)
    # Seconds a request waits for a database connection before it is answered 503.
    database_pool_timeout: float = Field(default=5.0, gt=0)

    # The URL agents reach this server at, for the install commands of enrollment keys
    # (e.g. https://garrison.example.com:8080); empty: the URL the administrator used.
    public_url: str = ""

    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    # Armadito agents cannot send a bearer token: they answer a 401 Basic challenge with the
    # credentials of their configuration file.
    agent_basic_user: str | None = None
    agent_basic_password: SecretStr | None = None
    agent_basic_realm: str = "Garrison"
    # Off by default: legacy agents with no credentials at all.
    allow_unauthenticated_agents: bool = False

    last_seen_flush_seconds: float = Field(default=5.0, gt=0)
    # Longer than a check-in interval, or most check-ins would read the database.
    token_cache_seconds: float = Field(default=120.0, ge=0)
    # A station's token revoked (deleted, re-enrolled, denied) in another worker or node stops
    # working in this one within this (in the process that revoked it, at once).
    token_watch_seconds: float = Field(default=1.0, gt=0)
    # Each worker loads up to this many allowed stations' tokens at start and again every
    # half token_cache_seconds (one query), so a fleet's check-ins never read their token one
    # by one; 0: tokens are cached only as they are checked.
    token_cache_preload: int = Field(default=250_000, ge=0)
    # A failed agent request is reported (station_authorization_failed) at most once per
    # client address per this many seconds; 0 reports every one.
    auth_failure_report_seconds: float = Field(default=60.0, ge=0)
    admin_token_ttl_seconds: int = Field(default=12 * 3600, ge=60)
    # Web console sessions end after this long unused (and at the latest after
    # admin_token_ttl_seconds, like an admin API login).
    console_idle_seconds: int = Field(default=30 * 60, ge=60)
    # How often each open console page's live stream reads the event log's position.
    console_live_seconds: float = Field(default=2.0, gt=0)
    # Password logins (see users.throttle): after this many consecutive failures an account
    # is locked for login_lockout_seconds, doubled at each further failure up to
    # login_lockout_max_seconds.  The lock lives in the database: it holds on every node.
    login_lockout_after: int = Field(default=5, ge=1)
    login_lockout_seconds: float = Field(default=30.0, gt=0)
    login_lockout_max_seconds: float = Field(default=900.0, gt=0)
    # Per client address, on each node: at most this many failed logins (and, separately,
    # refused enrollment keys) per auth_address_window_seconds; more answer 429.
    auth_address_failures: int = Field(default=10, ge=1)
    auth_address_window_seconds: float = Field(default=60.0, gt=0)
    # Peers whose X-Forwarded-For is believed (comma-separated addresses or networks, e.g.
    # "10.0.0.5, 192.168.0.0/24"); by default none: the client address is the TCP peer's.
    trusted_proxies: str = ""
    # SQLite only: "full" syncs each commit to disk (an acknowledged event survives a power
    # loss); "normal" is faster but the last commits before a power cut may be lost.
    sqlite_synchronous: Literal["full", "normal"] = "full"
    graceful_shutdown_seconds: float = Field(default=30.0, ge=0)
    # debug, info (each request), warning, error, critical; see garrison.server.logs.
    log_level: str = "info"
    # Request lines are buffered this long at most (0: each written at once); a crash loses
    # at most this much of them.  Lines of note are always written at once.
    log_flush_seconds: float = Field(default=logs.FLUSH_SECONDS, ge=0)
    # Each Lua procedure call: instructions, memory, wall-clock seconds (the procedures
    # slice builds its Limits from them).
    procedure_instructions: int = Field(default=5_000_000, ge=10_000)
    procedure_memory_bytes: int = Field(default=16 * 1024 * 1024, ge=1024 * 1024)
    procedure_seconds: float = Field(default=2.0, gt=0)
    # Worker processes procedures run in (each one Lua state, kept warm), and how many
    # failures in a row of one procedure from the event log disable it (0: never).
    procedure_workers: int = Field(default=2, ge=1, le=64)
    procedure_disable_after: int = Field(default=5, ge=0)
    event_retention_interval_seconds: float = Field(default=60.0, gt=0)
    disconnect_sweep_seconds: float = Field(default=10.0, gt=0)
    # Jobs created on this node wake their long-polls at once; this bounds the others.
    job_watch_seconds: float = Field(default=0.5, gt=0)
    # A sensor policy or group change committed on another node reaches this node's cache of
    # effective sensor policies within this (this node's own changes, at once).
    sensor_policy_watch_seconds: float = Field(default=1.0, gt=0)
    # Export confinement, set by the operator only (never through the API); see
    # docs/security.md "Secrets and confinement".  File targets write only below
    # <data-dir>/export and these extra directories (os.pathsep-separated absolute paths).
    export_file_dirs: str = ""
    # Network targets may not reach loopback, link-local, unspecified or multicast addresses,
    # nor this host's own: unless this is true, or the address is in one of these networks
    # (comma-separated CIDRs, e.g. "127.0.0.1/32,fd00::/8").
    export_allow_local: bool = False
    export_allow_networks: str = ""
    # The key that encrypts export-target secrets (webhook credentials); created, mode 0600,
    # at the first start.  Nodes sharing a database must share this file.  Default:
    # <data-dir>/secrets.key.
    secrets_key_file: Path | None = None
    # A content change made on another node reaches this node's check-in answers within
    # this many seconds (one primary-key read each time); a local change at once.
    content_watch_seconds: float = Field(default=2.0, gt=0)
    # Where the content signing keys live (content-key.pem, content-key-<id>.pem); nodes
    # sharing a database must share them.  Default: the data dir.
    content_key_dir: Path | None = None
    # ClamAV container import: the keys a .cvd/.cld must be signed with.  Unset: ClamAV's
    # published keys.  A JSON file {"cvd": {"n", "e"}, "info": {"n", "e"}} replaces them
    # (tests; an operator who signs containers of their own).  docs/clamav.md.
    clamav_keys_file: Path | None = None
    # HTTPS (issue 21; docs/security.md "Transport"): on unless asked off (`--tls off`, for
    # Armadito agents and behind a TLS-terminating proxy).  Without a certificate file of
    # the operator's, the server's own CA (<data-dir>/tls/) issues one for tls_names (extra
    # names, comma-separated), the bound address and this host's names, and renews it
    # tls_renew_before_seconds before its end; tls_refresh_seconds is how often that and the
    # client revocation list are checked.  tls_client_certs: mutual TLS (a certificate per
    # station, revoked when the station is deleted).
    tls: bool = True
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_names: str = ""
    tls_cert_lifetime_seconds: float = Field(default=90 * 86400, ge=60)
    tls_renew_before_seconds: float = Field(default=30 * 86400, ge=0)
    tls_refresh_seconds: float = Field(default=60.0, gt=0)
    tls_client_certs: bool = False
    tls_client_cert_lifetime_seconds: float = Field(default=365 * 86400, ge=60)

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        logs.level_number(value)  # ValueError names the levels
        return value.strip().lower()

    @field_validator("sqlite_synchronous", mode="before")
    @classmethod
    def _lower_synchronous(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// or http://")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_proxies(cls, value: str) -> str:
        parse_networks(value)  # ValueError names the bad entry
        return value

    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return parse_networks(self.trusted_proxies)

    def resolved_secrets_key_file(self) -> Path:
        return self.secrets_key_file or self.data_dir / "secrets.key"

    def resolved_content_key_dir(self) -> Path:
        return self.content_key_dir or self.data_dir

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'garrison.db').resolve()}"


def parse_networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """``"10.0.0.5, 192.168.0.0/24"`` as networks (an address is a network of one)."""
    networks = []
    for part in text.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"not an address or network: {part!r}") from None
    return tuple(networks)
