"""``garrison-agent``: the command line, compatible with the Armadito agent.

    garrison-agent -s URL -t Enrollment -k KEY
    garrison-agent -t Getjobs | Runjobs [-w N | --wr N] | State | Scan [--path P] | Alerts
                      | AVConfig | Scheduler
    garrison-agent run                       the daemon
    garrison-agent install --server URL [--ca-sha256 HEX] --key KEY
                                             enroll, configure, install the service
    garrison-agent quarantine list | restore ID [--to PATH] [--force]
    garrison-agent status
    garrison-agent uninstall --token TOKEN   with the station's token from the server

``--state-dir DIR`` (or ``GARRISON_AGENT_STATE_DIR``) holds all of the agent's local state, so
several agents can run side by side.  ``-wr N`` (Armadito's spelling) is read as ``--wr N``.

Exit codes (stable; scripts may rely on them):

    0  success
    1  internal error (a bug); set GARRISON_AGENT_DEBUG=1 for the traceback
    2  usage error (bad option, unknown task)
    3  not enrolled: run the Enrollment task first
    4  server unreachable (what had to be sent stays queued and is retried)
    5  request refused by the server (wrong, expired or revoked key; 401/403; other 4xx)
    6  server error (5xx, or an answer that is not JSON)
    7  Runjobs: at least one job failed; uninstall: the token refused
    8  Scan: malware or suspicious files found
    9  local error (state dir, config file, quarantine entry)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from garrison import __version__
from garrison.agent.context import Agent
from garrison.agent.errors import AgentError, ExitCode, UnreachableError, UsageProblem
from garrison.agent.state import StateDir
from garrison.agent.tasks import TASK_NAMES
from garrison.common.cli_help import hide_flag_types

console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
hide_flag_types()

app = typer.Typer(
    add_completion=False,
    invoke_without_command=True,
    no_args_is_help=False,
    help="Garrison endpoint agent (Armadito-compatible). See docs/agent.md.",
    context_settings={"help_option_names": ["-h", "--help"]},
)
quarantine_app = typer.Typer(help="Files the agent quarantined.", no_args_is_help=True)
app.add_typer(quarantine_app, name="quarantine")

StateDirOpt = Annotated[
    Path | None,
    typer.Option("--state-dir", envvar="GARRISON_AGENT_STATE_DIR", help="all local state"),
]
ServerOpt = Annotated[str | None, typer.Option("-s", "--server", help="server base URL")]


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _agent(state_dir: Path | None, server: str | None, read_only: bool = False) -> Agent:
    return Agent(StateDir.resolve(state_dir), server, say=console.print, read_only=read_only)


@app.callback()
def root(
    ctx: typer.Context,
    server: ServerOpt = None,
    task: Annotated[str | None, typer.Option("-t", "--task", help=" | ".join(TASK_NAMES))] = None,
    key: Annotated[str | None, typer.Option("-k", "--key", help="enrollment key")] = None,
    wait: Annotated[float, typer.Option("-w", "--wait", min=0, help="Runjobs: wait N s")] = 0,
    wait_random: Annotated[
        float, typer.Option("--wr", min=0, help="Runjobs: wait a random 0..N s")
    ] = 0,
    path: Annotated[
        list[str] | None, typer.Option("--path", help="Scan: path to scan (repeatable)")
    ] = None,
    ca_sha256: Annotated[
        str | None,
        typer.Option("--ca-sha256", help="Enrollment: pin the server's CA (SHA-256 it printed)"),
    ] = None,
    trust_on_first_use: Annotated[
        bool,
        typer.Option("--trust-on-first-use", help="Enrollment: pin whatever CA the server shows"),
    ] = False,
    state_dir: StateDirOpt = None,
    verbose: Annotated[bool, typer.Option("-v", "--verbose")] = False,
    version: Annotated[bool, typer.Option("--version", help="print the version")] = False,
) -> None:
    ctx.obj = {"state_dir": state_dir, "server": server, "verbose": verbose}
    if version:
        console.print(f"garrison-agent {__version__}")
        raise typer.Exit(0)
    if ctx.invoked_subcommand is not None:
        if task:
            raise UsageProblem("-t cannot be combined with a command")
        return
    if not task:
        raise UsageProblem("give a task (-t NAME) or a command (run, install, quarantine, status)")
    names = {n.lower(): n for n in TASK_NAMES}
    name = names.get(task.lower())
    if name is None:
        raise UsageProblem(f"unknown task {task!r}; tasks: {', '.join(TASK_NAMES)}")
    _logging(verbose)
    agent = _agent(state_dir, server)
    try:
        code = run_task(
            agent, name, key, wait, wait_random, path or [], ca_sha256, trust_on_first_use
        )
    finally:
        agent.close()
    raise typer.Exit(code)


def _flush_note(agent: Agent) -> int:
    """Send what is queued; unreachable is exit 4 with the count still queued."""
    result = agent.flush()
    if result.problems:
        for problem in result.problems:
            err.print(f"warning: the server refused a message, dropped: {problem}", markup=False)
    if result.error is not None:
        err.print(
            f"garrison-agent: {result.error.message}; {result.remaining} message(s) kept in the "
            "spool, sent when the server is back",
            markup=False,
        )
        return result.error.exit_code
    return ExitCode.OK


def run_task(
    agent: Agent,
    name: str,
    key: str | None,
    wait: float,
    wait_random: float,
    paths: list[str],
    ca_sha256: str | None = None,
    trust_on_first_use: bool = False,
) -> int:
    from garrison.agent.tasks import (
        alerts,
        avconfig,
        enrollment,
        getjobs,
        runjobs,
        scheduler,
        state,
    )

    if name == "Enrollment":
        if not key:
            raise UsageProblem("Enrollment needs -k KEY")
        creds = enrollment.run(agent, key, ca_sha256, trust_on_first_use)
        console.print(
            f"enrolled: agent id {creds.agent_id}, station {agent.uuid}; "
            f"credentials in {agent.state.credentials_file}",
            markup=False,
        )
        return ExitCode.OK
    agent.credentials()
    if name == "Getjobs":
        from garrison.agent.content import sync as contentsync
        from garrison.agent.jobstore import JobStore

        checkin = getjobs.check_in(agent)
        waiting = len(JobStore(agent.state).load())
        console.print(f"{len(checkin.jobs)} new job(s) stored; {waiting} waiting for Runjobs")
        # A check-in by hand updates the signed content too, as the daemon's does.
        outcome = contentsync.on_checkin(agent, checkin.content)
        if outcome is not None:
            console.print(f"signed content {outcome.status}: {outcome.message}", markup=False)
            return _flush_note(agent)
        return ExitCode.OK
    if name == "Runjobs":
        summary = runjobs.run(agent, wait, wait_random)
        for o in summary.outcomes:
            status = "successful" if o.code == 0 else f"failed (code {o.code})"
            console.print(
                f"job {o.job.id} {o.job.type or '?'}: {status}: {o.message}", markup=False
            )
        if not summary.outcomes:
            console.print("no stored job to run (run Getjobs first)")
        if agent.uninstall_requested:
            runjobs.finish_uninstall(agent)
            console.print("uninstalled: state removed")
            return ExitCode.OK
        code = _flush_note(agent)
        if code:
            return code
        return ExitCode.JOB_FAILED if summary.failed else ExitCode.OK
    if name == "State":
        body = state.run(agent)
        details = {d["attr"]: d["value"] for d in body["avdetails"]}
        console.print(
            f"state: signatures {details['signature_version']} "
            f"({details['signature_records']} records), {body['dbinfo']['global_status']}",
            markup=False,
        )
        return _flush_note(agent)
    if name == "Scan":
        return _scan(agent, paths)
    if name == "Alerts":
        try:
            result = alerts.run(agent)
        except UnreachableError:
            raise
        console.print(f"{result.sent} queued message(s) sent; {result.remaining} left")
        return ExitCode.OK
    if name in ("AVConfig", "Scheduler"):
        module = avconfig if name == "AVConfig" else scheduler
        problems = module.run(agent)
        for problem in problems:
            err.print(f"warning: {problem}", markup=False)
        console.print(f"{name}: local configuration applied and reported")
        return _flush_note(agent)
    raise UsageProblem(f"unknown task {name!r}")


def _scan(agent: Agent, paths: list[str]) -> int:
    from garrison.agent.jobs.scan import summary
    from garrison.agent.tasks import scan

    interactive = console.is_terminal
    progress = Progress(
        TextColumn("[bold]scanning"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[current]}", markup=False),
        console=console,
        transient=True,
        disable=not interactive,
    )
    with progress:
        bar = progress.add_task("scan", total=None, current="")

        def ui(done: int, total: int, path: str) -> None:
            progress.update(bar, completed=done, total=total, current=path[-60:])

        result = scan.run(agent, paths, ui)
    console.print(summary(result), markup=False)
    if result.detections:
        table = Table("threat", "path", "action", "sha256", title="detections")
        for d in result.detections:
            shown = f"{d.path}!{d.member}" if d.member else d.path
            table.add_row(d.threat, shown, d.action, d.sha256[:16] + "…")
        console.print(table)
    for problem in result.errors[:20]:
        err.print(f"error: {problem}", markup=False)
    code = _flush_note(agent)
    if result.malware or result.suspicious:
        return ExitCode.THREATS_FOUND
    return code


@app.command()
def run(ctx: typer.Context, state_dir: StateDirOpt = None, server: ServerOpt = None) -> None:
    """Run the daemon (scheduled tasks, long-polled jobs, spool)."""
    from garrison.agent.daemon import Daemon
    from garrison.agent.upgrade import versions

    _logging(True)
    versions.redirect(StateDir.resolve(state_dir or ctx.obj["state_dir"]))
    agent = _agent(state_dir or ctx.obj["state_dir"], server or ctx.obj["server"])
    raise typer.Exit(Daemon(agent).run())


@app.command()
def uninstall(
    ctx: typer.Context,
    token: Annotated[str, typer.Option("--token", help="the server's uninstall token")],
    state_dir: StateDirOpt = None,
) -> None:
    """Uninstall with the station's token from the server (POST /admin/v1/stations/{id}/
    uninstall-token): report, lift isolation, stop the daemon, remove the state dir."""
    from garrison.agent.jobs import uninstall as job
    from garrison.agent.tasks import runjobs

    agent = _agent(state_dir or ctx.obj["state_dir"], None)
    try:
        job.authorise(agent, token)
    except job.UninstallRefused:
        with contextlib.suppress(AgentError):
            agent.flush()  # the refusal reaches the server if it can
        raise
    runjobs.finish_uninstall(agent)
    console.print("uninstalled: state removed")


@app.command()
def install(
    server: Annotated[str, typer.Option("--server", help="the server's URL (https://…)")],
    key: Annotated[str, typer.Option("--key", "-k", help="enrollment key")],
    ca_sha256: Annotated[
        str, typer.Option("--ca-sha256", help="SHA-256 (hex) of the server's CA certificate")
    ] = "",
    root: Annotated[
        Path, typer.Option("--root", help="install below this directory (an image, tests)")
    ] = Path("/"),
    state_dir: Annotated[
        str, typer.Option("--state-dir", help="state dir, as seen from inside --root")
    ] = "/var/lib/garrison-agent",
    start: Annotated[
        bool, typer.Option("--start/--no-start", help="enable and start the service")
    ] = True,
) -> None:
    """Enroll, write agent.toml, install the systemd unit and enable and start it: the
    one-line install (`garrison keys install-command` prints it for a key)."""
    from garrison.agent import install as installer

    request = installer.Request(
        server=server.rstrip("/"),
        key=key,
        ca_sha256=ca_sha256,
        root=root.absolute(),
        state_dir=state_dir,
        start=start,
    )
    done = installer.install(request, say=console.print)
    console.print(
        f"enrolled: agent id {done.credentials.agent_id} at {done.credentials.server_url}; "
        f"installation {done.installation_id}",
        markup=False,
    )
    console.print(f"service: {done.unit_path} {done.note}", markup=False)
    if not done.started:
        err.print(f"garrison-agent: the service is not running: {done.note}", markup=False)


@app.command()
def status(ctx: typer.Context, state_dir: StateDirOpt = None) -> None:
    """Enrollment, spool, isolation and quarantine at a glance (local, no network)."""
    from garrison.agent import isolation

    agent = _agent(state_dir or ctx.obj["state_dir"], None, read_only=True)
    console.print(f"state dir:   {agent.state.path}", markup=False)
    if not agent.state.path.is_dir():
        console.print("             does not exist: nothing enrolled, queued or quarantined")
        return
    creds = agent.state.credentials()
    console.print(f"station:     {agent.uuid}", markup=False)
    console.print(
        f"enrolled:    {'agent id ' + str(creds.agent_id) if creds else 'no'}"
        f"{' at ' + creds.server_url if creds else ''}",
        markup=False,
    )
    pin = agent.config.server.ca_sha256
    console.print(f"server CA:   {'pinned, SHA-256 ' + pin if pin else 'not pinned'}", markup=False)
    if agent.state.spool_file.exists():  # opening a missing spool would create it
        stats = agent.spool.stats()
        console.print(
            f"spool:       {stats['messages']} message(s), {stats['bytes']} bytes; dropped "
            f"{stats['dropped_expired']} expired, {stats['dropped_cap']} over cap, "
            f"{stats['dropped_refused']} refused",
            markup=False,
        )
    else:
        console.print("spool:       empty")
    console.print(f"isolated:    {'yes' if isolation.is_isolated(agent.state) else 'no'}")
    console.print(f"quarantine:  {len(agent.quarantine.entries())} file(s)")
    from garrison.agent.content.store import ContentStore

    store = ContentStore(agent.state)
    found = store.installed()
    failure = store.last_failure()
    console.print(
        f"content:     serial {found.manifest.serial}, {len(found.manifest.files)} rule set(s), "
        f"issued {found.manifest.issued.isoformat()}"
        if found
        else "content:     no signed content installed",
        markup=False,
    )
    if failure.get("reason"):
        console.print(f"             last update failed: {failure['reason']}", markup=False)
    agent.close()


@quarantine_app.command("list")
def quarantine_list(ctx: typer.Context, state_dir: StateDirOpt = None) -> None:
    """List quarantined files."""
    parent = ctx.parent.obj if ctx.parent and ctx.parent.obj else {}
    agent = _agent(state_dir or parent.get("state_dir"), None, read_only=True)
    where = agent.quarantine.directory
    entries = agent.quarantine.entries()
    if not entries:
        console.print(f"quarantine is empty ({where})", markup=False)
        return
    # Which directory was read, on stderr: scripts read the list from stdout.
    err.print(f"quarantine: {where}", markup=False)
    table = Table("id", "threat", "original path", "sha256", "quarantined (UTC)")
    for e in entries:
        when = dt.datetime.fromtimestamp(e.quarantined_at, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(e.id, e.threat, e.original_path, e.sha256, when)
        if not console.is_terminal:  # scripts get one tab-separated line per file
            sys.stdout.write("\t".join((e.id, e.threat, e.original_path, e.sha256, when)) + "\n")
    if console.is_terminal:
        console.print(table)


@quarantine_app.command("restore")
def quarantine_restore(
    ctx: typer.Context,
    entry_id: Annotated[str, typer.Argument(metavar="ID")],
    to: Annotated[str | None, typer.Option("--to", help="restore elsewhere")] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing file")] = False,
    state_dir: StateDirOpt = None,
) -> None:
    """Put a quarantined file back where it was (or --to PATH), byte for byte."""
    parent = ctx.parent.obj if ctx.parent and ctx.parent.obj else {}
    agent = _agent(state_dir or parent.get("state_dir"), None)
    entry = agent.quarantine.restore(entry_id, to, force)
    console.print(f"restored {to or entry.original_path} ({entry.threat})", markup=False)


def main(argv: list[str] | None = None) -> None:
    args = ["--wr" if a == "-wr" else a for a in (sys.argv[1:] if argv is None else argv)]
    command = typer.main.get_command(app)
    debug = os.environ.get("GARRISON_AGENT_DEBUG", "") not in ("", "0")
    try:
        result = command.main(args, prog_name="garrison-agent", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except typer.Exit as exc:
        code = exc.exit_code
    except typer.Abort:
        code = 130
    except typer.TyperException as exc:  # Typer's (vendored click) usage errors
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            sys.stderr.write(f"garrison-agent: {exc}\n")
        code = ExitCode.USAGE
    except KeyboardInterrupt:
        code = 130
    except AgentError as exc:
        sys.stderr.write(f"garrison-agent: {exc.message}\n")
        code = exc.exit_code
    except Exception as exc:
        if debug:
            traceback.print_exc()
        sys.stderr.write(f"garrison-agent: internal error: {type(exc).__name__}: {exc}\n")
        code = ExitCode.INTERNAL
    sys.exit(code)
