"""The agent's configuration: a TOML file in the state dir (``agent.toml``).

AVConfig reports it as Armadito ``attr``/``value`` pairs and applies the pairs an administrator
pushes; Scheduler does the same for the ``[scheduler]`` table (cron expressions per task).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import tomli_w
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from garrison.agent.errors import LocalError
from garrison.agent.state import write_private
from garrison.common import geolocation

ACTIONS = ("none", "quarantine", "delete")
# The tasks the daemon runs on a schedule (Enrollment and Scan run by hand or by a job).
DEFAULT_SCHEDULE = {
    "Getjobs": "* * * * *",
    "Runjobs": "* * * * *",
    "State": "0 * * * *",
    "Alerts": "*/5 * * * *",
    "AVConfig": "0 */6 * * *",
    "Scheduler": "*/15 * * * *",
}
TASKS = tuple(DEFAULT_SCHEDULE)
MIB = 1024 * 1024


# -- value parsing -------------------------------------------------------------------------
# The same parsers read agent.toml and the Armadito attr/value pairs an administrator pushes
# (where every value is a string: "1", "quarantine", "/proc;/sys").


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
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ValueError(f"not an integer: {value!r}") from None
    if number < 0:
        raise ValueError("must not be negative")
    return number


def _seconds(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("not a number")
    try:
        return abs(float(str(value).strip()))
    except ValueError:
        raise ValueError(f"not a number: {value!r}") from None


def _list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    text = str(value).strip()
    if text.startswith("["):
        try:
            loaded = json.loads(text)
        except ValueError:
            raise ValueError(f"not a list: {text!r}") from None
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


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, not {type(value).__name__}")
    return value


Bool = Annotated[bool, BeforeValidator(_bool)]
Count = Annotated[int, BeforeValidator(_int)]
Seconds = Annotated[float, BeforeValidator(_seconds)]
Paths = Annotated[list[str], BeforeValidator(_list)]
Action = Annotated[str, BeforeValidator(_action)]
Text = Annotated[str, BeforeValidator(_string)]


class _Section(BaseModel):
    # Unknown keys are refused (a typo must not silently keep a default), and a value set
    # after loading (an AVConfig push) goes through the same parser as one read from the file.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ScanConfig(_Section):
    action: Action = "quarantine"
    exclude: Paths = Field(default_factory=lambda: ["/proc", "/sys", "/dev", "/run"])
    paths: Paths = Field(default_factory=lambda: ["/home", "/tmp"])  # noqa: S108
    max_file_size: Count = 100 * MIB
    archives: Bool = True
    archive_max_size: Count = 50 * MIB
    yara: Bool = True
    clamav: Bool = False
    progress_interval: Seconds = 10.0


class SpoolConfig(_Section):
    max_age_days: Count = 21
    max_bytes: Count = 64 * MIB


class DaemonConfig(_Section):
    long_poll: Count = 30
    max_db_age_days: Count = 30


class SensorsConfig(_Section):
    """``[sensors]``: the endpoint sensors ``garrison-agent run`` starts (Linux, root).

    The server's sensor policy (``GET /api/sensor-policy``) overrides the keys it sets
    (``garrison.common.sensor_policy.KEYS``); these local values are the fallback for the
    others, and for all of them while the server has no policy."""

    enabled: Bool = True
    process: Bool = True
    # Token bucket per sensor: events per second, and the burst it absorbs first.
    rate_per_second: Count = 2000
    burst: Count = 10000
    # Environment variables whose values are replaced by "<redacted>" (case-insensitive
    # globs on the name).
    redact: Paths = Field(default_factory=lambda: ["*TOKEN*", "*PASSWORD*", "*SECRET*", "*KEY*"])
    health_interval: Seconds = 60.0
    # Files up to this size are hashed on the event path; larger ones by the background
    # worker (up to hash_max_size; above it, no hash).
    hash_inline_max: Count = 8 * MIB
    hash_max_size: Count = 2048 * MIB
    # The netlink socket's receive buffer (SO_RCVBUFFORCE as root).
    netlink_rcvbuf: Count = 8 * MIB
    # The share of the spool's max_bytes sensor events may fill: the rest is kept for
    # alerts, scan results and job answers.
    spool_share: Seconds = 0.8
    # Events of processes whose file name or path matches one of these globs, and events
    # naming a file whose MD5 or SHA-256 is listed, are not sent (counted as ``excluded``).
    exclude_processes: Paths = Field(default_factory=list)
    exclude_hashes: Paths = Field(default_factory=list)
    # -- files, kernel modules, shared libraries ----------------------------------------------
    file: Bool = True
    # Trees where file_created is reported (a missing one is named in the sensor status).
    file_paths: Paths = Field(
        default_factory=lambda: [
            "/tmp",  # noqa: S108
            "/var/tmp",  # noqa: S108
            "/dev/shm",  # noqa: S108
            "/home",
            "/root",
            "/etc",
            "/usr/local/bin",
            "/usr/local/sbin",
        ]
    )
    # Absolute prefixes or globs on the path or the name, as scan.exclude.
    file_exclude: Paths = Field(
        default_factory=lambda: ["/home/*/.cache/*", "/root/.cache/*", "*.swp", "*.swx"]
    )
    # A created file still open for writing after this long is reported without hashes.
    file_hash_wait: Seconds = 5.0
    driver: Bool = True
    driver_interval: Seconds = 1.0  # how often /proc/modules is read
    module: Bool = True
    # /proc/<pid>/maps is read this long after an exec (the loader maps the libraries
    # then), and again after module_late (what it dlopen'd since).
    module_delay: Seconds = 0.05
    module_late: Seconds = 1.0
    module_dedupe: Count = 16384  # (image, library hash) pairs remembered
    # -- end of files, kernel modules, shared libraries ---------------------------------------
    # -- listening ports, OS log, terminal sessions (issue 14; docs/agent.md "Sensors") --
    ports: Bool = True
    # Seconds between two sweeps of the listening sockets (one sweep: about 1 ms).
    port_interval: Seconds = 1.0
    os_log: Bool = True
    # auto: the journal where journald runs, else os_log_path; or journal, or file.
    os_log_source: Text = "auto"
    os_log_path: Text = "/var/log/auth.log"
    os_log_journalctl: Text = "journalctl"
    terminal: Bool = True
    utmp_path: Text = "/var/run/utmp"
    # -- end of listening ports, OS log, terminal sessions --


class ResponseConfig(_Section):
    """Live response (issue 17): where GetFile may read, and whether a detected sample is
    uploaded with its alert (the server still decides: its setting upload_samples)."""

    allowed_roots: Paths = Field(default_factory=lambda: ["/"])
    upload_samples: Bool = False


class OnAccessConfig(_Section):
    """``[on_access]`` (AVConfig ``on-access:*``): prevention, see docs/agent.md "Prevention".

    ``enabled`` turns on-access scanning of ``paths`` on; blocking by the signed block list
    runs whenever the list has entries (``blocking``), on the filesystems of ``exec_scope``
    (``local``: every local filesystem; or mount points).  A decision not made within
    ``deadline`` seconds is allowed (fail open), counted and reported."""

    enabled: Bool = False
    paths: Paths = Field(default_factory=list)
    action: Action = "quarantine"
    blocking: Bool = True
    exec_scope: Paths = Field(default_factory=lambda: ["local"])
    deadline: Seconds = 0.5
    max_file_size: Count = 32 * MIB
    verdict_cache: Count = 65536


class ServerConfig(_Section):
    url: Text = ""
    ca_sha256: Text = ""


class LocationConfig(_Section):
    """``[location]``: where the station is, reported with every State (the server emits
    ``station_geolocation_changed`` when it changes).  Both or neither; decimal degrees,
    at most six decimals (``DD.DDDDDD``)."""

    latitude: float | None = None
    longitude: float | None = None

    @model_validator(mode="after")
    def _both_in_range(self) -> LocationConfig:
        geolocation.location(self.latitude, self.longitude)  # a ValueError names the key
        return self

    def place(self) -> tuple[float, float] | None:
        return geolocation.location(self.latitude, self.longitude)


def _schedule(value: Any) -> dict[str, str]:
    """A table of task = cron over the default schedule: tasks not named keep theirs."""
    if not isinstance(value, dict):
        raise ValueError("must be a table of task = cron")
    schedule = dict(DEFAULT_SCHEDULE)
    for task, cron in value.items():
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; tasks: {', '.join(TASKS)}")
        schedule[task] = validate_cron(str(cron))
    return schedule


class AgentConfig(_Section):
    """agent.toml; every table and key is optional (a missing one keeps its default)."""

    # Tables of later versions or hand-written notes are left alone; keys inside a known
    # table are checked.
    model_config = ConfigDict(extra="ignore", validate_assignment=True)

    server: ServerConfig = Field(default_factory=ServerConfig)
    scan: ScanConfig = Field(default_factory=ScanConfig)
    spool: SpoolConfig = Field(default_factory=SpoolConfig)
    daemon: DaemonConfig = Field(default_factory=DaemonConfig)
    sensors: SensorsConfig = Field(default_factory=SensorsConfig)
    location: LocationConfig = Field(default_factory=LocationConfig)
    response: ResponseConfig = Field(default_factory=ResponseConfig)
    on_access: OnAccessConfig = Field(default_factory=OnAccessConfig)
    scheduler: Annotated[dict[str, str], BeforeValidator(_schedule)] = Field(
        default_factory=lambda: dict(DEFAULT_SCHEDULE)
    )


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


# The Armadito-style names an administrator sees ("scan:action"), for every key of the
# tables AVConfig reports and applies: attr -> (table, key).
AVCONFIG_TABLES: dict[str, type[_Section]] = {
    "scan": ScanConfig,
    "spool": SpoolConfig,
    "daemon": DaemonConfig,
    "response": ResponseConfig,
    "on-access": OnAccessConfig,  # Armadito's own name for it; the table is [on_access]
}
AVCONFIG_ATTRS: dict[str, tuple[str, str]] = {
    f"{table}:{key}": (table.replace("-", "_"), key)
    for table, model in AVCONFIG_TABLES.items()
    for key in model.model_fields
}
READ_ONLY_ATTRS: dict[str, str] = {}
SCHEDULER_PREFIX = "scheduler:task:"


def _wire(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    return str(value)


def _problem(error: ValidationError) -> str:
    """The first of a validation error's problems, in one line, without pydantic's prefix."""
    first = error.errors(include_url=False)[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    elif first["type"] == "model_type":
        message = "must be a table"
    return message


def avconfig_pairs(config: AgentConfig) -> list[dict[str, str]]:
    pairs = [
        {"attr": attr, "value": _wire(getattr(getattr(config, table), key))}
        for attr, (table, key) in AVCONFIG_ATTRS.items()
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
        table, key = spec
        try:
            setattr(getattr(config, table), key, value)  # validated: see _Section
        except ValidationError as exc:
            problems.append(f"{attr}: {_problem(exc)}")
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


def load(path: Path) -> AgentConfig:
    """agent.toml, checked; a missing file is the defaults.  LocalError names the file and
    the first key that is wrong, in one line."""
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return AgentConfig()
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise LocalError(f"cannot read config {path}: {exc}") from None
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as exc:
        loc = ".".join(str(part) for part in exc.errors()[0]["loc"])
        raise LocalError(f"config {path}: {loc}: {_problem(exc)}") from None


def save(path: Path, config: AgentConfig) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_private(path, tomli_w.dumps(config.model_dump(exclude_none=True)).encode())
    except OSError as exc:
        raise LocalError(f"cannot write config {path}: {exc.strerror}") from None
