"""Renders ``docs/events.md`` from the catalogue: ``python -m garrison.common.catalogue_doc``.

The test suite fails when the checked-in file differs from what this renders.
"""

from __future__ import annotations

import sys

from garrison.common.catalogue import ALL
from garrison.common.catalogue_telemetry import LINUX_NOT_FILLED
from garrison.common.catalogue_types import EventType, Field

ORIGINS = {"station": "station", "server": "server only", "both": "station or server"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# The search parameter of a term role, where they differ (roles fit event_terms.role).
SEARCH_PARAMETER = {"upid": "unique_pid", "pupid": "parent_unique_pid"}


def _field_rows(
    fields: tuple[Field, ...], suffix: str = "", not_filled: dict[str, str] | None = None
) -> list[str]:
    rows = []
    for f in fields:
        notes = [f.doc] if f.doc else []
        if f.search:
            notes.append(f"searchable as `{SEARCH_PARAMETER.get(f.search, f.search)}=`")
        if f.keys:
            notes.append("keys: " + ", ".join(f.keys))
        if not_filled and f.name in not_filled:
            notes.append(f"**Linux agent:** {not_filled[f.name]}")
        rows.append(
            f"| `{f.name}{suffix}` | {f.type} | {'yes' if f.required else ''} | "
            f"{_cell('; '.join(notes))} |"
        )
    return rows


def _section(e: EventType) -> list[str]:
    lines = [f"### `{e.name}`", "", e.doc, ""]
    facts = [f"origin: {ORIGINS[e.origin]}", f"severity: {e.severity}", f"seed: `{e.source}`"]
    if e.procedure:
        facts.append(f"Lua procedure: `{e.procedure}`")
    if e.eset_type:
        facts.append(f"ESET export: `{e.eset_type}`")
    if e.telemetry:
        facts.append("telemetry (kept 30 days by default)")
    lines += [
        "- " + "; ".join(facts),
        "",
        "| field | type | required | notes |",
        "|---|---|---|---|",
    ]
    lines += _field_rows(e.fields, not_filled=LINUX_NOT_FILLED.get(e.name))
    for family in e.families:
        lines.append(f"| `{family.count}` | integer | | number of indexed items below |")
        lines += _field_rows(family.members, "_N")
    lines.append("")
    return lines


def render() -> str:
    lines = [
        "# Event catalogue",
        "",
        "Generated from `src/garrison/common/catalogue*.py` by "
        "`python -m garrison.common.catalogue_doc > docs/events.md`; do not edit by hand.",
        "",
        "Every event Garrison stores, validates, searches, hands to Lua procedures and exports "
        "is declared here. Stations send the ones whose origin allows it to `POST /api/events`; "
        "the server produces the others from the agent API traffic. Timestamps are stored as "
        "ISO-8601 UTC; hashes lower-case; `_N` fields are indexed families (`component_0`, "
        "`component_1`…) counted by their count field. A **Linux agent** note names a field "
        "the Linux agent's sensors never fill, and why (`LINUX_NOT_FILLED`); the others they "
        "fill whenever they could read them.",
        "",
    ]
    sources: dict[str, list[EventType]] = {}
    for e in ALL:
        sources.setdefault(e.source, []).append(e)
    for source, events in sources.items():
        lines += [f"## From `{source}` ({len(events)} types)", ""]
        for e in events:
            lines += _section(e)
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
