"""Test keys standing in for ClamAV's, and containers built and signed with them."""

from __future__ import annotations

import functools

from cryptography.hazmat.primitives.asymmetric import rsa

from garrison.common import clamav_cvd


def _private(bits: int) -> clamav_cvd.RSAPrivateKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    numbers = key.private_numbers()
    return clamav_cvd.RSAPrivateKey(
        n=numbers.public_numbers.n, e=numbers.public_numbers.e, d=numbers.d
    )


@functools.cache
def cvd_key() -> clamav_cvd.RSAPrivateKey:
    return _private(1024)  # ClamAV's header key is 1024-bit


@functools.cache
def info_key() -> clamav_cvd.RSAPrivateKey:
    return _private(2048)  # cli_versig2 works on 2048-bit keys


def keys() -> clamav_cvd.ClamAVKeys:
    return clamav_cvd.ClamAVKeys(cvd=cvd_key().public, info=info_key().public)


def build(name: str, files: dict[str, bytes], *, compressed: bool = True, **kw: object) -> bytes:
    return clamav_cvd.build(name, files, cvd_key(), info_key(), compressed=compressed, **kw)  # type: ignore[arg-type]
