"""Export targets: create, list, change, delete (each with its own event-log cursor)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from garrison.server.audit import service as audit
from garrison.server.audit.actor import Actor
from garrison.server.errors import ConflictError, InvalidInputError, NotFoundError
from garrison.server.events import consumers
from garrison.server.events.service import last_position
from garrison.server.export.config import (
    FORMAT_NAMES,
    TRANSPORT_NAMES,
    TargetOptions,
    header_problem,
    profile_of,
    profile_problem,
)
from garrison.server.export.confinement import Confinement, ConfinementError, UnresolvedError
from garrison.server.export.models import ExportTarget
from garrison.server.export.policy import ExportPolicy
from garrison.server.export.secrets import SET, SecretBox, is_secret_name
from garrison.server.store.base import utcnow


def cursor_name(target_id: int) -> str:
    return f"export:{target_id}"


def parse_options(raw: dict[str, Any]) -> TargetOptions:
    try:
        return TargetOptions.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        field = f"options.{where}" if where else "options"
        raise InvalidInputError(f"{field}: {first['msg']}", field=field) from None


def check_profile(format_: str, options: TargetOptions) -> None:
    problem = profile_problem(format_, options)
    if problem is not None:
        raise InvalidInputError(f"options.profile: {problem}", field="options.profile")


def _encodable(host: str) -> bool:
    try:
        host.encode("idna")
    except UnicodeError:
        return False
    return True


def check_host(host: str) -> None:
    """The resolver encodes a host name with IDNA: a name it cannot encode (an empty or
    64+ character label, characters IDNA refuses) can never be reached, and would fail
    every send with ``UnicodeError`` rather than a transport error."""
    if not _encodable(host):
        raise InvalidInputError(
            "host is not a host name or address that can be resolved", field="host"
        )


def check_url(url: str) -> None:
    """A webhook URL the HTTP client can parse and connect to: its host encodable as above
    and its port 1-65535 (the client parses ``:99999`` and fails at connect)."""
    try:
        parsed: httpx.URL | None = httpx.URL(url)
    except httpx.InvalidURL:
        parsed = None
    if (
        parsed is None
        or not parsed.host
        or not _encodable(parsed.host)
        or (parsed.port is not None and not 1 <= parsed.port <= 65535)
    ):
        raise InvalidInputError("url is not a URL the server can send to", field="url")


def check_address(transport: str, host: str, url: str) -> None:
    """The host (or webhook URL) of a target can be sent to at all; see check_host."""
    if transport in ("udp", "tcp", "tls", "relp") and host:
        check_host(host)
    if transport == "http":
        check_url(url)


def _check(
    confinement: Confinement,
    format_: str,
    transport: str,
    host: str,
    port: int,
    path: str,
    url: str,
) -> None:
    if format_ not in FORMAT_NAMES:
        raise InvalidInputError(f"format must be one of {', '.join(FORMAT_NAMES)}", field="format")
    if transport not in TRANSPORT_NAMES:
        raise InvalidInputError(
            f"transport must be one of {', '.join(TRANSPORT_NAMES)}", field="transport"
        )
    for name, value in (("host", host), ("path", path), ("url", url)):
        if "\x00" in value:
            raise InvalidInputError(f"{name} may not contain NUL", field=name)
    check_address(transport, host, url)
    try:
        if transport in ("udp", "tcp", "tls", "relp"):
            if not host:
                raise InvalidInputError(f"a {transport} target needs a host", field="host")
            if not 1 <= port <= 65535:
                raise InvalidInputError("port must be 1-65535", field="port")
            _check_address(confinement, host, port, "host")
        if transport == "file":
            if not path:
                raise InvalidInputError("a file target needs a path", field="path")
            confinement.file_path(path)
        if transport == "http":
            _check_url(confinement, url)
    except ConfinementError as exc:
        raise exc.as_input_error() from None


def _check_address(confinement: Confinement, host: str, port: int, field: str) -> None:
    # A name that does not resolve yet is checked again when it connects.
    with contextlib.suppress(UnresolvedError):
        confinement.resolve(host, port, field=field)


def _check_url(confinement: Confinement, url: str) -> None:
    if not url.startswith(("http://", "https://")):
        raise InvalidInputError("an http target needs an http(s):// url", field="url")
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise InvalidInputError(f"url: {exc}", field="url") from None
    if not parts.hostname:
        raise InvalidInputError("url needs a host", field="url")
    if parts.username is not None or parts.password is not None:
        raise InvalidInputError(
            "url may not hold credentials: give them as a header (e.g. Authorization), "
            "which is kept secret",
            field="url",
        )
    for name, _ in parse_qsl(parts.query, keep_blank_values=True):
        if is_secret_name(name):
            raise InvalidInputError(
                f"url: the query parameter {name!r} looks like a credential: give it as a "
                "header, which is kept secret",
                field="url",
            )
    _check_address(confinement, parts.hostname, port, "url")


def _seal_headers(
    box: SecretBox, given: dict[str, str], sealed_now: dict[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """(public headers, sealed secret headers) from the headers an administrator gave; a
    secret given as ``"(set)"`` keeps its current sealed value."""
    public: dict[str, str] = {}
    sealed: dict[str, str] = {}
    current = {name.lower(): value for name, value in sealed_now.items()}
    for name, value in given.items():
        field = f"options.http_headers.{name}"
        problem = header_problem(name, value)
        if problem is not None:
            raise InvalidInputError(f"{field}: {problem}", field=field)
        if not is_secret_name(name):
            public[name] = value
        elif value == SET:
            if name.lower() not in current:
                raise InvalidInputError(f"{field}: no value is set yet: give it", field=field)
            sealed[name] = current[name.lower()]
        else:
            sealed[name] = box.seal(value)
    return public, sealed


def sealed_headers(target: ExportTarget) -> dict[str, str]:
    headers = (target.secrets or {}).get("http_headers") or {}
    return {str(k): str(v) for k, v in headers.items()}


def shown_options(target: ExportTarget) -> dict[str, Any]:
    """The options as the API shows them: each secret as ``"(set)"``."""
    options = parse_options(target.options)
    shown = options.model_dump()
    shown["profile"] = profile_of(target.format, options)  # the one in use
    shown["http_headers"] = {
        **shown["http_headers"],
        **{name: SET for name in sealed_headers(target)},
    }
    return shown


def create(
    session: Session,
    policy: ExportPolicy,
    actor: Actor,
    name: str,
    format_: str,
    transport: str,
    host: str = "",
    port: int = 0,
    path: str = "",
    url: str = "",
    options: dict[str, Any] | None = None,
    enabled: bool = True,
    start_at: str = "now",
) -> ExportTarget:
    _check(policy.confinement, format_, transport, host, port, path, url)
    checked = parse_options(options or {})
    check_profile(format_, checked)
    public, sealed = _seal_headers(policy.box, checked.http_headers, {})
    checked.http_headers = public
    if session.scalar(select(ExportTarget.id).where(ExportTarget.name == name)) is not None:
        raise ConflictError(f"export target {name!r} already exists", field="name")
    if start_at not in ("now", "beginning"):
        raise InvalidInputError("start_at must be now or beginning", field="start_at")
    target = ExportTarget(
        name=name,
        format=format_,
        transport=transport,
        host=host,
        port=port,
        path=path,
        url=url,
        options=checked.model_dump(exclude_defaults=True),
        secrets={"http_headers": sealed} if sealed else {},
        enabled=enabled,
    )
    session.add(target)
    session.flush()
    # "now": a new SIEM gets events from now on, not the whole history.
    consumers.ensure_cursor(session, cursor_name(target.id), start_at_end=start_at == "now")
    audit.record(session, actor, "export_target.create", name, format=format_, transport=transport)
    return target


def get(session: Session, target_id: int) -> ExportTarget:
    target = session.get(ExportTarget, target_id)
    if target is None:
        raise NotFoundError(f"no export target {target_id}")
    return target


def list_all(session: Session) -> list[ExportTarget]:
    return list(session.scalars(select(ExportTarget).order_by(ExportTarget.id)))


def update(
    session: Session,
    policy: ExportPolicy,
    actor: Actor,
    target_id: int,
    changes: dict[str, Any],
) -> ExportTarget:
    """``options`` are merged into the current ones; ``options.http_headers``, when given,
    replaces the headers, a secret one given as ``"(set)"`` keeping its value."""
    target = get(session, target_id)
    merged = {
        "format_": changes.get("format", target.format),
        "transport": changes.get("transport", target.transport),
        "host": changes.get("host", target.host),
        "port": changes.get("port", target.port),
        "path": changes.get("path", target.path),
        "url": changes.get("url", target.url),
    }
    _check(policy.confinement, **merged)
    options = dict(target.options)
    given = changes.get("options") or {}
    options.update(given)
    checked = parse_options(options)
    check_profile(merged["format_"], checked)
    if "http_headers" in given:
        public, sealed = _seal_headers(policy.box, checked.http_headers, sealed_headers(target))
        checked.http_headers = public
        target.secrets = {"http_headers": sealed} if sealed else {}
    target.format = merged["format_"]
    target.transport = merged["transport"]
    target.host, target.port = merged["host"], merged["port"]
    target.path, target.url = merged["path"], merged["url"]
    target.options = checked.model_dump(exclude_defaults=True)
    if "enabled" in changes:
        target.enabled = bool(changes["enabled"])
    if "name" in changes and changes["name"] != target.name:
        taken = session.scalar(
            select(ExportTarget.id).where(
                ExportTarget.name == changes["name"], ExportTarget.id != target_id
            )
        )
        if taken is not None:
            raise ConflictError(f"export target {changes['name']!r} already exists", field="name")
        target.name = str(changes["name"])
    target.updated_at = utcnow()
    audit.record(session, actor, "export_target.update", target.name, changed=sorted(changes))
    return target


def seal_clear_secrets(session: Session, box: SecretBox) -> int:
    """Seal the secret headers stored in clear by a version before sealing existed; returns
    how many targets changed."""
    changed = 0
    for target in list_all(session):
        headers = dict((target.options or {}).get("http_headers") or {})
        clear = {name: value for name, value in headers.items() if is_secret_name(name)}
        if not clear:
            continue
        sealed = sealed_headers(target)
        sealed.update({name: box.seal(str(value)) for name, value in clear.items()})
        options = dict(target.options)
        options["http_headers"] = {n: v for n, v in headers.items() if n not in clear}
        target.options = options
        target.secrets = {"http_headers": sealed}
        changed += 1
    return changed


def delete(session: Session, actor: Actor, target_id: int) -> None:
    target = get(session, target_id)
    consumers.delete_cursor(session, cursor_name(target_id))
    audit.record(session, actor, "export_target.delete", target.name)
    session.delete(target)


@dataclass(frozen=True)
class TargetView:
    """A target with how far it has got: ``position`` is the last event sequence it
    exported, ``lag`` how many stored events it has still to send; ``counters``: the events
    it has handled (sent, or filtered out), its failed sends and the last one's error, from
    every node."""

    target: ExportTarget
    position: int
    lag: int
    counters: consumers.Counters


def views(session: Session, rows: list[ExportTarget]) -> list[TargetView]:
    newest = last_position(session)
    out = []
    for t in rows:
        name = cursor_name(t.id)
        position = consumers.position(session, name)
        counted = consumers.counters(session, name)
        out.append(TargetView(t, position, max(newest - position, 0), counted))
    return out


def view(session: Session, target: ExportTarget) -> TargetView:
    return views(session, [target])[0]
