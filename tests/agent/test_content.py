"""Signed content on the agent against an in-test server speaking CONTENT-WIRE.md: pinning,
verification, download with resume, deltas, install, swap, rollback, and the faults."""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from garrison.agent.content import budget, sync
from garrison.agent.content.download import apply_delta
from garrison.agent.content.errors import ContentRefused
from garrison.agent.content.keys import FILE as KEYS_FILE
from garrison.agent.content.keys import TrustStore
from garrison.agent.content.store import ContentStore
from garrison.agent.content.wire import parse_announcement, parse_manifest
from garrison.agent.context import Agent
from garrison.agent.jobstore import JobStore
from garrison.agent.scan import signatures
from garrison.agent.scan.signatures import SignatureDB, digests
from garrison.agent.state import StateDir
from garrison.agent.tasks import enrollment, getjobs, runjobs
from tests.agent.content_fake import FakeContentServer, Key

pytest.importorskip("yara")

ONLY_RULE = b"garrison content test marker 7f3a"
YARA = (
    'rule Garrison_Content_Test { meta: threat_name = "Content.Test.Yara" '
    'strings: $a = "garrison content test marker 7f3a" condition: $a }\n'
)


def hash_line(data: bytes, name: str) -> str:
    return f"{hashlib.sha256(data).hexdigest()}:{len(data)}:{name}"


@pytest.fixture
def fake() -> Iterator[FakeContentServer]:
    server = FakeContentServer()
    yield server
    server.close()


@pytest.fixture
def agent(tmp_path: Path, fake: FakeContentServer, monkeypatch: pytest.MonkeyPatch) -> Agent:
    monkeypatch.setenv("GARRISON_AGENT_UUID", "AAAAAAAA-0000-0000-0000-00000000C0DE")
    state = StateDir(tmp_path / "state", explicit=True)
    agent = Agent(state, fake.url)
    enrollment.run(agent, "AAAAA-AAAAA-AAAAA-AAAAA-AAAAA")
    return agent


def sent(agent: Agent, path: str) -> list[dict[str, Any]]:
    return [m.body for m in agent.spool.pending() if m.path == path]


def failures(agent: Agent) -> list[str]:
    return [
        e["data"]["description"]
        for e in sent(agent, "events")
        if e["type"] == "station_update_failed"
    ]


def detects(agent: Agent, data: bytes) -> list[str]:
    return [threat for threat, _, _ in agent.engine().match(data)]


def installed_serial(agent: Agent) -> int | None:
    found = ContentStore(agent.state).installed()
    return found.manifest.serial if found else None


# -- pinning and the first install -----------------------------------------------------------


def test_enrollment_pins_the_content_keys(agent: Agent, fake: FakeContentServer) -> None:
    path = agent.state.path / KEYS_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    trust = TrustStore.load(agent.state)
    assert trust.server_id == fake.server_id
    assert set(trust.keys) == {fake.keys[0].id}


def test_install_detects_reports_and_is_atomic(agent: Agent, fake: FakeContentServer) -> None:
    assert detects(agent, ONLY_RULE) == []
    fake.put("test-rules", "yara", YARA)
    listed = b"a file listed by hash only"
    fake.put("bad-hashes", "hashes", hash_line(listed, "Content.Test.Hash") + "\n")
    outcome = sync.update(agent)
    assert outcome.status == "installed", outcome.message
    assert detects(agent, ONLY_RULE) == ["Content.Test.Yara"]
    assert detects(agent, listed) == ["Content.Test.Hash"]
    # On disk: current -> v<serial>-…, holding the files and the signed envelope.
    store = ContentStore(agent.state)
    link = os.readlink(store.current_link)
    assert link.startswith(f"v{fake.serial:09d}-")
    live = store.live_dir()
    assert live is not None
    assert sorted(p.name for p in live.iterdir()) == [
        "bad-hashes.hsb",
        "manifest.json",
        "test-rules.yar",
    ]
    # State: one module per rule set, content_serial; the server makes virus_bases_received.
    (state,) = sent(agent, "states")
    assert state["dbinfo"]["content_serial"] == fake.serial
    modules = {m["name"]: m for m in state["dbinfo"]["modules"]}
    rules = modules["test-rules"]
    assert rules["mod_status"] == "up-to-date"
    assert (rules["version"], rules["records"], rules["mod_version"]) == (1, 1, "1")
    assert rules["sha256"] == hashlib.sha256(YARA.encode()).hexdigest()
    assert rules["mod_update_timestamp"] == int(parse_manifest(fake.manifest()).issued.timestamp())
    # A new agent process (a scan by hand) loads the same content from disk.
    fresh = Agent(agent.state, fake.url)
    assert detects(fresh, ONLY_RULE) == ["Content.Test.Yara"]
    # Unchanged: a conditional GET answered 304, no file fetched again.
    before = len(list(fake.file_requests()))
    assert sync.update(agent).status == "unchanged"
    assert len(list(fake.file_requests())) == before
    assert failures(agent) == []


