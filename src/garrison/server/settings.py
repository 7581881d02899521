"""Process settings, read from ``GARRISON_*`` environment variables.

These are what a node needs before it can reach its database.  Settings an administrator
changes at run time (getjobs limit, offline timeout) live in the database: see
:mod:`garrison.server.options`.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from garrison.server import logs


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GARRISON_", extra="ignore")

    data_dir: Path = Path("./garrison-data")
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080

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
    # A failed agent request is reported (station_authorization_failed) at most once per
    # client address per this many seconds; 0 reports every one.
    auth_failure_report_seconds: float = Field(default=60.0, ge=0)
    admin_token_ttl_seconds: int = Field(default=12 * 3600, ge=60)
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

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        logs.level_number(value)  # ValueError names the levels
        return value.strip().lower()

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'garrison.db').resolve()}"
