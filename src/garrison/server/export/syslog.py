"""Syslog envelopes (RFC 5424, RFC 3164) and framing (newline, RFC 6587 octet counting)."""

from __future__ import annotations

import datetime as dt
import re
import socket

from garrison.common.vocabulary import Severity

BOM = "\ufeff"
FACILITY_USER = 1
FACILITY_LOCAL7 = 23
# Severity of the syslog header, from the event's severity.
SYSLOG_SEVERITY: dict[str, int] = {
    Severity.INFORMATION: 6,
    Severity.NOTICE: 5,
    Severity.WARNING: 4,
    Severity.ERROR: 3,
    Severity.CRITICAL: 2,
    Severity.FATAL: 1,
}
HOSTNAME = socket.gethostname() or "garrison"
APP_NAME = "garrison"
ESET_APP_NAME = "ERAServer"  # ESET PROTECT Server's syslog identity, which its parsers match
# What a receiver may take for the end of a message (or mangle): C0 controls but the tab,
# DEL, C1 controls (U+0085 NEL among them) and the Unicode line and paragraph separators.  Each
# format escapes them in its own way (see formats.py); none ever reaches the wire raw.
SEPARATORS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


def _unicode_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def escape_separators(text: str) -> str:
    """Each separator as ``\\uXXXX``: lossless in JSON strings (a valid escape there) and
    in CEF values (whose backslashes are doubled first, so the escape is unambiguous)."""
    return SEPARATORS.sub(_unicode_escape, text)


def blank_separators(text: str) -> str:
    """Each separator as a space: for fields whose syntax has no escape (LEEF, headers)."""
    return SEPARATORS.sub(" ", text)


# The envelope's own guard, whatever the format: line terminators only (a LEEF payload's
# attribute delimiter is a tab or another control, which must stay).
_LINE_BREAKS = re.compile("[\r\n\x85\u2028\u2029]")


def _truncate_utf8(text: str, limit: int) -> str:
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    return raw[:limit].decode("utf-8", errors="ignore")


def envelope(
    payload: str,
    *,
    severity: str,
    time: dt.datetime,
    kind: str = "rfc5424",
    msgid: str = "-",
    bom: bool = False,
    max_bytes: int = 8192,
    facility: int = FACILITY_USER,
    app_name: str = APP_NAME,
    procid: int | None = None,
) -> bytes:
    """The whole syslog message, truncated to ``max_bytes`` (ESET cuts at 8 KB).  With a
    ``procid`` the RFC 5424 PROCID is that number and the RFC 3164 tag ``app[procid]:``."""
    pri = facility * 8 + SYSLOG_SEVERITY.get(severity, 6)
    payload = _LINE_BREAKS.sub(" ", payload)  # one message, one line
    if kind == "rfc5424":
        stamp = time.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        msgid = (msgid or "-")[:32].replace(" ", "_")
        proc = "-" if procid is None else str(procid)
        head = f"<{pri}>1 {stamp} {HOSTNAME} {app_name} {proc} {msgid} - "
        body = (BOM if bom else "") + payload
    elif kind == "rfc3164":
        local = time.astimezone(dt.UTC)
        stamp = f"{local.strftime('%b')} {local.day:>2} {local.strftime('%H:%M:%S')}"
        tag = app_name if procid is None else f"{app_name}[{procid}]"
        head = f"<{pri}>{stamp} {HOSTNAME} {tag}: "
        body = (BOM if bom else "") + payload
    else:
        raise ValueError(f"unknown syslog envelope {kind!r}")
    room = max_bytes - len(head.encode("utf-8"))
    return (head + _truncate_utf8(body, max(room, 0))).encode("utf-8")


def frame(message: bytes, framing: str) -> bytes:
    if framing == "octet":
        return str(len(message)).encode() + b" " + message
    if framing == "newline":
        return message + b"\n"
    if framing == "none":  # UDP: one datagram, one message
        return message
    raise ValueError(f"unknown framing {framing!r}")