def test_checkin_announcement_drives_the_update(agent: Agent, fake: FakeContentServer) -> None:
    checkin = getjobs.check_in(agent)
    assert checkin.content is not None
    assert checkin.content.serial == fake.serial
    fake.put("test-rules", "yara", YARA)
    announced = getjobs.check_in(agent).content
    outcome = sync.on_checkin(agent, announced)
    assert outcome is not None
    assert outcome.status == "installed"
    # The same announcement again: nothing fetched at all.
    count = len(fake.requests)
    assert sync.on_checkin(agent, getjobs.check_in(agent).content) is None
    assert [r[1] for r in fake.requests[count:]] == ["/api/jobs"]
    assert sync.on_checkin(agent, None) is None  # an older server announces nothing
    assert parse_announcement({"serial": "1", "manifest_sha256": "x"}) is None


def test_files_kept_across_serials_are_linked_not_fetched(
    agent: Agent, fake: FakeContentServer
) -> None:
    fake.put("test-rules", "yara", YARA)
    assert sync.update(agent).status == "installed"
    fake.put("other", "ioc", "path:/tmp/evil\n")
    outcome = sync.update(agent)
    assert outcome.status == "installed"
    assert set(outcome.fetched) == {"other.ioc"}
    # The previous directory stays (a delta's base); older ones are removed.
    fake.put("other", "ioc", "path:/tmp/evil2\n")
    assert sync.update(agent).status == "installed"
    versions = [p for p in ContentStore(agent.state).root.iterdir() if p.name.startswith("v")]
    assert len(versions) == 2


# -- faults: refused, the previous content keeps scanning ------------------------------------


def _installed_first(agent: Agent, fake: FakeContentServer) -> int:
    fake.put("test-rules", "yara", YARA)
    assert sync.update(agent).status == "installed"
    serial = installed_serial(agent)
    assert serial is not None
    return serial


def _kept_previous(agent: Agent, serial: int) -> None:
    assert installed_serial(agent) == serial
    assert detects(agent, ONLY_RULE) == ["Content.Test.Yara"]
    assert detects(Agent(agent.state, agent.server_url), ONLY_RULE) == ["Content.Test.Yara"]


def test_bad_signature_refused_once_then_retried_by_a_job(
    agent: Agent, fake: FakeContentServer
) -> None:
    serial = _installed_first(agent, fake)
    fake.put("more", "hashes", hash_line(b"x", "X") + "\n")
    envelope = fake.envelope()
    envelope["manifest"] = {**envelope["manifest"], "serial": envelope["manifest"]["serial"] + 5}
    fake.envelope_override = envelope  # altered after signing
    announced = parse_announcement(fake.announcement())
    outcome = sync.on_checkin(agent, announced)
    assert outcome is not None
    assert outcome.status == "refused"
    assert "signature does not verify" in outcome.message
    _kept_previous(agent, serial)
    assert len(failures(agent)) == 1
    # Refused for good: the next check-ins do not fetch it again, nor report it again.
    count = len(fake.requests)
    assert sync.on_checkin(agent, announced) is None
    assert len(fake.requests) == count
    # UpdateSignatures (no source) tries again and reports again.
    JobStore(agent.state).add([{"job_id": 5, "job_type": "UpdateSignatures", "obj": {}}])
    (done,) = runjobs.run(agent).outcomes
    assert done.code != 0
    assert "signature does not verify" in done.message
    assert len(failures(agent)) == 2


def test_tampered_file_refused(agent: Agent, fake: FakeContentServer) -> None:
    serial = _installed_first(agent, fake)
    sha = fake.put("test-rules", "yara", YARA.replace("7f3a", "7f3b"))
    fake.tamper.add(sha)
    outcome = sync.update(agent)
    assert outcome.status == "refused"
    assert "does not match the signed manifest" in outcome.message
    _kept_previous(agent, serial)
    (reason,) = failures(agent)
    assert "test-rules.yar" in reason
    assert not ContentStore(agent.state).partial(sha).exists()  # bad bytes are not kept
    versions = [p for p in ContentStore(agent.state).root.iterdir() if p.name.startswith("v")]
    assert len(versions) == 1  # the new directory was dropped


