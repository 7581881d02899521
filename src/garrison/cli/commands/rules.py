"""``garrison rules``: the signed-content repository (``/admin/v1/rules``), its assignment
to groups, the content key and the fleet view.  See docs/content.md."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from garrison.cli import output
from garrison.cli.client import UsageError, segment
from garrison.cli.command import Call, command
from garrison.cli.commands.procedures import read_text

KINDS = ("yara", "hashes", "ioc", "blocklist", "script", "devices", "clamav-body")

app = typer.Typer(
    help=(
        "Signed content (rule sets): list, show, add, import-clamav, versions, diff, assign,"
        " key, fleet."
    ),
    no_args_is_help=True,
)
key_app = typer.Typer(help="The content signing key: show, rotate.", no_args_is_help=True)
app.add_typer(key_app, name="key")

Name = Annotated[str, typer.Argument(metavar="NAME", help="the rule set's name")]
COLUMNS = ("name", "kind", "version", "file", "records", "size", "sha256", "by", "created")


def _row(r: dict[str, Any]) -> list[Any]:
    return [
        r.get("name"),
        r.get("kind"),
        r.get("version"),
        r.get("file"),
        r.get("records"),
        r.get("size"),
        str(r.get("sha256", ""))[:16],
        r.get("author"),
        output.when(r.get("created_at")),
    ]


@command(app, "list")
def list_rules(
    call: Call,
    kind: Annotated[str | None, typer.Option(help=f"only this kind: {', '.join(KINDS)}")] = None,
) -> None:
    """List the rule sets (their latest versions)."""
    params = {"kind": kind} if kind else {}

    def render(data: list[dict[str, Any]]) -> None:
        caption = f"{len(data)} rule set(s)" if data else "no rule sets"
        output.show(output.table(COLUMNS, [_row(r) for r in data], caption=caption))

    call.emit(call.api.get("/rules", **params), render)


@command(app, "show")
def show(
    call: Call,
    name: Name,
    version: Annotated[int | None, typer.Option(help="this version (default: latest)")] = None,
) -> None:
    """Show a rule set's version and its content."""
    params = {"version": version} if version is not None else {}

    def render(r: dict[str, Any]) -> None:
        output.show(
            output.details(
                [
                    ("name", r.get("name")),
                    ("kind", r.get("kind")),
                    ("version", r.get("version")),
                    ("file", r.get("file")),
                    ("records", r.get("records")),
                    ("size", r.get("size")),
                    ("sha256", r.get("sha256")),
                    ("by", r.get("author")),
                    ("created", output.when(r.get("created_at"))),
                    ("comment", r.get("comment") or ""),
                ],
                title=f"Rule set {r.get('name')}",
            )
        )
        output.line("")
        output.line(str(r.get("content") or "").rstrip("\n"))

    call.emit(call.api.get(f"/rules/{segment(name)}", **params), render)


@command(app, "add")
def add(
    call: Call,
    kind: Annotated[str, typer.Argument(metavar="KIND", help=" | ".join(KINDS))],
    name: Name,
    file: Annotated[str, typer.Argument(metavar="FILE", help="the content; - reads stdin")],
    comment: Annotated[str, typer.Option("--comment", "-m", help="why this version")] = "",
) -> None:
    """Add a rule set, or a new version of one (the server validates it)."""
    if kind not in KINDS:
        raise UsageError(f"KIND must be one of {', '.join(KINDS)}")
    content = read_text(file, "content file")
    body = {"kind": kind, "name": name, "content": content, "comment": comment}
    result = call.api.post("/rules", body)
    call.emit(
        result,
        lambda r: output.line(
            f"rule set {r.get('name')}: version {r.get('version')} ({r.get('records')} records, "
            f"{r.get('file')}, sha256 {str(r.get('sha256'))[:16]})"
        ),
    )


@command(app, "import-clamav")
def import_clamav(
    call: Call,
    file: Annotated[str, typer.Argument(metavar="FILE", help="a ClamAV .cvd or .cld file")],
    name: Annotated[
        str | None, typer.Option(help="rule set base name (default: the file's stem)")
    ] = None,
    comment: Annotated[str, typer.Option("--comment", "-m", help="why this import")] = "",
) -> None:
    """Import a ClamAV database (.cvd/.cld): verified with ClamAV's keys, its .hdb/.hsb/.ndb
    become rule sets <name>-hdb, <name>-hsb (hashes) and <name>-ndb (clamav-body)."""
    path = Path(file)
    if path.suffix.lower() not in (".cvd", ".cld"):
        raise UsageError(f"{file}: a ClamAV database file ends in .cvd or .cld")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {file}: {exc.strerror or exc}") from None
    params = {"filename": path.name, "name": name, "comment": comment or None}
    result = call.api.post_bytes("/rules/import/clamav", data, **params)

    def render(r: dict[str, Any]) -> None:
        c = r.get("container", {})
        output.line(
            f"ClamAV {c.get('format')} version {c.get('version')} ({c.get('signatures')}"
            f" signatures, built {c.get('build_time')} by {c.get('builder')}): verified"
        )
        for rule in r.get("rulesets", []):
            output.line(
                f"rule set {rule.get('name')}: version {rule.get('version')}"
                f" ({rule.get('records')} records, {rule.get('kind')})"
            )
        skipped = r.get("skipped") or {}
        if skipped:
            output.line(
                "skipped (not used by Garrison's engine): "
                + ", ".join(f".{k} {n} records" for k, n in sorted(skipped.items()))
            )
        for ruleset, count in sorted((r.get("refused_lines") or {}).items()):
            output.line(f"{ruleset}: {count} line(s) refused by the format check")

    call.emit(result, render)


