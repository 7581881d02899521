"""docs/events.md is generated from the catalogue and must be current."""

from __future__ import annotations

from pathlib import Path

from garrison.common.catalogue_doc import render

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def test_events_doc_is_current() -> None:
    assert DOC.read_text() == render(), (
        "docs/events.md is stale: run python -m garrison.common.catalogue_doc > docs/events.md"
    )