def test_truncated_download_is_deferred_then_resumed(agent: Agent, fake: FakeContentServer) -> None:
    serial = _installed_first(agent, fake)
    big = "".join(hash_line(str(i).encode(), f"T.{i}") + "\n" for i in range(2000)).encode()
    sha = fake.put("big", "hashes", big)
    fake.truncate_at[sha] = 50_000
    outcome = sync.update(agent)
    assert outcome.status == "deferred", outcome.message
    assert "interrupted" in outcome.message or "truncated" in outcome.message
    _kept_previous(agent, serial)
    partial = ContentStore(agent.state).partial(sha)
    have = partial.stat().st_size
    assert 0 < have < len(big)
    assert len(failures(agent)) == 1
    # Not permanent: the same announcement is fetched again, resuming where it stopped.
    resumed = sync.on_checkin(agent, parse_announcement(fake.announcement()))
    assert resumed is not None
    assert resumed.status == "installed", resumed
    outcome = resumed
    assert outcome.fetched["big.hsb"].how == "resumed"
    ranges = [h.get("range") or h.get("Range") for _, h in fake.file_requests()]
    assert f"bytes={have}-" in ranges
    assert not partial.exists()
    assert detects(agent, b"1999") == ["T.1999"]
    # A download left unfinished for a file no longer wanted goes at the next install.
    stale = ContentStore(agent.state).partial("ab" * 32)
    stale.write_bytes(b"half")
    fake.put("other", "ioc", "path:/tmp/x\n")
    assert sync.update(agent).status == "installed"
    assert not stale.exists()


def test_manifest_from_another_server_refused(agent: Agent, fake: FakeContentServer) -> None:
    serial = _installed_first(agent, fake)
    fake.manifest_server_id = "99999999-0000-0000-0000-000000000000"
    fake.bump()
    outcome = sync.update(agent)
    assert outcome.status == "refused"
    assert "another server" in outcome.message
    _kept_previous(agent, serial)


def test_replayed_older_serial_refused(agent: Agent, fake: FakeContentServer) -> None:
    fake.put("test-rules", "yara", YARA)
    old = fake.envelope()
    fake.put("test-rules", "yara", YARA + "rule Second { condition: false }\n")
    assert sync.update(agent).status == "installed"
    serial = installed_serial(agent)
    fake.envelope_override = old  # validly signed, but older
    outcome = sync.update(agent)
    assert outcome.status == "refused"
    assert "not above the installed" in outcome.message
    assert installed_serial(agent) == serial
    # An administrator's pin to an older version comes with a new serial: accepted.
    fake.envelope_override = None
    fake.rulesets["test-rules"].versions.append(fake.rulesets["test-rules"].versions[0])
    fake.bump()
    assert sync.update(agent).status == "installed"


def test_unknown_key_refused(agent: Agent, fake: FakeContentServer) -> None:
    serial = _installed_first(agent, fake)
    fake.keys.append(Key())  # signs with a key no rotation introduced
    fake.bump()
    outcome = sync.update(agent)
    assert outcome.status == "refused"
    assert "does not trust" in outcome.message
    _kept_previous(agent, serial)


def test_rotation_reaches_the_agent(agent: Agent, fake: FakeContentServer) -> None:
    _installed_first(agent, fake)
    old = fake.keys[0]
    new = fake.rotate()
    outcome = sync.update(agent)
    assert outcome.status == "installed", outcome.message
    trust = TrustStore.load(agent.state)
    assert set(trust.keys) == {old.id, new.id}
    assert trust.keys[old.id].valid_until is not None
    assert trust.keys[new.id].valid_until is None
    # Past the overlap the old key is refused; the new one still works.
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=8)
    fake.keys.append(old)  # the server (or a thief) signs with the old key again
    fake.bump()
    outcome = sync.update(agent, now=later)
    assert outcome.status == "refused"
    assert "expired" in outcome.message
    fake.keys.pop()
    fake.bump()
    assert sync.update(agent, now=later).status == "installed"


