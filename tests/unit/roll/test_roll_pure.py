"""Pure parts of the voter roll: keys, the date rule, the digest's canonical encoding, the COPY framing."""

from __future__ import annotations

import hashlib
import struct
import uuid
from datetime import date, timedelta

import pytest

from comuna_consultations.roll.storage import copy_rows
from comuna_identity.domain.census import age_on
from comuna_identity.domain.roll_keys import RollSecret, born_by, entry_keys, login_entry
from comuna_platform.documents import normalise_document
from comuna_platform.voter_keys import document_point, multiply, scalar_from
from comuna_platform.voter_roll import DIGEST_PREFIX, ENTRY_BYTES, RollDigest, entry_bytes, roll_digest

SECRET = b"r" * 32
CONSULTATION = uuid.UUID("11111111-2222-3333-4444-555555555555")


def roll_base(raw: str) -> bytes:
    return multiply(scalar_from(SECRET, "roll-base"), document_point(normalise_document(raw)))


def test_consultations_key_finds_the_entry_identity_computed_from_the_roll_base() -> None:
    keys = RollSecret(SECRET).for_consultation(CONSULTATION)
    (entry,) = entry_keys(keys.entry_scalar, [roll_base("V-12.345.678")])
    # The table has only t_c and the document as written, in another spelling.
    assert multiply(keys.voter_key, document_point(normalise_document("v12345678"))) == entry
    assert multiply(keys.voter_key, document_point(normalise_document("V12345679"))) != entry


def test_keys_differ_per_consultation_and_never_reveal_the_entry_scalar() -> None:
    secret = RollSecret(SECRET)
    one, two = secret.for_consultation(CONSULTATION), secret.for_consultation(uuid.uuid4())
    assert one.voter_key != two.voter_key and one.login_key != two.login_key
    assert one.voter_key != one.entry_scalar
    base = roll_base("V1")
    assert entry_keys(one.entry_scalar, [base]) != entry_keys(two.entry_scalar, [base])
    assert login_entry(one.login_key, "sub-1") != login_entry(two.login_key, "sub-1")
    assert secret.for_consultation(CONSULTATION) == one


def test_a_short_roll_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        RollSecret(b"short")


@pytest.mark.parametrize(
    "voting_day", [date(2026, 3, 1), date(2028, 2, 29), date(2027, 2, 28), date(2026, 12, 31), date(2024, 1, 1)]
)
def test_born_by_is_the_last_birth_date_old_enough_on_voting_day(voting_day: date) -> None:
    limit = born_by(voting_day, 15)
    assert age_on(limit, voting_day) >= 15
    assert age_on(limit + timedelta(days=1), voting_day) < 15


def test_digest_is_sha256_over_sorted_fixed_width_entries() -> None:
    commune, council = uuid.uuid4(), uuid.uuid4()
    entries = [(bytes([b]) * 32, None if b % 2 else bytes([7]) * 32, commune, council) for b in (9, 3, 5)]
    expected = hashlib.sha256(
        DIGEST_PREFIX
        + CONSULTATION.bytes
        + b"".join(k + (lk or bytes(32)) + commune.bytes + council.bytes for k, lk, _, _ in sorted(entries))
    ).hexdigest()
    assert roll_digest(CONSULTATION, entries) == expected
    # Any order in, the same digest; another consultation or one changed byte, another digest.
    assert roll_digest(CONSULTATION, list(reversed(entries))) == expected
    assert roll_digest(uuid.uuid4(), entries) != expected
    changed = [(entries[0][0], entries[0][1], uuid.uuid4(), council), *entries[1:]]
    assert roll_digest(CONSULTATION, changed) != expected


def test_incremental_and_encoded_chunks_give_the_same_digest() -> None:
    commune, council = uuid.uuid4(), uuid.uuid4()
    entries = sorted((uuid.uuid4().bytes * 2, None, commune, council) for _ in range(10))
    digest = RollDigest(CONSULTATION)
    digest.add_encoded(b"".join(entry_bytes(*e) for e in entries[:4]))
    for e in entries[4:]:
        digest.add(*e)
    assert digest.count == 10
    assert digest.hexdigest() == roll_digest(CONSULTATION, entries)
    with pytest.raises(ValueError):
        digest.add_encoded(b"x" * 95)


def test_copy_rows_frame_each_entry_as_postgresql_binary_copy() -> None:
    commune, council = uuid.uuid4(), uuid.uuid4()
    login = bytes([1]) * 32
    packed = entry_bytes(bytes([2]) * 32, None, commune, council) + entry_bytes(
        bytes([3]) * 32, login, commune, council
    )
    rows = copy_rows(CONSULTATION, 41, packed)
    fields = []
    at = 0
    while at < len(rows):
        (count,) = struct.unpack_from("!h", rows, at)
        assert count == 6
        at += 2
        row = []
        for _ in range(count):
            (length,) = struct.unpack_from("!i", rows, at)
            at += 4
            row.append(None if length < 0 else rows[at : at + length])
            at += max(length, 0)
        fields.append(row)
    assert len(packed) == 2 * ENTRY_BYTES
    assert fields[0] == [
        CONSULTATION.bytes,
        bytes([2]) * 32,
        (41).to_bytes(8, "big"),
        None,
        commune.bytes,
        council.bytes,
    ]
    assert fields[1][2] == (42).to_bytes(8, "big") and fields[1][3] == login
