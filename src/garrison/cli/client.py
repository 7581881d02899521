"""The admin CLI's side of the admin API: where the server and token come from, one HTTP
client, and every failure turned into a one-line message with an exit code.

The CLI only speaks HTTP: it never imports server code (an import-linter contract says so), so
it works the same against a local server or one on another host.
"""

from __future__ import annotations

import os
import ssl
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_DATA_DIR = Path("garrison-data")
TOKEN_FILE = "admin.token"  # noqa: S105 (a file name)
URL_FILE = "server.url"  # where ``garrison serve`` says it listens
CA_FILE = Path("tls") / "ca.pem"  # the server's own CA (issue 21)
API_PREFIX = "/admin/v1"
TIMEOUT_SECONDS = 30.0

# Exit codes: 1 when the server (or the way to it) failed, 2 when the command line did.
EXIT_API = 1
EXIT_USAGE = 2


class CliError(Exception):
    """A failure the user sees as ``error: <message>`` and an exit code, never a traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_API) -> None:
        super().__init__(message)
        self.message = " ".join(message.split())  # always one line
        self.exit_code = exit_code


class UsageError(CliError):
    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_USAGE)


class ApiError(CliError):
    """The server answered with an error status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message, EXIT_API)
        self.status = status


def _env(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def data_dir(flag: Path | None, env: Mapping[str, str] | None = None) -> Path:
    """``--data-dir``, else ``GARRISON_DATA_DIR``, else ``./garrison-data`` (as ``serve``)."""
    env = os.environ if env is None else env
    if flag is not None:
        return flag
    from_env = _env(env, "GARRISON_DATA_DIR")
    return Path(from_env) if from_env else DEFAULT_DATA_DIR


def local_url(host: str, port: int, scheme: str = "http") -> str:
    """The URL a client on this machine reaches a server listening on ``host:port`` at (a
    wildcard address is reached through the loopback)."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # noqa: S104
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def write_url_file(data_dir_path: Path, host: str, port: int, scheme: str = "http") -> Path:
    """Written by ``garrison serve`` at start: the admin commands run next to it find its
    port without ``--server``.  Mode 0600, as every file of the data dir: only the server's
    user (and root) run the admin commands from it."""
    path = data_dir_path / URL_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(local_url(host, port, scheme) + "\n")
    path.chmod(0o600)
    return path


def _recorded_url(data_dir_flag: Path | None, env: Mapping[str, str]) -> tuple[str, str] | None:
    path = data_dir(data_dir_flag, env) / URL_FILE
    try:
        url = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return (url, f"from {path}") if url else None


def server_url(
    flag: str | None, data_dir_flag: Path | None = None, env: Mapping[str, str] | None = None
) -> tuple[str, str]:
    """The server's URL and where it came from: ``--server``, else ``GARRISON_SERVER_URL``,
    else the one the local server recorded in ``<data-dir>/server.url``, else the default."""
    env = os.environ if env is None else env
    url, origin = (flag or "").strip(), "--server"
    if not url:
        url, origin = _env(env, "GARRISON_SERVER_URL") or "", "GARRISON_SERVER_URL"
    if not url:
        url, origin = _recorded_url(data_dir_flag, env) or (DEFAULT_URL, "the default")
    if "://" not in url:
        url = f"http://{url}"
    return url.rstrip("/"), origin


def admin_token(
    flag: str | None, data_dir_flag: Path | None, env: Mapping[str, str] | None = None
) -> str:
    """``--token``, else ``GARRISON_TOKEN``, else the server's ``<data-dir>/admin.token``."""
    env = os.environ if env is None else env
    token = (flag or "").strip() or _env(env, "GARRISON_TOKEN")
    if token:
        return token
    path = data_dir(data_dir_flag, env) / TOKEN_FILE
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        token = ""
    except OSError as exc:
        raise UsageError(f"cannot read the token file {path}: {exc.strerror or exc}") from None
    if not token:
        raise UsageError(
            "no admin token: give --token, set GARRISON_TOKEN or point --data-dir "
            f"(GARRISON_DATA_DIR) at the server's data directory (no token in {path.absolute()})"
        )
    return token


def ca_file(data_dir_flag: Path | None, env: Mapping[str, str] | None = None) -> Path | None:
    """The CA an https server is checked against: ``GARRISON_CA_FILE``, else the local
    server's ``<data-dir>/tls/ca.pem`` when there is one; None: the system's CAs."""
    env = os.environ if env is None else env
    given = _env(env, "GARRISON_CA_FILE")
    if given:
        return Path(given)
    path = data_dir(data_dir_flag, env) / CA_FILE
    return path if path.is_file() else None


def _verify(ca: Path | None) -> ssl.SSLContext | bool:
    if ca is None:
        return True
    try:
        # The system's CAs too: a server with a certificate of a public CA (--tls-cert) is
        # trusted even where a data dir holds the server's own CA.
        context = ssl.create_default_context()
        context.load_verify_locations(cafile=str(ca))
        return context
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot use the CA file {ca}: {exc}") from None


def segment(value: str | int) -> str:
    """One path segment: a group or user name may hold ``/``, spaces or ``?``."""
    return urllib.parse.quote(str(value), safe="")


def _error_message(response: httpx.Response) -> str:
    """The API's JSON ``error`` field, or the HTTP status when the body is not the API's."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("error", "message", "detail"):
            text = body.get(key)
            if isinstance(text, str) and text:
                return text
    reason = f" {response.reason_phrase}" if response.reason_phrase else ""
    return f"server answered HTTP {response.status_code}{reason}"


@dataclass
class Api:
    """A thin client of ``/admin/v1``: JSON in, JSON out, :class:`CliError` on any failure."""

    url: str
    token: str | None = field(default=None, repr=False)
    timeout: float = TIMEOUT_SECONDS
    origin: str = "--server"  # where the URL came from, for "cannot reach" messages
    ca: Path | None = None  # the CA to check an https server against (see ca_file)

    def __post_init__(self) -> None:
        headers = {"Accept": "application/json", "User-Agent": "garrison-cli"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            self._http = httpx.Client(
                base_url=self.url + API_PREFIX,
                headers=headers,
                timeout=self.timeout,
                follow_redirects=True,  # e.g. a proxy sending http to https
                verify=_verify(self.ca),
            )
        except (httpx.InvalidURL, ValueError) as exc:
            raise UsageError(f"invalid server URL {self.url!r}: {exc}") from None

    def close(self) -> None:
        self._http.close()

    def _unreachable(self, exc: Exception) -> str:
        return (
            f"cannot reach server at {self.url} ({self.origin}): {exc}; "
            "give its URL with --server or GARRISON_SERVER_URL"
        )

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        raw: bytes | None = None,
    ) -> Any:
        """Returns the decoded JSON body (``None`` for 204 No Content); ``raw`` sends bytes
        (``application/octet-stream``) instead of a JSON body."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            if raw is not None:
                response = self._http.request(
                    method,
                    path,
                    params=query,
                    content=raw,
                    headers={"Content-Type": "application/octet-stream"},
                )
            else:
                response = self._http.request(method, path, params=query, json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise CliError(self._unreachable(exc)) from None
        except httpx.TimeoutException:
            raise CliError(
                f"server at {self.url} did not answer within {self.timeout:g} s"
            ) from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise UsageError(f"invalid server URL {self.url!r}: {exc}") from None
        except httpx.HTTPError as exc:
            raise CliError(self._unreachable(exc)) from None
        if response.is_error:
            raise ApiError(_error_message(response), response.status_code)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise CliError(
                f"server at {self.url} sent a response that is not JSON "
                f"(HTTP {response.status_code}); is this a Garrison server?"
            ) from None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def download(
        self,
        path: str,
        dest: Path,
        progress: Callable[[int, int | None], None] | None = None,
        **params: Any,
    ) -> int:
        """Stream a response body into ``dest`` (written to ``dest.part`` first, renamed when
        whole, so an interrupted download never looks complete); ``progress(done, total)``
        after each chunk.  Returns the bytes written."""
        query = {k: v for k, v in params.items() if v is not None}
        partial = dest.with_name(dest.name + ".part")
        written = 0
        try:
            with self._http.stream("GET", path, params=query) as response:
                if response.is_error:
                    response.read()
                    raise ApiError(_error_message(response), response.status_code)
                announced = response.headers.get("content-length")
                total = int(announced) if announced and announced.isdigit() else None
                with partial.open("wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
                        written += len(chunk)
                        if progress is not None:
                            progress(written, total)
            if total is not None and written != total:
                raise CliError(f"the download stopped at {written} of {total} bytes")
            partial.replace(dest)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise CliError(self._unreachable(exc)) from None
        except httpx.HTTPError as exc:
            raise CliError(f"the download from {self.url} failed: {exc}") from None
        finally:
            partial.unlink(missing_ok=True)
        return written

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, body=body)

    def post_bytes(self, path: str, data: bytes, **params: Any) -> Any:
        return self.request("POST", path, params=params, raw=data)

    def patch(self, path: str, body: Any = None) -> Any:
        return self.request("PATCH", path, body=body)

    def put(self, path: str, body: Any = None) -> Any:
        return self.request("PUT", path, body=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)