def test_forged_rotation_is_not_trusted(agent: Agent, fake: FakeContentServer) -> None:
    _installed_first(agent, fake)
    thief = Key()
    fake.keys = [thief]  # "rotates" with a statement signed by a key the agent never had
    fake.rotate()
    outcome = sync.update(agent)
    assert outcome.status == "refused"
    assert "does not trust" in outcome.message
    # A statement naming a trusted old key but not signed by it is refused as such.
    fake.rotations = [
        {**fake.rotations[-1], "statement": {**fake.rotations[-1]["statement"], "old_key_id": (
            TrustStore.load(agent.state).keys.popitem()[0]
        )}}
    ]  # fmt: skip
    fake.bump()
    outcome = sync.update(agent)
    assert outcome.status == "refused"
    assert "signature does not verify" in outcome.message


def test_rotation_after_the_overlap_needs_a_new_enrollment(
    agent: Agent, fake: FakeContentServer
) -> None:
    _installed_first(agent, fake)
    fake.rotate(overlap=dt.timedelta(seconds=-1))  # already over: the agent was away
    outcome = sync.update(agent)
    assert outcome.status == "refused"
    assert "does not trust" in outcome.message
    enrollment.run(agent, "AAAAA-AAAAA-AAAAA-AAAAA-AAAAA")
    assert sync.update(agent).status == "installed"


def test_several_rotations_within_their_overlaps_are_walked_at_once(
    agent: Agent, fake: FakeContentServer
) -> None:
    """docs/content.md: an agent away for a while, but back within every overlap, follows
    a chain of rotations in one update."""
    _installed_first(agent, fake)
    fake.rotate()
    third = fake.rotate()
    assert sync.update(agent).status == "installed"
    assert third.id in TrustStore.load(agent.state).keys


def test_a_chain_broken_by_an_expired_overlap_is_not_walked(
    agent: Agent, fake: FakeContentServer
) -> None:
    """The first rotation's overlap is over when the agent comes back: the later rotation,
    though still in its overlap, is signed by a key this agent never learnt."""
    _installed_first(agent, fake)
    fake.rotate(overlap=dt.timedelta(seconds=-1))
    third = fake.rotate()
    outcome = sync.update(agent)
    assert outcome.status == "refused"
    assert "does not trust" in outcome.message
    assert third.id not in TrustStore.load(agent.state).keys


# -- deltas ----------------------------------------------------------------------------------


def test_apply_delta_keeps_order_and_ends_with_a_newline() -> None:
    assert apply_delta(b"a\nb\nc\n", ["b"], ["d", "e"]) == b"a\nc\nd\ne\n"
    assert apply_delta(b"a\nb", [], []) == b"a\nb\n"
    assert apply_delta(b"a\na\nb\n", ["a", "b"], []) == b""


def test_delta_applied_and_checked(agent: Agent, fake: FakeContentServer) -> None:
    lines = [hash_line(str(i).encode(), f"D.{i}") for i in range(500)]
    fake.put("hashes", "hashes", "\n".join(lines) + "\n")
    assert sync.update(agent).status == "installed"
    changed = [*lines[1:], hash_line(b"new", "D.new")]
    fake.put("hashes", "hashes", "\n".join(changed) + "\n")
    outcome = sync.update(agent)
    assert outcome.status == "installed"
    assert outcome.fetched["hashes.hsb"].how == "delta"
    assert outcome.fetched["hashes.hsb"].received < 1000
    assert detects(agent, b"new") == ["D.new"]
    assert detects(agent, b"0") == []
    # A delta whose result is not the signed file: the whole file is fetched instead.
    fake.bad_delta = True
    fake.put("hashes", "hashes", "\n".join([*changed, hash_line(b"n2", "D.n2")]) + "\n")
    outcome = sync.update(agent)
    assert outcome.status == "installed"
    assert outcome.fetched["hashes.hsb"].how == "full"
    assert detects(agent, b"n2") == ["D.n2"]
    assert detects(agent, b"\xff") == []


# -- the engine: rollback, budgets, the swap --------------------------------------------------


def test_engine_that_fails_to_load_is_rolled_back(agent: Agent, fake: FakeContentServer) -> None:
    serial = _installed_first(agent, fake)
    fake.put("test-rules", "yara", "rule broken { condition: }\n")
    outcome = sync.update(agent)
    assert outcome.status == "refused"
    assert "do not compile" in outcome.message or "does not load" in outcome.message
    _kept_previous(agent, serial)
    assert failures(agent)


