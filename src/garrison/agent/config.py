"""The agent's configuration: a TOML file in the state dir (``agent.toml``).

AVConfig reports it as Armadito ``attr``/``value`` pairs and applies the pairs an administrator
pushes; Scheduler does the same for the ``[scheduler]`` table (cron expressions per task).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import tomli_w

from garrison.agent.errors import LocalError
from garrison.agent.state import write_private

ACTIONS = ("none", "quarantine", "delete")
TASKS = ("Getjobs", "Runjobs", "State", "Alerts", "AVConfig", "Scheduler")
DEFAULT_SCHEDULE = {
    "Getjobs": "* * * * *",
    "Runjobs": "* * * * *",
    "State": "0 * * * *",
    "Alerts": "*/5 * * * *",
    "AVConfig": "0 */6 * * *",
    "Scheduler": "*/15 * * * *",
}
MIB = 1024 * 1024


@dataclass
class ScanConfig:
    action: str = "quarantine"
    exclude: list[str] = field(default_factory=lambda: ["/proc", "/sys", "/dev", "/run"])
    paths: list[str] = field(default_factory=lambda: ["/home", "/tmp"])  # noqa: S108
    max_file_size: int = 100 * MIB
    archives: bool = True
    archive_max_size: int = 50 * MIB
    yara: bool = True
    clamav: bool = False
    progress_interval: float = 10.0


@dataclass
class SpoolConfig:
    max_age_days: int = 21
    max_bytes: int = 64 * MIB


@dataclass
class DaemonConfig:
    long_poll: int = 30
    max_db_age_days: int = 30


@dataclass
class AgentConfig:
    server_url: str = ""
    scan: ScanConfig = field(default_factory=ScanConfig)
    spool: SpoolConfig = field(default_factory=SpoolConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    scheduler: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_SCHEDULE))


# -- value parsing -------------------------------------------------------------------------


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("not an integer")
    number = int(str(value).strip())
    if number < 0:
        raise ValueError("must not be negative")
    return number


def _list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    text = str(value).strip()
    if text.startswith("["):
        loaded = json.loads(text)
        if not isinstance(loaded, list):
            raise ValueError("not a list")
        return [str(v) for v in loaded]
    return [part for part in text.split(";") if part]


def _action(value: Any) -> str:
    text = str(value).strip().lower()
    if text in ("report", "report-only", "report_only", ""):
        text = "none"
    if text not in ACTIONS:
        raise ValueError(f"action must be one of {', '.join(ACTIONS)}")
    return text


def validate_cron(expression: str) -> str:
    text = " ".join(str(expression).split())
    if len(text.split(" ")) != 5:
        raise ValueError(f"not a 5-field cron expression: {expression!r}")
    try:
        from croniter import croniter  # type: ignore[import-untyped,unused-ignore]
    except ImportError:  # checked again when the daemon runs
        return text
    if not croniter.is_valid(text):
        raise ValueError(f"not a valid cron expression: {expression!r}")
    return text


Parser = Callable[[Any], Any]
# attr -> (section, key, parser); the Armadito-style names an administrator sees.
AVCONFIG_ATTRS: dict[str, tuple[str, str, Parser]] = {
    "scan:action": ("scan", "action", _action),
    "scan:exclude": ("scan", "exclude", _list),
    "scan:paths": ("scan", "paths", _list),
    "scan:max_file_size": ("scan", "max_file_size", _int),
    "scan:archives": ("scan", "archives", _bool),
    "scan:archive_max_size": ("scan", "archive_max_size", _int),
    "scan:yara": ("scan", "yara", _bool),
    "scan:clamav": ("scan", "clamav", _bool),
    "scan:progress_interval": ("scan", "progress_interval", lambda v: abs(float(str(v)))),
    "spool:max_age_days": ("spool", "max_age_days", _int),
    "spool:max_bytes": ("spool", "max_bytes", _int),
    "daemon:long_poll": ("daemon", "long_poll", _int),
    "daemon:max_db_age_days": ("daemon", "max_db_age_days", _int),
}
READ_ONLY_ATTRS = {"on-access:enabled": "0"}
SCHEDULER_PREFIX = "scheduler:task:"


def _wire(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return str(value)


def avconfig_pairs(config: AgentConfig) -> list[dict[str, str]]:
    pairs = [
        {"attr": attr, "value": _wire(getattr(getattr(config, section), key))}
        for attr, (section, key, _) in AVCONFIG_ATTRS.items()
    ]
    pairs += [{"attr": a, "value": v} for a, v in READ_ONLY_ATTRS.items()]
    return pairs


def scheduler_pairs(config: AgentConfig) -> list[dict[str, str]]:
    return [
        {"attr": f"{SCHEDULER_PREFIX}{task}:freq", "value": cron}
        for task, cron in sorted(config.scheduler.items())
    ]


def apply_avconfig(config: AgentConfig, pairs: Iterable[tuple[str, str]]) -> list[str]:
    """Apply pushed pairs; returns the problems (unknown attributes, bad values) skipped."""
    problems = []
    for attr, value in pairs:
        spec = AVCONFIG_ATTRS.get(attr)
        if spec is None:
            if attr not in READ_ONLY_ATTRS:
                problems.append(f"{attr}: unknown attribute, ignored")
            continue
        section, key, parse = spec
        try:
            setattr(getattr(config, section), key, parse(value))
        except (ValueError, TypeError) as exc:
            problems.append(f"{attr}: {exc}")
    return problems


def apply_scheduler(config: AgentConfig, pairs: Iterable[tuple[str, str]]) -> list[str]:
    problems = []
    for attr, value in pairs:
        if not (attr.startswith(SCHEDULER_PREFIX) and attr.endswith(":freq")):
            problems.append(f"{attr}: unknown attribute, ignored")
            continue
        task = attr[len(SCHEDULER_PREFIX) : -len(":freq")]
        if task not in TASKS:
            problems.append(f"{attr}: unknown task {task!r}, ignored")
            continue
        try:
            config.scheduler[task] = validate_cron(value)
        except ValueError as exc:
            problems.append(f"{attr}: {exc}")
    return problems


# -- file -----------------------------------------------------------------------------------


def _section(target: Any, data: Any, name: str) -> None:
    if data is None:
        return
    if not isinstance(data, dict):
        raise LocalError(f"config: [{name}] must be a table")
    known = {f.name for f in fields(target)}
    for key, value in data.items():
        if key not in known:
            raise LocalError(f"config: unknown key {name}.{key}")
        spec = AVCONFIG_ATTRS.get(f"{name}:{key}")
        try:
            setattr(target, key, spec[2](value) if spec else value)
        except (ValueError, TypeError) as exc:
            raise LocalError(f"config: {name}.{key}: {exc}") from None


def load(path: Path) -> AgentConfig:
    config = AgentConfig()
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return config
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise LocalError(f"cannot read config {path}: {exc}") from None
    server = data.get("server", {})
    if isinstance(server, dict) and isinstance(server.get("url"), str):
        config.server_url = server["url"]
    _section(config.scan, data.get("scan"), "scan")
    _section(config.spool, data.get("spool"), "spool")
    _section(config.daemon, data.get("daemon"), "daemon")
    schedule = data.get("scheduler")
    if schedule is not None:
        if not isinstance(schedule, dict):
            raise LocalError("config: [scheduler] must be a table of task = cron")
        problems = apply_scheduler(
            config, ((f"{SCHEDULER_PREFIX}{t}:freq", str(c)) for t, c in schedule.items())
        )
        if problems:
            raise LocalError(f"config: {problems[0]}")
    return config


def save(path: Path, config: AgentConfig) -> None:
    data = {
        "server": {"url": config.server_url},
        "scan": {f.name: getattr(config.scan, f.name) for f in fields(config.scan)},
        "spool": {f.name: getattr(config.spool, f.name) for f in fields(config.spool)},
        "daemon": {f.name: getattr(config.daemon, f.name) for f in fields(config.daemon)},
        "scheduler": dict(config.scheduler),
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_private(path, tomli_w.dumps(data).encode())
    except OSError as exc:
        raise LocalError(f"cannot write config {path}: {exc.strerror}") from None