@command(app, "versions")
def versions(call: Call, name: Name) -> None:
    """List a rule set's versions, newest first."""

    def render(data: dict[str, Any]) -> None:
        rows = [
            [
                v.get("version"),
                v.get("records"),
                v.get("size"),
                str(v.get("sha256", ""))[:16],
                v.get("author"),
                output.when(v.get("created_at")),
                v.get("comment") or "",
                _approval(v) if data.get("kind") == "script" else "",
            ]
            for v in data.get("versions") or []
        ]
        output.show(
            output.table(
                ("version", "records", "size", "sha256", "by", "created", "comment", "approved"),
                rows,
                title=f"{data.get('name')} ({data.get('kind')})",
            )
        )

    call.emit(call.api.get(f"/rules/{segment(name)}/versions"), render)


def _approval(version: dict[str, Any]) -> str:
    if not version.get("approved_at"):
        return "no"
    return f"{version.get('approved_by')} {output.when(version.get('approved_at'))}"


def _approve(call: Call, name: str, version: int, approved: bool) -> None:
    verb = "approve" if approved else "unapprove"
    found = call.api.post(f"/rules/{segment(name)}/versions/{version}/{verb}")
    state = "approved: it enters manifests" if approved else "not approved: it leaves manifests"
    call.emit(found, lambda v: output.line(f"{v.get('name')} version {v.get('version')} {state}"))


@command(app, "approve")
def approve(
    call: Call,
    name: Name,
    version: Annotated[int, typer.Argument(metavar="VERSION", help="the script version")],
) -> None:
    """Approve a script version for the script library (only approved ones reach agents)."""
    _approve(call, name, version, True)


@command(app, "unapprove")
def unapprove(
    call: Call,
    name: Name,
    version: Annotated[int, typer.Argument(metavar="VERSION", help="the script version")],
) -> None:
    """Withdraw a script version's approval (it leaves the manifests)."""
    _approve(call, name, version, False)


@command(app, "diff")
def diff(
    call: Call,
    name: Name,
    old: Annotated[int, typer.Argument(metavar="FROM", help="the older version")],
    new: Annotated[
        int | None, typer.Argument(metavar="[TO]", help="the newer one (default: latest)")
    ] = None,
) -> None:
    """Show what changed between two versions (a unified diff)."""
    params: dict[str, Any] = {"from": old}
    if new is not None:
        params["to"] = new

    def render(data: dict[str, Any]) -> None:
        lines = data.get("diff") or []
        if not lines:
            output.line(
                f"{data.get('name')}: versions {data.get('old')} and {data.get('new')} are the same"
            )
        for line in lines:
            output.line(str(line))

    call.emit(call.api.get(f"/rules/{segment(name)}/diff", **params), render)


def _parse_rule(text: str) -> dict[str, Any]:
    name, sep, version = text.partition("@")
    if not name:
        raise UsageError(f"{text!r}: give NAME or NAME@VERSION")
    if not sep or version == "latest":
        return {"name": name, "version": "latest"}
    if not version.isdigit() or int(version) < 1:
        raise UsageError(f"{text!r}: the version must be a number or latest")
    return {"name": name, "version": int(version)}


def _render_assignment(a: dict[str, Any]) -> None:
    rules = a.get("rules")
    shown = (
        "every rule set at latest"
        if rules is None
        else ", ".join(f"{r['name']}@{r['version']}" for r in rules) or "(nothing)"
    )
    title = f"group {a.get('group')}" if a.get("group") else "default"
    pairs: list[tuple[str, Any]] = [("rules", shown)]
    if a.get("group"):
        pairs.append(("priority", a.get("priority")))
    pairs.append(("allow unsigned sources", a.get("allow_unsigned_sources")))
    if a.get("updated_by"):
        pairs.append(("updated", f"{output.when(a.get('updated_at'))} by {a.get('updated_by')}"))
    output.show(output.details(pairs, title=f"Content of {title}"))
    if a.get("allow_unsigned_sources"):
        output.error(f"warning: {title} accepts unsigned or plain-HTTP UpdateSignatures sources")


