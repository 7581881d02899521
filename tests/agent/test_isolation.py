from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from garrison.agent import isolation
from garrison.agent.isolation import Endpoint, IsolationError, ruleset


def test_ruleset_text() -> None:
    text = ruleset(Endpoint("garrison", 8080, ("10.0.0.5", "fd00::5")), ["192.168.1.1"])
    assert text.startswith(
        "table inet garrison_isolation {}\ndelete table inet garrison_isolation\n"
    )
    assert "type filter hook input priority -100; policy drop;" in text
    assert "type filter hook output priority -100; policy drop;" in text
    assert 'iif "lo" accept' in text
    assert 'oif "lo" accept' in text
    assert "ip daddr 10.0.0.5 tcp dport 8080 accept" in text
    assert "ip6 daddr fd00::5 tcp dport 8080 accept" in text
    assert "ip daddr 192.168.1.1 udp dport 53 accept" in text
    assert "ct state established,related accept" in text


def test_server_endpoint() -> None:
    endpoint = isolation.server_endpoint("http://127.0.0.1:8080/")
    assert (endpoint.port, endpoint.addresses) == (8080, ("127.0.0.1",))
    assert isolation.server_endpoint("https://127.0.0.1").port == 443


def test_nameservers(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# x\nnameserver 1.1.1.1\nnameserver fe80::1%eth0\nnameserver junk\n")
    assert isolation.nameservers(conf) == ["1.1.1.1", "fe80::1"]


def test_missing_nft_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(shutil, "which", lambda *a, **k: None)
    with pytest.raises(IsolationError, match="nft \\(nftables\\) is not installed"):
        isolation.apply("table inet garrison_isolation {}\n")


REAL = """
import json, sys
from pathlib import Path
from garrison.agent import isolation
from garrison.agent.state import StateDir
state = StateDir(Path(sys.argv[1]), explicit=True).ensure()
isolation.isolate(state, "http://127.0.0.1:8080")
listed = isolation.active_ruleset()
assert isolation.is_isolated(state)
# re-applying (daemon start) is idempotent
assert isolation.reapply(state)
isolation.rejoin(state)
assert not isolation.is_isolated(state)
print(json.dumps({"listed": listed}))
"""


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("nft") is None, reason="needs root and nft")
def test_real_nftables_in_a_network_namespace(tmp_path: Path) -> None:
    done = subprocess.run(
        ["unshare", "-n", sys.executable, "-c", REAL, str(tmp_path / "state")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    if done.returncode != 0 and "Operation not permitted" in done.stderr:
        pytest.skip("network namespaces are not permitted here")
    assert done.returncode == 0, done.stderr
    assert "table inet garrison_isolation" in done.stdout
    assert "127.0.0.1" in done.stdout
