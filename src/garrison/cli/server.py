"""``garrison serve`` and ``garrison db upgrade``.

Server libraries (uvicorn; SQLAlchemy, through the store) are imported inside the commands:
the admin commands share this program and should start fast.  This edge never touches
SQLAlchemy itself: the store reports what went wrong in its own errors.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from garrison.cli.client import write_url_file

if TYPE_CHECKING:
    from garrison.cli.workers import WorkerSpec
    from garrison.server.settings import Settings
    from garrison.server.store.engine import Database
    from garrison.server.tls.serving import ServerTls

err = Console(stderr=True, soft_wrap=True)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="where SQLite, admin.token and state live (env GARRISON_DATA_DIR)"
    ),
]


def first_line(exc: object) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def load_settings(**overrides: object) -> Settings:
    from pydantic import ValidationError

    from garrison.server.settings import Settings

    values = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**values)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"])
        err.print(f"[red]error:[/] setting {name}: {first['msg']}", markup=True)
        raise typer.Exit(2) from None


def configure_logging(settings: Settings) -> None:
    """JSON lines on stdout; human-readable ones when stdout is a terminal."""
    from garrison.server import logs

    logs.configure(settings.log_level, flush_seconds=settings.log_flush_seconds)


def open_database(settings: Settings) -> Database:
    from garrison.server.store.engine import Database, UnsupportedDatabaseError

    try:
        return Database(
            settings.resolved_database_url(),
            settings.sqlite_synchronous,
            settings.database_pool_timeout,
        )
    except UnsupportedDatabaseError as exc:
        err.print(f"[red]error:[/] cannot use database: {first_line(exc)}", markup=True)
        raise typer.Exit(1) from None


def graceful_server(config: Any) -> Any:
    import uvicorn

    class GracefulServer(uvicorn.Server):
        """uvicorn re-raises SIGTERM after a graceful shutdown, so the process would end
        "killed"; a clean, finished shutdown exits 0, as a service manager expects."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = {
                sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)
            }
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return GracefulServer(config)


def stop_long_polls(server: Any, app: Any) -> None:
    """Long-polling agents are answered at once when the server is asked to stop, so the
    graceful shutdown does not wait for their timeouts."""
    original = server.handle_exit

    def handle_exit(sig: int, frame: Any) -> None:
        app.state.ctx.job_waiters.close()
        original(sig, frame)

    server.handle_exit = handle_exit


def _prepare_tls(settings: Settings, db: Database) -> ServerTls | None:
    """The server's TLS state (its CA created at the first start), or None with --tls off."""
    if not settings.tls:
        return None
    from garrison.server.tls.serving import ServerTls

    try:
        return ServerTls.prepare(settings)
    except (OSError, ValueError) as exc:
        db.dispose()
        err.print(f"error: TLS: {first_line(exc)}", markup=False)
        raise typer.Exit(1) from None


def listen_tls(
    config: Any, server_tls: ServerTls, settings: Settings, db: Database, stop: threading.Event
) -> None:
    """Serve ``config`` over the server's TLS (garrison.server.tls.serving), renewed in place
    until ``stop``: the single process and each worker (an SSL context is not picklable, so
    a worker builds its own from the files the supervisor prepared)."""
    config.load()
    config.ssl = server_tls.listening
    server_tls.run_refresher(_revoked_serials(settings, db), stop)


def _revoked_serials(settings: Settings, db: Database) -> Callable[[], list[str]] | None:
    """With mutual TLS, what the refresher reads for the revocation list."""
    if not settings.tls_client_certs:
        return None
    from garrison.server.tls.reports import revoked_serials

    return lambda: revoked_serials(db)


