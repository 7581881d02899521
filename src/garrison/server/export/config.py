"""An export target's settings, checked: what the admin API accepts and the exporter uses."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from garrison.common.vocabulary import Severity

FORMAT_NAMES = ("eset-json", "leef", "leef2", "cef")
TRANSPORT_NAMES = ("udp", "tcp", "tls", "relp", "file", "http")
PROFILE_NAMES = ("eset", "garrison")
# The formats the eset profile exists for (ESET PROTECT sends JSON, LEEF 1.0 and CEF) and
# the profile each format has when the target does not choose one.
ESET_FORMATS = ("eset-json", "leef", "cef")
DEFAULT_PROFILE = {"eset-json": "eset", "leef": "garrison", "leef2": "garrison", "cef": "garrison"}
INSPECT_NAMES = ("EnterpriseInspectorAlert_Event", "ESET Inspect Alert")


class TargetOptions(BaseModel):
    """Everything but name, format, transport and address."""

    model_config = ConfigDict(extra="forbid")

    profile: Literal["eset", "garrison"] | None = Field(
        default=None,
        description="whose identity the stream carries: eset (ESET PROTECT's, for the parsers "
        "built for it) or garrison; unset: eset for eset-json, garrison for the others",
    )
    inspect_alert_name: Literal["EnterpriseInspectorAlert_Event", "ESET Inspect Alert"] = Field(
        default="EnterpriseInspectorAlert_Event",
        description="eset profile: the type name of EDR alarms (newer ESET sends the second)",
    )
    garrison_events: bool = Field(
        default=False,
        description="eset profile: also send Garrison's own event types, under Garrison's "
        "identity (the ESET parsers leave them alone)",
    )
    envelope: Literal["rfc5424", "rfc3164"] = "rfc5424"
    framing: Literal["newline", "octet"] = "newline"
    bom: bool = False
    max_message_bytes: int = Field(default=8192, ge=256, le=1024 * 1024)
    leef_delimiter: str = Field(default="^", min_length=1, max_length=1)
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_verify: bool = True
    relp_tls: bool = False
    event_types: list[str] = Field(default_factory=list, max_length=200)
    min_severity: Severity = Severity.INFORMATION
    groups: list[str] = Field(default_factory=list, max_length=200)
    hips_min_severity: Severity = Field(
        default=Severity.ERROR, description="HIPS events below this are not forwarded (ESET: Error)"
    )
    aggregation_window_seconds: float = Field(default=5.0, ge=0, le=3600)
    heartbeat_seconds: float = Field(default=60.0, ge=0, le=86400)
    max_backlog: int = Field(
        default=1_000_000,
        ge=0,
        description="events; older ones are dropped (counted) past it; 0 means unbounded",
    )
    batch_size: int = Field(default=500, ge=1, le=10_000)
    file_max_bytes: int = Field(default=100 * 1024 * 1024, ge=1024)
    file_keep: int = Field(default=5, ge=1, le=100)
    http_headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("event_types")
    @classmethod
    def _known_types(cls, value: list[str]) -> list[str]:
        from garrison.common.catalogue import CATALOGUE

        unknown = [t for t in value if t not in CATALOGUE]
        if unknown:
            raise ValueError(f"unknown event type {unknown[0]!r}")
        return value

    @field_validator("leef_delimiter")
    @classmethod
    def _usable_delimiter(cls, value: str) -> str:
        if value in "|=\\" or value.isalnum():
            raise ValueError("leef_delimiter cannot be |, =, \\ or a letter or digit")
        return value

    @model_validator(mode="after")
    def _check(self) -> TargetOptions:
        if self.tls_key and not self.tls_cert:
            raise ValueError("tls_key needs tls_cert")
        return self


def profile_of(format_: str, options: TargetOptions) -> str:
    """The profile a target of ``format_`` with ``options`` uses."""
    return options.profile or DEFAULT_PROFILE.get(format_, "garrison")


def profile_problem(format_: str, options: TargetOptions) -> str | None:
    """Why ``options`` do not go with ``format_``, or None."""
    if options.profile == "eset" and format_ not in ESET_FORMATS:
        return f"the eset profile is for {', '.join(ESET_FORMATS)}, not {format_}"
    if profile_of(format_, options) != "eset":
        if options.inspect_alert_name != INSPECT_NAMES[0]:
            return "inspect_alert_name needs the eset profile"
        if options.garrison_events:
            return "garrison_events needs the eset profile (the garrison profile sends them all)"
    return None


# Set by the HTTP client or meaningful for one connection only (RFC 9110 §7.6.1): a target
# that set them could address another virtual host than its URL names (Host), or smuggle
# a second request (Transfer-Encoding, Content-Length).
FORBIDDEN_HEADERS = frozenset(
    {
        "host",
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def header_problem(name: str, value: str) -> str | None:
    """Why ``name: value`` may not be sent, or None."""
    if not _TOKEN.match(name):
        return f"{name!r} is not a valid header name"
    if name.lower() in FORBIDDEN_HEADERS:
        return f"the {name} header is set by the server and may not be given"
    if _BAD_VALUE.search(value):
        return f"the {name} header's value holds a control character"
    return None