def test_yara_over_its_scan_time_budget_is_refused(agent: Agent, fake: FakeContentServer) -> None:
    serial = _installed_first(agent, fake)
    fake.put("test-rules", "yara", YARA + "rule Other { strings: $b = /a[0-9]+b/ condition: $b }\n")
    tight = budget.Budget(scan_seconds=0.000_001)
    outcome = sync.update(agent, budget=tight)
    assert outcome.status == "refused"
    assert "scan time budget" in outcome.message
    _kept_previous(agent, serial)


def test_yara_over_its_memory_budget_is_refused(tmp_path: Path) -> None:
    rules = tmp_path / "many.yar"
    rules.write_text(
        "\n".join(
            f'rule r{i} {{ strings: $s = "abcdefgh{i:08d}" condition: $s }}' for i in range(20000)
        )
    )
    assert budget.check([rules])["rules"] == 20000
    with pytest.raises(ContentRefused, match="memory budget"):
        budget.check([rules], budget.Budget(memory_bytes=40 << 20))


def test_yara_includes_are_refused(tmp_path: Path) -> None:
    rules = tmp_path / "inc.yar"
    rules.write_text('include "/etc/passwd"\nrule a { condition: true }\n')
    with pytest.raises(ContentRefused, match="includes are disabled"):
        budget.check([rules])


