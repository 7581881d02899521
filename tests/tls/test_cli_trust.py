"""The admin CLI's trust in an https server: ``GARRISON_CA_FILE``, else the data dir's CA."""

from __future__ import annotations

from pathlib import Path

import pytest

from garrison.cli.client import Api, UsageError, ca_file, local_url, write_url_file
from garrison.server.tls.authority import Authority


def test_the_ca_comes_from_the_environment_then_the_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert ca_file(data, {}) is None  # no CA: the system's CAs only
    Authority.open(data / "tls")
    assert ca_file(data, {}) == data / "tls" / "ca.pem"
    assert ca_file(data, {"GARRISON_CA_FILE": "/x/ca.pem"}) == Path("/x/ca.pem")
    Api("https://127.0.0.1:1", ca=data / "tls" / "ca.pem").close()  # loads


def test_a_ca_file_that_does_not_load_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "bad.pem").write_text("not a certificate")
    with pytest.raises(UsageError, match="cannot use the CA file"):
        Api("https://127.0.0.1:1", ca=tmp_path / "bad.pem")


def test_the_recorded_url_says_https(tmp_path: Path) -> None:
    assert local_url("0.0.0.0", 8443, "https") == "https://127.0.0.1:8443"
    path = write_url_file(tmp_path, "::", 8443, "https")
    assert path.read_text().strip() == "https://[::1]:8443"
