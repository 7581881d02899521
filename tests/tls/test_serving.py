"""The server's TLS state in one process: names, renewal, revocation list, settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from garrison.server.settings import Settings
from garrison.server.tls.authority import cert_names, load_chain
from garrison.server.tls.serving import ServerTls


def settings(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(data_dir=tmp_path / "data", **overrides)  # type: ignore[arg-type]


def test_the_certificate_names_the_host_and_renews_for_new_names(tmp_path: Path) -> None:
    tls = ServerTls.prepare(settings(tmp_path, tls_names="garrison.example, 10.9.8.7"))
    names = cert_names(load_chain(tls.cert_file)[0])
    assert {"garrison.example", "10.9.8.7", "127.0.0.1", "localhost", "::1"} <= names
    assert tls.created
    assert tls.refresh() is False  # nothing changed: the context in force stays
    again = ServerTls.prepare(settings(tmp_path, tls_names="other.example"))
    assert not again.created
    assert again.fingerprint == tls.fingerprint  # the same CA: pinned agents notice nothing
    assert "other.example" in cert_names(load_chain(again.cert_file)[0])


def test_a_certificate_near_its_end_is_renewed_in_place(tmp_path: Path) -> None:
    tls = ServerTls.prepare(
        settings(tmp_path, tls_cert_lifetime_seconds=600, tls_renew_before_seconds=300)
    )
    first = load_chain(tls.cert_file)[0].serial_number
    assert tls.refresh() is False
    # Renewed 30 min before its end: a certificate of 10 min is due at once.
    tls.settings = settings(tmp_path, tls_cert_lifetime_seconds=3600, tls_renew_before_seconds=1800)
    assert tls.refresh() is True
    assert load_chain(tls.cert_file)[0].serial_number != first


def test_revoked_serials_go_to_the_crl(tmp_path: Path) -> None:
    tls = ServerTls.prepare(settings(tmp_path, tls_client_certs=True))
    assert tls.refresh(["ab", "cd"]) is True
    crl = x509.load_pem_x509_crl(tls.authority.crl_file.read_bytes())
    assert sorted(r.serial_number for r in crl) == [0xAB, 0xCD]
    assert crl.is_signature_valid(tls.authority.cert.public_key())  # type: ignore[arg-type]
    assert tls.refresh(["ab", "cd"]) is False


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"tls_renew_before_seconds": 100, "tls_cert_lifetime_seconds": 100}, "must be less"),
        ({"tls_cert_file": Path("/nonexistent.pem")}, "--tls-key"),
    ],
)
def test_settings_it_cannot_use_are_refused(
    tmp_path: Path, overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ServerTls.prepare(settings(tmp_path, **overrides))