def test_disk_full_during_the_swap_keeps_the_previous_content(
    agent: Agent, fake: FakeContentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial = _installed_first(agent, fake)
    fake.put("test-rules", "yara", YARA + "rule Second { condition: false }\n")

    def full(source: str, target: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ContentStore, "replace", staticmethod(full))
    outcome = sync.update(agent)
    assert outcome.status == "deferred"
    assert "the disk is full" in outcome.message
    _kept_previous(agent, serial)
    assert "the disk is full" in failures(agent)[0]
    versions = [p for p in ContentStore(agent.state).root.iterdir() if p.name.startswith("v")]
    assert len(versions) == 1
    monkeypatch.undo()
    retried = sync.on_checkin(agent, parse_announcement(fake.announcement()))
    assert retried is not None
    assert retried.status == "installed"


# Holds a wake-up (a swap) to a second or two, no slack for a loaded machine: alone.
@pytest.mark.serial
def test_scanning_goes_on_while_the_new_engine_loads(
    agent: Agent, fake: FakeContentServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _installed_first(agent, fake)
    old_db = agent.signatures
    listed = b"listed in the second serial"
    fake.put("more", "hashes", hash_line(listed, "Second.Serial") + "\n")
    loading, release = threading.Event(), threading.Event()
    real = signatures.load_database

    def slow(dirs: list[Path], use_yara: bool = True) -> SignatureDB:
        db = real(dirs, use_yara)
        loading.set()
        assert release.wait(30)
        return db

    monkeypatch.setattr(sync, "load_database", slow)
    outcomes: list[sync.Outcome] = []
    worker = threading.Thread(target=lambda: outcomes.append(sync.update(agent)))
    worker.start()
    try:
        assert loading.wait(30)
        # Mid-update: the old engine answers at once, with the old content.
        assert agent.signatures is old_db
        assert detects(agent, ONLY_RULE) == ["Content.Test.Yara"]
        assert detects(agent, listed) == []
        engine = agent.engine()
    finally:
        release.set()
        worker.join(30)
    assert outcomes[0].status == "installed"
    assert outcomes[0].swap_seconds < 1.0
    assert detects(agent, listed) == ["Second.Serial"]
    assert engine.db is old_db  # a scan that started before the swap keeps its engine


# -- UpdateSignatures ------------------------------------------------------------------------


def _job(agent: Agent, job_id: int, obj: dict[str, Any]) -> tuple[int, str]:
    JobStore(agent.state).add([{"job_id": job_id, "job_type": "UpdateSignatures", "obj": obj}])
    (outcome,) = runjobs.run(agent).outcomes
    return outcome.code, outcome.message


def test_update_signatures_without_a_source_fetches_the_assignment(
    agent: Agent, fake: FakeContentServer
) -> None:
    fake.put("test-rules", "yara", YARA)
    code, message = _job(agent, 1, {})
    assert code == 0, message
    assert f"content serial {fake.serial} installed" in message
    code, message = _job(agent, 2, {})
    assert code == 0
    assert "is current" in message


def test_unsigned_and_plain_http_sources_refused_by_default(
    agent: Agent, fake: FakeContentServer, tmp_path: Path
) -> None:
    _installed_first(agent, fake)
    local = tmp_path / "local.hsb"
    local.write_text(hash_line(b"local", "Local.Unsigned") + "\n")
    code, message = _job(agent, 1, {"source": "http://example.invalid/x.hsb"})
    assert code != 0
    assert "plain-HTTP" in message
    code, message = _job(agent, 2, {"source": str(local)})
    assert code != 0
    assert "unsigned source" in message
    assert not (agent.state.signatures_dir / "local.hsb").exists()
    assert detects(agent, b"local") == []
    # The group's policy allows unsigned sources: the job refreshes it, then installs.
    fake.allow_unsigned = True
    fake.bump()
    code, message = _job(agent, 3, {"source": str(local)})
    assert code == 0, message
    assert detects(agent, b"local") == ["Local.Unsigned"]
    # Allowed no more: files from a source stop loading with the next content.
    fake.allow_unsigned = False
    fake.bump()
    assert sync.update(agent).status == "installed"
    assert detects(agent, b"local") == []


def test_no_pinned_key_refuses_everything(tmp_path: Path, fake: FakeContentServer) -> None:
    state = StateDir(tmp_path / "bare", explicit=True)
    agent = Agent(state, fake.url)
    enrollment.run(agent, "AAAAA-AAAAA-AAAAA-AAAAA-AAAAA")
    (state.path / KEYS_FILE).unlink()
    fake.put("test-rules", "yara", YARA)
    outcome = sync.update(agent)
    assert outcome.status == "refused"
    assert "no content key is pinned" in outcome.message


def test_bad_file_names_are_refused() -> None:
    base = {
        "format": 1, "server_id": "s", "serial": 2, "issued": "2026-12-01T00:00:00Z",
        "station_group": None, "policy": {"allow_unsigned_sources": False},
    }  # fmt: skip
    entry = {"ruleset": "x", "kind": "yara", "version": 1, "sha256": "0" * 64, "size": 1}
    for name in ("../x.yar", "x.hsb", "x/../../y.yar", "x.yar\x00"):
        with pytest.raises(ContentRefused):
            parse_manifest({**base, "files": [{**entry, "name": name}]})
    with pytest.raises(ContentRefused):
        parse_manifest({**base, "files": [{**entry, "name": "../x.yar", "ruleset": "../x"}]})
    assert parse_manifest({**base, "files": [{**entry, "name": "x.yar"}]}).files[0].name == "x.yar"
    json.dumps(base)  # the shape is plain JSON
    assert digests(b"")["sha256"] == hashlib.sha256(b"").hexdigest()


def test_a_yara_timeout_while_scanning_is_that_files_error(
    agent: Agent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import yara  # type: ignore[import-not-found,unused-ignore]

    from tests.agent.helpers import write_eicar

    slow = tmp_path / "scan" / "slow.bin"
    slow.parent.mkdir()
    slow.write_bytes(b"a file this rule set is too slow for")
    write_eicar(tmp_path / "scan" / "eicar.com")
    db = agent.signatures
    real = db.match_yara

    def match_yara(data: bytes, timeout: int = 60) -> list[tuple[str, bool]]:
        if data.startswith(b"a file this rule set"):
            raise yara.TimeoutError("internal error: 30")
        return real(data)

    monkeypatch.setattr(db, "match_yara", match_yara)
    result = agent.engine().scan([str(tmp_path / "scan")])
    assert [d.path for d in result.detections if d.module != "yara"] == [
        str(tmp_path / "scan" / "eicar.com")
    ]
    assert result.errors == [f"{slow}: YARA: internal error: 30"]
    assert result.scanned == 2


def test_content_installed_by_another_process_is_loaded_at_the_next_check_in(
    agent: Agent, fake: FakeContentServer
) -> None:
    assert detects(agent, ONLY_RULE) == []
    fake.put("test-rules", "yara", YARA)
    by_hand = Agent(agent.state, fake.url)  # garrison-agent -t Getjobs beside the daemon
    assert sync.update(by_hand).status == "installed"
    assert detects(agent, ONLY_RULE) == []  # the daemon's engine: not swapped by another
    assert sync.on_checkin(agent, parse_announcement(fake.announcement())) is None
    assert detects(agent, ONLY_RULE) == ["Content.Test.Yara"]
    assert agent.loaded_content == fake.announcement()["manifest_sha256"]
