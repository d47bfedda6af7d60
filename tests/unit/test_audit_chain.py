"""The audit log's encodings and chain check, as pure functions (the database tests are in
tests/identity/test_audit_log.py)."""

from __future__ import annotations

import enum
import hashlib
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, date, datetime
from typing import Any

import pytest

from comuna_identity.domain import audit
from comuna_identity.domain.audit import GENESIS, AuditEntry
from comuna_identity.storage.audit_log import COLUMNS

AT = datetime(2026, 12, 1, 17, 0, 0, 123456, tzinfo=UTC)


class Kind(enum.StrEnum):
    COMMUNE = "commune"


def test_canonical_json_sorts_keys_keeps_unicode_and_spells_ids_and_dates() -> None:
    state = {"b": 1, "a": "Barquisimeto ñ", "id": uuid.UUID(int=5), "on": date(2026, 3, 1), "kind": Kind.COMMUNE}
    assert (
        audit.canonical_json(state)
        == (
            '{"a":"Barquisimeto ñ","b":1,"id":"00000000-0000-0000-0000-000000000005",'
            '"kind":"commune","on":"2026-03-01"}'
        ).encode()
    )
    assert audit.state_hash(state) == hashlib.sha256(audit.canonical_json(state)).digest()
    assert audit.state_hash(None) is None


@pytest.mark.parametrize("bad", [{"x": float("nan")}, {"x": {1, 2}}, {"x": b"bytes"}])
def test_canonical_json_refuses_what_has_no_single_spelling(bad: Mapping[str, Any]) -> None:
    with pytest.raises((ValueError, TypeError)):
        audit.canonical_json(bad)


def entry_hash(**changes: Any) -> bytes:
    fields: dict[str, Any] = {
        "seq": 1,
        "at": AT,
        "actor": "ab",
        "action": "c",
        "object_kind": "territory",
        "object_id": "x",
        "before_hash": None,
        "after_hash": None,
        "prev_hash": GENESIS,
    }
    return audit.entry_hash_of(**{**fields, **changes})


def test_every_field_counts_and_no_two_entries_encode_alike() -> None:
    base = entry_hash()
    variants = [
        entry_hash(actor="a", action="bc"),  # the same characters, another split
        entry_hash(seq=2),
        entry_hash(at=AT.replace(microsecond=123457)),
        entry_hash(object_id="y"),
        entry_hash(before_hash=bytes(32)),
        entry_hash(after_hash=bytes(32)),
        entry_hash(prev_hash=b"\x01" * 32),
    ]
    assert len({base, *variants}) == len(variants) + 1


def test_the_hot_loop_encodes_as_the_documented_function() -> None:
    entries = [
        AuditEntry("subject-a", "territory.created", "territory", str(i), None if i else {"n": 1}, {"n": i})
        for i in range(3)
    ]
    rows = list(audit._Chain(0, GENESIS).rows(entries, AT))
    prev = GENESIS
    for seq, row in enumerate(rows, 1):
        record = dict(zip(COLUMNS, row, strict=True))
        assert record["seq"] == seq and record["prev_hash"] == prev
        expected = {key: value for key, value in record.items() if key != "entry_hash"}
        assert record["entry_hash"] == audit.entry_hash_of(**expected)
        prev = record["entry_hash"]


async def as_rows(count: int) -> AsyncIterator[tuple[Any, ...]]:
    entries = [AuditEntry("a", "resident.registered", "resident", str(i), None, {"i": i}) for i in range(count)]
    for row in audit._Chain(0, GENESIS).rows(entries, AT):
        yield row


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@pytest.mark.asyncio
async def test_progress_is_reported_on_long_runs() -> None:
    reports: list[tuple[int, float]] = []
    result = await audit.verify(
        as_rows(50_000), progress=lambda n, s: reports.append((n, s)), progress_every=0.5, clock=Clock()
    )
    assert result.intact and result.entries == 50_000
    assert [n for n, _ in reports] == [10_000, 20_000, 30_000, 40_000, 50_000]
    assert all(seconds > 0 for _, seconds in reports)


@pytest.mark.asyncio
async def test_verify_finds_a_changed_row_among_valid_ones() -> None:
    async def tampered() -> AsyncIterator[tuple[Any, ...]]:
        async for row in as_rows(20):
            yield (*row[:2], "forger", *row[3:]) if row[0] == 7 else row

    result = await audit.verify(tampered())
    assert result.problem is not None
    assert (result.problem.seq, result.problem.kind, result.entries, result.head.seq) == (7, "altered", 6, 6)
