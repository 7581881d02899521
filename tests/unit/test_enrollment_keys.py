"""Enrollment key generation and format (garrison.server.enrollment.service)."""

from __future__ import annotations

import random
import string

import pytest

from garrison.server.enrollment.service import KEY_RE, generate_key

ALPHABET = set(string.ascii_uppercase + string.digits)


def test_generated_key_has_the_armadito_format() -> None:
    for _ in range(200):
        key = generate_key()
        assert KEY_RE.match(key), key
        assert len(key) == 29
        groups = key.split("-")
        assert [len(g) for g in groups] == [5, 5, 5, 5, 5]
        assert set("".join(groups)) <= ALPHABET


def test_generated_keys_are_distinct_and_use_the_whole_alphabet() -> None:
    keys = [generate_key() for _ in range(2000)]
    assert len(set(keys)) == len(keys)
    seen = set("".join(keys).replace("-", ""))
    assert seen == ALPHABET  # 50,000 draws over 36 symbols: every one appears


def test_generated_keys_do_not_come_from_the_random_module() -> None:
    # A CSPRNG is not reset by seeding Python's `random`.
    random.seed(1234)
    first = generate_key()
    random.seed(1234)
    second = generate_key()
    assert first != second


@pytest.mark.parametrize(
    "key",
    [
        "0RV2V-2RYTX-NX4OW-7LARZ-KZQAJ",
        "AAAAA-AAAAA-AAAAA-AAAAA-AAAAA",
        "00000-99999-ZZZZZ-A1B2C-3D4E5",
    ],
)
def test_key_format_accepts(key: str) -> None:
    assert KEY_RE.match(key)


@pytest.mark.parametrize(
    "key",
    [
        "0rv2v-2rytx-nx4ow-7larz-kzqaj",  # lower case (the service upper-cases before matching)
        "0RV2V-2RYTX-NX4OW-7LARZ",  # four groups
        "0RV2V-2RYTX-NX4OW-7LARZ-KZQAJ-AAAAA",  # six groups
        "0RV2V2RYTXNX4OW7LARZKZQAJ",  # no dashes
        "0RV2V_2RYTX_NX4OW_7LARZ_KZQAJ",  # other separator
        "0RV2V-2RYTX-NX4OW-7LARZ-KZQA",  # short last group
        "0RV2V-2RYTX-NX4OW-7LARZ-KZQAJJ",  # long last group
        "0RV2V-2RYTX-NX4OW-7LARZ-KZQA!",  # symbol
        "0RV2V-2RYTX-NX4ÖW-7LARZ-KZQAJ",  # non-ASCII letter
        " 0RV2V-2RYTX-NX4OW-7LARZ-KZQAJ",  # leading space
        "",
    ],
)
def test_key_format_refuses(key: str) -> None:
    assert KEY_RE.match(key) is None
