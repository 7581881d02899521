"""The syslog header splits the parsers do before reading a message."""

from __future__ import annotations

import re
from dataclasses import dataclass

from syslog_rfc5424_parser import SyslogMessage

# Wazuh's pre-decoding of a BSD (RFC 3164) line, after remoted drops the ``<PRI>``:
# ``Mmm dd hh:mm:ss hostname program[pid]: message``.  It has no RFC 5424 form: a
# ``<PRI>1 2026-…`` line is not split at all, and no decoder sees a program name.
_PRI = re.compile(r"^<(\d{1,3})>")
_BSD = re.compile(
    r"^(?P<timestamp>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (?P<hostname>\S+) "
    r"(?P<program>[^\s\[\]:]+)(?:\[(?P<pid>\d+)\])?: (?P<message>.*)$",
    re.DOTALL,
)


@dataclass(frozen=True)
class Header:
    facility: int
    severity: int
    hostname: str
    program: str  # the program name (RFC 3164 tag, RFC 5424 APP-NAME)
    pid: str
    msgid: str
    message: str


def wazuh_predecode(line: str) -> Header | None:
    pri = _PRI.match(line)
    if pri is None:
        return None
    match = _BSD.match(line[pri.end() :])
    if match is None:
        return None
    value = int(pri.group(1))
    return Header(
        value // 8,
        value % 8,
        match["hostname"],
        match["program"],
        match["pid"] or "",
        "",
        match["message"],
    )


def syslog(line: str) -> Header | None:
    """A relay's reading of either envelope (rsyslog's, Beats'): the RFC 3164 split above,
    or an RFC 5424 parser's, whose MSG keeps a BOM if one was sent."""
    bsd = wazuh_predecode(line)
    if bsd is not None:
        return bsd
    try:
        parsed = SyslogMessage.parse(line)
    except Exception:
        return None
    return Header(
        int(parsed.facility),
        int(parsed.severity),
        str(parsed.hostname),
        str(parsed.appname),
        str(parsed.procid),
        str(parsed.msgid or "-"),
        str(parsed.msg),
    )


def body(line: str) -> str:
    """The message of a line either envelope holds."""
    header = syslog(line)
    if header is None:
        raise ValueError(f"not a syslog line: {line!r}")
    return header.message
