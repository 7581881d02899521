"""Authentication lines of sshd, su and sudo, parsed into ``os_log_event`` fields.

Two inputs: a syslog line of ``/var/log/auth.log`` (the traditional ``May 20 10:00:00 host
sshd[123]: …`` or rsyslog's RFC 3339 ``2025-05-20T10:00:00.123456+00:00 host sshd[123]: …``),
and a journal record (``journalctl -o json``: ``MESSAGE``, ``SYSLOG_IDENTIFIER``, ``_PID``…).
Both come down to (identifier, pid, message), and :func:`parse_auth` reads the message.
Lines that are not one of the authentication events below are not events (None).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

# auth_subtype values
SSH_ACCEPTED = "ssh_login"
SSH_FAILED = "ssh_login_failed"
SSH_INVALID_USER = "ssh_invalid_user"
SU_SESSION = "su"
SU_FAILED = "su_failed"
SUDO_COMMAND = "sudo"
SUDO_FAILED = "sudo_failed"

MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_TRADITIONAL = re.compile(
    r"^(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) (?P<clock>\d\d:\d\d:\d\d) "
    r"(?P<host>\S+) (?P<ident>[^\s\[:]+)(?:\[(?P<pid>\d+)\])?: (?P<msg>.*)$"
)
_RFC3339 = re.compile(
    r"^(?P<stamp>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) "
    r"(?P<host>\S+) (?P<ident>[^\s\[:]+)(?:\[(?P<pid>\d+)\])?: (?P<msg>.*)$"
)
_ADDR = r"(?P<ip>[0-9A-Fa-f:.]+(?:%\w+)?)"
_SSH_ACCEPTED = re.compile(
    rf"^Accepted (?P<method>\S+) for (?P<user>\S+) from {_ADDR} port (?P<port>\d+)"
)
_SSH_FAILED = re.compile(
    rf"^Failed (?P<method>\S+) for (?P<invalid>invalid user )?(?P<user>\S*) from {_ADDR}"
    r"(?: port (?P<port>\d+))?"
)
_SSH_INVALID = re.compile(rf"^Invalid user (?P<user>\S*) from {_ADDR}(?: port (?P<port>\d+))?")
# su (util-linux): "(to root) alice on pts/0"; shadow's su: "Successful su for root by alice"
_SU_TO = re.compile(r"^\(to (?P<target>\S+)\) (?P<user>\S+) on (?P<tty>\S+)")
_SU_OK = re.compile(r"^Successful su for (?P<target>\S+) by (?P<user>\S+)")
_SU_FAILED = re.compile(r"^FAILED su for (?P<target>\S+) by (?P<user>\S+)")
_SU_FAILED_TO = re.compile(r"^FAILED SU \(to (?P<target>\S+)\) (?P<user>\S+) on (?P<tty>\S+)")
_PAM_SU_FAILURE = re.compile(
    r"^pam_unix\(su(?:-l)?:auth\): authentication failure;.*?ruser=(?P<user>\S*).*?"
    r"(?: user=(?P<target>\S+))?$"
)
# sudo: "alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/ls -l"
_SUDO = re.compile(r"^\s*(?P<user>\S+) : (?P<rest>.*)$")


@dataclass
class SyslogLine:
    time: float | None
    host: str
    ident: str
    pid: int | None
    message: str


@dataclass
class AuthEvent:
    auth_subtype: str
    result: str  # success or failure
    provider: str
    user: str
    fields: dict[str, Any] = field(default_factory=dict)


def _year_for(month: int, now: dt.datetime) -> int:
    # Traditional syslog has no year: a December line read in January is last year's.
    return now.year - 1 if month > now.month + 1 else now.year


def parse_syslog(line: str, now: dt.datetime | None = None) -> SyslogLine | None:
    text = line.rstrip("\r\n")
    match = _RFC3339.match(text)
    when: float | None = None
    if match is not None:
        try:
            when = dt.datetime.fromisoformat(match["stamp"].replace("Z", "+00:00")).timestamp()
        except ValueError:
            when = None
    else:
        match = _TRADITIONAL.match(text)
        if match is None:
            return None
        local = now or dt.datetime.now()
        month = MONTHS.get(match["mon"])
        if month is not None:
            try:
                hour, minute, second = (int(x) for x in match["clock"].split(":"))
                stamp = dt.datetime(
                    _year_for(month, local), month, int(match["day"]), hour, minute, second
                )
                when = stamp.timestamp()  # local time, as syslog wrote it
            except ValueError:
                when = None
    pid = int(match["pid"]) if match["pid"] else None
    return SyslogLine(when, match["host"], match["ident"], pid, match["msg"])


def _ip(text: str | None) -> str | None:
    if not text:
        return None
    try:
        return str(ipaddress.ip_address(text.split("%", 1)[0]))
    except ValueError:
        return None


def _ssh(message: str) -> AuthEvent | None:
    match = _SSH_ACCEPTED.match(message)
    if match is not None:
        event = AuthEvent(SSH_ACCEPTED, "success", "sshd", match["user"])
        event.fields.update(auth_method=match["method"])
    elif (match := _SSH_FAILED.match(message)) is not None:
        event = AuthEvent(SSH_FAILED, "failure", "sshd", match["user"])
        event.fields.update(auth_method=match["method"], invalid_user=bool(match["invalid"]))
    elif (match := _SSH_INVALID.match(message)) is not None:
        event = AuthEvent(SSH_INVALID_USER, "failure", "sshd", match["user"])
        event.fields.update(invalid_user=True)
    else:
        return None
    remote_ip = _ip(match["ip"])
    if remote_ip is not None:
        event.fields["remote_ip"] = remote_ip
    if match["port"]:
        event.fields["remote_port"] = int(match["port"])
    return event


def _su(message: str) -> AuthEvent | None:
    for pattern, subtype, result in (
        (_SU_TO, SU_SESSION, "success"),
        (_SU_OK, SU_SESSION, "success"),
        (_SU_FAILED, SU_FAILED, "failure"),
        (_SU_FAILED_TO, SU_FAILED, "failure"),
        (_PAM_SU_FAILURE, SU_FAILED, "failure"),
    ):
        match = pattern.match(message)
        if match is not None:
            event = AuthEvent(subtype, result, "su", match["user"] or "")
            groups = match.groupdict()
            if groups.get("target"):
                event.fields["target_user"] = groups["target"]
            if groups.get("tty"):
                event.fields["tty"] = groups["tty"]
            return event
    return None


def _sudo(message: str) -> AuthEvent | None:
    match = _SUDO.match(message)
    if match is None or "COMMAND=" not in match["rest"]:
        return None
    parts = [p.strip() for p in match["rest"].split(" ; ")]
    pairs: dict[str, str] = {}
    notes: list[str] = []
    for index, part in enumerate(parts):
        name, sep, value = part.partition("=")
        if sep and name.isupper():
            if name == "COMMAND":  # the command may itself hold " ; ": keep all of it
                value = " ; ".join([value, *parts[index + 1 :]])
                pairs[name] = value
                break
            pairs[name] = value
        else:
            notes.append(part)
    failed = bool(notes)  # "3 incorrect password attempts", "user NOT in sudoers", …
    event = AuthEvent(
        SUDO_FAILED if failed else SUDO_COMMAND,
        "failure" if failed else "success",
        "sudo",
        match["user"],
    )
    event.fields["command"] = pairs.get("COMMAND", "")
    for key, name in (("USER", "target_user"), ("TTY", "tty"), ("PWD", "working_directory")):
        if key in pairs:
            event.fields[name] = pairs[key]
    if notes:
        event.fields["failure_reason"] = "; ".join(notes)
    return event


def parse_auth(ident: str, message: str) -> AuthEvent | None:
    """The authentication event a (program, message) pair is, if any."""
    name = ident.rsplit("/", 1)[-1]
    if name.startswith("sshd"):  # sshd, sshd-session (OpenSSH 9.8+)
        return _ssh(message)
    if name == "su":
        return _su(message)
    if name == "sudo":
        return _sudo(message)
    return None


def journal_line(record: dict[str, Any]) -> SyslogLine | None:
    """A ``journalctl -o json`` record as the syslog line it would be."""
    message = record.get("MESSAGE")
    if isinstance(message, list):  # journalctl gives non-UTF-8 messages as byte arrays
        message = bytes(int(b) & 0xFF for b in message).decode("utf-8", errors="replace")
    if not isinstance(message, str):
        return None
    ident = record.get("SYSLOG_IDENTIFIER") or record.get("_COMM") or ""
    pid_text = record.get("SYSLOG_PID") or record.get("_PID")
    try:
        pid = int(pid_text) if pid_text else None
    except (TypeError, ValueError):
        pid = None
    when: float | None = None
    stamp = record.get("__REALTIME_TIMESTAMP")
    try:
        when = int(stamp) / 1e6 if stamp else None
    except (TypeError, ValueError):
        when = None
    return SyslogLine(when, str(record.get("_HOSTNAME", "")), str(ident), pid, message)


def user_domain(user: str) -> str | None:
    """The domain of a directory account's name, as sssd and winbind spell them
    (``alice@EXAMPLE.COM``, ``EXAMPLE\\alice``); None for a local account, which has none."""
    if "@" in user:
        domain = user.rsplit("@", 1)[1]
        return domain or None
    if "\\" in user:
        domain = user.split("\\", 1)[0]
        return domain or None
    return None
