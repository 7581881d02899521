"""The alert de-duplication checksum (garrison.server.alerts.service.checksum)."""

from __future__ import annotations

import datetime as dt
import hashlib

from garrison.server.alerts.service import checksum

DETECTED = dt.datetime(2017, 7, 14, 2, 41, 40, tzinfo=dt.UTC)  # 1500000100


def test_checksum_is_sha256_of_the_reference_plugin_fields() -> None:
    text = "Eicar-Test-Signature;/tmp/scanme/eicar.com;2017-07-14 02:41:40;12;Armadito;"
    assert checksum("Eicar-Test-Signature", "/tmp/scanme/eicar.com", DETECTED, 12, "Armadito") == (
        hashlib.sha256(text.encode("utf-8")).hexdigest()
    )


def test_checksum_formats_the_time_in_utc_to_the_second() -> None:
    paris = dt.timezone(dt.timedelta(hours=2))
    same_instant = DETECTED.astimezone(paris)
    later_in_the_second = DETECTED.replace(microsecond=999_999)
    expected = checksum("T", "/f", DETECTED, 1, "Armadito")
    assert checksum("T", "/f", same_instant, 1, "Armadito") == expected
    assert checksum("T", "/f", later_in_the_second, 1, "Armadito") == expected
    assert checksum("T", "/f", DETECTED + dt.timedelta(seconds=1), 1, "Armadito") != expected


def test_checksum_depends_on_every_field() -> None:
    base = ("T", "/f", DETECTED, 1, "Armadito")
    expected = checksum(*base)
    variants = [
        ("U", "/f", DETECTED, 1, "Armadito"),
        ("T", "/g", DETECTED, 1, "Armadito"),
        ("T", "/f", DETECTED, 2, "Armadito"),
        ("T", "/f", DETECTED, 1, "ClamAV"),
    ]
    sums = {checksum(*v) for v in variants}
    assert expected not in sums
    assert len(sums) == len(variants)


def test_checksum_handles_non_ascii_paths() -> None:
    text = "T;/home/Téléchargements/x.exe;2017-07-14 02:41:40;3;Armadito;"
    assert checksum("T", "/home/Téléchargements/x.exe", DETECTED, 3, "Armadito") == (
        hashlib.sha256(text.encode("utf-8")).hexdigest()
    )