@command(app, "assign")
def assign(
    call: Call,
    rules: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[NAME[@VERSION]...]", help="the rule sets (a version pins it; default latest)"
        ),
    ] = None,
    group: Annotated[
        str | None, typer.Option("--group", metavar="NAME", help="a group's (default: default)")
    ] = None,
    every: Annotated[
        bool, typer.Option("--all", help="every rule set at its latest version")
    ] = False,
    allow_unsigned: Annotated[
        bool,
        typer.Option(
            "--allow-unsigned-sources",
            help="let its stations take unsigned or plain-HTTP UpdateSignatures sources",
        ),
    ] = False,
    priority: Annotated[int, typer.Option(help="a group's priority (the highest wins)")] = 0,
    unset: Annotated[
        bool, typer.Option("--unset", help="drop the group's assignment (back to the default)")
    ] = False,
    show_only: Annotated[bool, typer.Option("--show", help="show it, change nothing")] = False,
) -> None:
    """Assign rule sets to the default or a group; --show prints the current assignment."""
    path = f"/groups/{segment(group)}/content" if group else "/content/assignments/default"
    if show_only:
        call.emit(call.api.get(path), _render_assignment)
        return
    if unset:
        if not group:
            raise UsageError("--unset is for a group's assignment (give --group)")
        call.api.delete(path)
        call.emit(
            {"group": group, "deleted": True},
            lambda _: output.line(f"group {group}: content assignment removed"),
        )
        return
    if every and rules:
        raise UsageError("give rule sets or --all, not both")
    if not every and not rules:
        raise UsageError("give the rule sets to assign, or --all")
    body: dict[str, Any] = {
        "rules": None if every else [_parse_rule(r) for r in rules or []],
        "allow_unsigned_sources": allow_unsigned,
    }
    if group:
        body["priority"] = priority
    call.emit(call.api.put(path, body), _render_assignment)


@command(key_app, "show")
def key_show(call: Call) -> None:
    """Show the content keys, the serial and the server id."""

    def render(data: dict[str, Any]) -> None:
        output.show(
            output.details(
                [
                    ("server id", data.get("server_id")),
                    ("serial", data.get("serial")),
                    ("current key", data.get("key_id")),
                    ("rotations", len(data.get("rotations") or [])),
                ],
                title="Signed content",
            ),
            output.table(
                ("key_id", "current", "created", "valid until"),
                [
                    [
                        k.get("key_id"),
                        k.get("current"),
                        output.when(k.get("created_at")),
                        output.when(k.get("valid_until")) if k.get("valid_until") else "",
                    ]
                    for k in data.get("keys") or []
                ],
            ),
        )

    call.emit(call.api.get("/content"), render)


@command(key_app, "rotate")
def key_rotate(
    call: Call,
    overlap_hours: Annotated[
        int, typer.Option("--overlap-hours", help="how long agents still accept the old key")
    ] = 168,
) -> None:
    """Make a new content key; the old one signs the rotation and stays valid meanwhile."""
    result = call.api.post("/content-key/rotate", {"overlap_hours": overlap_hours})

    def render(data: dict[str, Any]) -> None:
        st = data.get("statement") or {}
        output.line(
            f"content key rotated: {st.get('old_key_id')} -> {st.get('new_key_id')}; the old key "
            f"is accepted until {st.get('old_key_valid_until')}"
        )

    call.emit(result, render)


@command(app, "fleet")
def fleet(
    call: Call,
    behind: Annotated[bool, typer.Option("--behind", help="only the stations behind")] = False,
) -> None:
    """Which Garrison stations run which content version, and which are behind."""
    params = {"behind": "true"} if behind else {}

    def render(data: dict[str, Any]) -> None:
        rows = []
        for st in data.get("stations") or []:
            running = ", ".join(
                f"{r['name']}@{r.get('running') if r.get('running') is not None else '-'}"
                f"/{r['assigned']}"
                for r in st.get("rules") or []
            )
            rows.append(
                [
                    st.get("station_id"),
                    st.get("hostname"),
                    st.get("group") or "(default)",
                    st.get("content_serial") if st.get("content_serial") is not None else "-",
                    "behind" if st.get("behind") else "current",
                    running,
                ]
            )
        caption = (
            f"serial {data.get('serial')}; {data.get('behind')} of "
            f"{len(data.get('stations') or [])} station(s) behind"
        )
        output.show(
            output.table(
                ("station", "hostname", "group", "serial", "state", "rules (running/assigned)"),
                rows,
                caption=caption,
            )
        )

    call.emit(call.api.get("/content/fleet", **params), render)
