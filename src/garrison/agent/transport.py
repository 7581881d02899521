"""HTTP to the Garrison server (httpx): the Armadito envelope, the bearer token, and errors
turned into the agent's typed errors (unreachable / refused / server error)."""

from __future__ import annotations

import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpx

from garrison import __version__
from garrison.agent import ENGINE_NAME, host
from garrison.agent.errors import BusyError, RefusedError, ServerError, UnreachableError
from garrison.agent.trust import tls_failure

TIMEOUT = httpx.Timeout(30.0, connect=10.0)


@dataclass
class Identity:
    uuid: str
    agent_id: int = 0
    token: str = ""


def api_url(base: str, path: str) -> str:
    return f"{base.rstrip('/')}/api/{path.strip('/')}"


def _error_text(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        text = response.text.strip().splitlines()
        return text[0][:200] if text else response.reason_phrase
    if isinstance(data, dict):
        for key in ("message", "error", "detail"):
            if isinstance(data.get(key), str) and data[key]:
                return str(data[key])
    return response.reason_phrase


# Refusals that are not about the request: the server asks to be tried again later.
BUSY_STATUSES = (429, 503)
# A Retry-After beyond this is not believed (a misconfigured proxy must not park a fleet).
RETRY_AFTER_MAX_SECONDS = 300.0


def retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` in seconds (the HTTP-date form is not used by Garrison: ignored)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if seconds != seconds or seconds < 0:  # NaN
        return None
    return min(seconds, RETRY_AFTER_MAX_SECONDS)


class Transport:
    def __init__(
        self,
        base_url: str,
        identity: Identity,
        timeout: float | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        """``verify``: what the server's certificate is checked against (``trust.verify_for``:
        the pinned CA, or the system's CAs)."""
        if not base_url:
            raise UnreachableError("no server URL: give -s URL (or enroll first)")
        if not base_url.startswith(("http://", "https://")):
            raise UnreachableError(f"server URL must start with http:// or https://: {base_url}")
        self.base_url = base_url
        self.identity = identity
        self.verify = verify
        self.client = httpx.Client(
            verify=verify,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)) if timeout else TIMEOUT,
            headers={
                "X-Garrison-Agent": __version__,
                "User-Agent": f"garrison-agent/{__version__}",
            },
        )

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def envelope(self, task: str, obj: Any) -> dict[str, Any]:
        return {
            "agent_id": self.identity.agent_id,
            "agent_version": __version__,
            "uuid": self.identity.uuid,
            "hostname": host.hostname(),
            "mac": host.mac_address(),
            "platform": host.platform_name(),
            "task": {
                "name": task,
                "antivirus": {
                    "name": ENGINE_NAME,
                    "version": __version__,
                    "program_path": "",
                    "os_info": host.os_info(),
                },
                "obj": obj,
            },
        }

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.identity.token:
            headers["Authorization"] = f"Bearer {self.identity.token}"
        return headers

    def _send(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Any = None,
        timeout: float | None = None,
        headers: dict[str, str] | None = None,
        content: Iterable[bytes] | None = None,
    ) -> httpx.Response:
        url = api_url(self.base_url, path)
        try:
            response = self.client.request(
                method,
                url,
                json=json_body,
                content=content,
                params=params,
                headers={**self._headers(), **(headers or {})},
                timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TimeoutException:
            raise UnreachableError(f"server {self.base_url} did not answer in time") from None
        except httpx.HTTPError as exc:
            refused = tls_failure(exc, self.base_url, self.verify)
            if refused is not None:
                raise refused from None
            reason = str(exc) or type(exc).__name__
            raise UnreachableError(f"server {self.base_url} unreachable: {reason}") from None
        if response.status_code in BUSY_STATUSES:
            raise BusyError(
                f"server busy on {method} /api/{path.strip('/')} "
                f"({response.status_code}): {_error_text(response)}",
                response.status_code,
                retry_after(response.headers.get("retry-after")),
            )
        if 400 <= response.status_code < 500:
            raise RefusedError(
                f"server refused {method} /api/{path.strip('/')} "
                f"({response.status_code}): {_error_text(response)}",
                response.status_code,
            )
        if response.status_code >= 500 or response.status_code < 200:
            raise ServerError(
                f"server error on {method} /api/{path.strip('/')} "
                f"({response.status_code}): {_error_text(response)}",
                response.status_code,
            )
        return response

    @staticmethod
    def _json(method: str, path: str, response: httpx.Response) -> Any:
        try:
            return response.json() if response.content.strip() else {}
        except ValueError:
            raise ServerError(
                f"server answered {method} /api/{path.strip('/')} with something that is not "
                f"JSON ({response.headers.get('content-type', 'no content type')})",
                response.status_code,
            ) from None

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Any = None,
        timeout: float | None = None,
    ) -> Any:
        response = self._send(method, path, json_body=json_body, params=params, timeout=timeout)
        return self._json(method, path, response)

    def get_if_changed(self, path: str, etag: str) -> tuple[str, Any] | None:
        """``(ETag, JSON body)``, or None when the server answers 304: what ``etag`` names
        is still current (a conditional GET: an unchanged answer costs no body)."""
        headers = {"If-None-Match": etag} if etag else None
        response = self._send("GET", path, headers=headers)
        if response.status_code == 304:
            return None
        return response.headers.get("etag", ""), self._json("GET", path, response)

    def put_stream(self, path: str, chunks: Iterable[bytes], size: int, params: Any = None) -> Any:
        """PUT ``size`` raw bytes from ``chunks`` (streamed, never held whole in memory) with
        the agent's credential; errors typed as every other call."""
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        response = self._send("PUT", path, params=params, headers=headers, content=chunks)
        return self._json("PUT", path, response)

    def post_task(self, path: str, task: str, obj: Any) -> Any:
        return self.request("POST", path, json_body=self.envelope(task, obj))

    def get(self, path: str, params: Any = None, timeout: float | None = None) -> Any:
        return self.request("GET", path, params=params, timeout=timeout)
