"""Canonical documents and the voter-roll keys (pure logic)."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comuna_platform import voter_keys
from comuna_platform.documents import DocumentType, normalise_document
from comuna_platform.errors import InvalidInput


@pytest.mark.parametrize(
    "raw",
    [
        "V-12.345.678",
        "v12345678",
        "V 12 345 678",
        "12345678",
        "V012345678",
        "Ｖ－１２．３４５．６７８",
        "ｖ１２３４５６７８",
    ],
)
def test_the_ways_people_write_one_cedula_are_one_document(raw: str) -> None:
    assert normalise_document(raw).canonical == "V:12345678"


def test_the_type_may_come_apart_and_passports_keep_their_letters() -> None:
    assert normalise_document("81.234.567", "e").canonical == "E:81234567"
    assert normalise_document("ab-12345c", "P").canonical == "P:AB12345C"
    assert normalise_document("E-81234567").type is DocumentType.E


@pytest.mark.parametrize(
    ("raw", "kind"), [("", None), ("X123", None), ("V-", None), ("0", None), ("E123", "V"), ("12", "Q"), ("a b", "P")]
)
def test_what_is_not_a_document_is_refused_without_echoing_it(raw: str, kind: str | None) -> None:
    with pytest.raises(InvalidInput) as caught:
        normalise_document(raw, kind)
    assert caught.value.code == "document_invalid"
    assert raw not in caught.value.detail or not raw


@given(
    st.integers(min_value=1, max_value=9_999_999_999), st.sampled_from(["V", "E"]), st.sampled_from(["", "-", " ", "."])
)
def test_separators_padding_and_case_never_change_the_document(number: int, letter: str, separator: str) -> None:
    digits = str(number)
    grouped = separator.join(digits[max(i - 3, 0) : i] for i in range(len(digits), 0, -3)[::-1])
    assert normalise_document(f"{letter.lower()}{separator}0{grouped}").canonical == f"{letter}:{digits}"


def test_a_consultation_key_finds_the_entry_identity_derived_from_the_stored_base_only() -> None:
    secret = os.urandom(32)
    k = voter_keys.scalar_from(secret, "roll-base")
    s_c = voter_keys.scalar_from(secret, "consultation:c1")
    s_d = voter_keys.scalar_from(secret, "consultation:c2")
    document = normalise_document("V-12.345.678")
    stored_base = voter_keys.multiply(k, voter_keys.document_point(document))
    entry_c = voter_keys.multiply(s_c, stored_base)
    entry_d = voter_keys.multiply(s_d, stored_base)
    t_c = voter_keys.scalar_product(k, s_c)
    shown = normalise_document("v12345678")
    assert voter_keys.multiply(t_c, voter_keys.document_point(shown)) == entry_c
    # Another consultation's entry for the same person is a different, unlinkable value.
    assert entry_d != entry_c
    assert voter_keys.multiply(t_c, voter_keys.document_point(normalise_document("V12345679"))) != entry_c
    assert voter_keys.is_point(entry_c) and not voter_keys.is_point(b"\x00" * 31)


def test_a_short_roll_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        voter_keys.scalar_from(b"short", "roll-base")