def serve(
    host: Annotated[
        str | None, typer.Option(help="address to listen on (env GARRISON_HOST)")
    ] = None,
    port: Annotated[int | None, typer.Option(help="port (env GARRISON_PORT)")] = None,
    data_dir: DataDir = None,
    log_level: Annotated[
        str | None, typer.Option("--log-level", help="debug, info, warning, error")
    ] = None,
    tls: Annotated[
        str | None,
        typer.Option("--tls", help="on (HTTPS, the default) or off: plain HTTP (env GARRISON_TLS)"),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option("--tls-cert", help="certificate chain PEM instead of the own CA's"),
    ] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="its key PEM")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="server processes on the port (env GARRISON_WORKERS; default: every core "
            "on PostgreSQL, 1 on SQLite)",
        ),
    ] = None,
) -> None:
    """Start the server: agent API (/api), admin API (/admin/v1) and /metrics."""
    import uvicorn

    from garrison.cli.workers import WorkerSpec, default_workers
    from garrison.server.app import create_app
    from garrison.server.bootstrap import prepare
    from garrison.server.export.keycheck import SecretsKeyMismatchError
    from garrison.server.fdlimit import raise_open_files
    from garrison.server.store.engine import DatabaseUnreachableError

    settings = load_settings(
        host=host,
        port=port,
        data_dir=data_dir,
        log_level=log_level,
        tls=tls,
        tls_cert_file=tls_cert,
        tls_key_file=tls_key,
    )
    if workers is None:
        workers = settings.workers
    # Everything the server creates (database, WAL, tokens, keys, exported files) is the
    # server user's alone: 0600 files, 0700 directories.
    os.umask(0o077)
    configure_logging(settings)
    # Before any worker exists: they inherit it.
    open_files = raise_open_files()
    db = open_database(settings)
    try:
        first = prepare(
            db,
            settings.data_dir,
            settings.resolved_secrets_key_file(),
            settings.resolved_content_key_dir(),
        )
    except (DatabaseUnreachableError, PermissionError, ValueError, SecretsKeyMismatchError) as exc:
        db.dispose()
        if isinstance(exc, DatabaseUnreachableError):
            err.print(f"[red]error:[/] database unreachable: {exc}", markup=True)
        elif isinstance(exc, PermissionError):
            err.print(f"[red]error:[/] cannot write the data directory: {exc}", markup=True)
        else:  # a secrets key file that holds no key, or another node's key
            err.print(f"error: {exc}", markup=False)
        raise typer.Exit(1) from None
    server_tls = _prepare_tls(settings, db)
    out = Console(soft_wrap=True)
    if first is not None:
        out.print("[bold]First start.[/] Created user [bold]admin[/].")
        out.print(f"  admin password (shown once): [bold]{first.admin_password}[/]")
        out.print(f"  admin API token written to:  {first.token_path}")
        out.print(f"  enrollment key (100 uses, 7 days): [bold]{first.enrollment_key}[/]")
    if server_tls is not None and (first is not None or server_tls.created):
        out.print(f"  CA certificate written to:   {server_tls.anchor_file}")
        out.print(f"  CA SHA-256 (--ca-sha256):    [bold]{server_tls.fingerprint}[/]")
    try:
        app = create_app(settings, db)
    except ValueError as exc:  # a GARRISON_EXPORT_* setting that cannot be used
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(1) from None
    scheme = "https" if server_tls is not None else "http"
    write_url_file(settings.data_dir, settings.host, settings.port, scheme)
    out.print(
        f"Garrison listening on {scheme}://{settings.host}:{settings.port} "
        f"(database: {db.backend}, data dir: {settings.data_dir.resolve()})"
    )
    if server_tls is not None:
        out.print(f"CA SHA-256: {server_tls.fingerprint}")
    if open_files.low:
        err.print(f"warning: {open_files.describe()}", markup=False)
    else:
        out.print(open_files.describe(), markup=False)
    options = uvicorn_options(settings)
    count = workers if workers is not None else default_workers(db.backend)
    if count > 1:
        db.dispose()
        _serve_workers(WorkerSpec(settings, options), count, out)
        return
    config = uvicorn.Config(app, **options)
    stop_tls = threading.Event()
    if server_tls is not None:
        listen_tls(config, server_tls, settings, db, stop_tls)
    server = graceful_server(config)
    stop_long_polls(server, app)
    try:
        server.run()
    except OSError as exc:
        err.print(
            f"[red]error:[/] cannot listen on {settings.host}:{settings.port}: {exc}", markup=True
        )
        raise typer.Exit(1) from None
    finally:
        stop_tls.set()
        db.dispose()
    if not server.started:
        raise typer.Exit(1)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's configuration, as plain values: a worker process is given them too."""
    return {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        # uvicorn's lines go through the root logger configure_logging set up; each request
        # is logged by the app (garrison.server.logs.RequestLog), not by uvicorn's access log.
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": int(settings.graceful_shutdown_seconds) or None,
        # The app reads X-Forwarded-For itself, and only from GARRISON_TRUSTED_PROXIES
        # (middleware.resolve_client): uvicorn's own handling would believe any local peer.
        "proxy_headers": False,
        "server_header": False,
    }


def _serve_workers(spec: WorkerSpec, count: int, out: Console) -> None:
    from garrison.cli.workers import Supervisor, listening_socket

    settings = spec.settings
    try:
        sock = listening_socket(settings.host, settings.port)
    except OSError as exc:
        err.print(
            f"[red]error:[/] cannot listen on {settings.host}:{settings.port}: {exc}", markup=True
        )
        raise typer.Exit(1) from None
    Supervisor(spec, sock, count, out.print).run()


db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDir = None) -> None:
    """Apply the schema migrations (serve does this at start too)."""
    from garrison.server.store import migrate
    from garrison.server.store.engine import DatabaseUnreachableError

    settings = load_settings(data_dir=data_dir)
    db = open_database(settings)
    try:
        migrate.upgrade(db.url)
    except DatabaseUnreachableError as exc:
        err.print(f"[red]error:[/] database unreachable: {exc}", markup=True)
        raise typer.Exit(1) from None
    finally:
        db.dispose()
    Console().print(f"database at revision {migrate.current_head()} ({db.backend})")


@db_app.command("admin-token")
def db_admin_token(
    data_dir: DataDir = None,
    user: Annotated[str, typer.Option("--user", help="an active admin")] = "admin",
) -> None:
    """Write a new admin API token to <data-dir>/admin.token (replacing the user's old
    one): on the server's host, when admin.token was revoked, lost or leaked."""
    from garrison.server.bootstrap import new_admin_token
    from garrison.server.errors import GarrisonError
    from garrison.server.store.engine import DatabaseUnreachableError

    settings = load_settings(data_dir=data_dir)
    db = open_database(settings)
    try:
        path = new_admin_token(db, settings.data_dir, user)
    except DatabaseUnreachableError as exc:
        err.print(f"[red]error:[/] database unreachable: {exc}", markup=True)
        raise typer.Exit(1) from None
    except GarrisonError as exc:
        err.print(f"[red]error:[/] {exc.message}", markup=True)
        raise typer.Exit(1) from None
    finally:
        db.dispose()
    Console().print(f"new API token for {user} written to {path}")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(db_app, name="db")
