"""The counting rule and the ledger, without HTTP: each tie-break rule, and memory that does not
grow with the number of ballots."""

from __future__ import annotations

import hashlib
import hmac
import tracemalloc
import uuid
from datetime import UTC, datetime

import pytest

from comuna_verify import ranking
from comuna_verify.audit import Ledger
from comuna_verify.entries import Candidate, EntryError, parse_ballots
from tests.verify import record

P, Q = "10000000-0000-4000-8000-000000000001", "20000000-0000-4000-8000-000000000002"
EARLY, LATE = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)


def cand(cid: str, votes: int = 3, cost: int | None = None, at: datetime | None = None, priority: int = 0) -> Candidate:
    return Candidate(cid, votes, 0, cost, at, priority)


def test_votes_first() -> None:
    assert ranking.rank([cand(P, 1), cand(Q, 2)], ["lower_cost"], b"") == [Q, P]


def test_lower_cost_with_no_cost_last() -> None:
    assert ranking.rank([cand(P, cost=None), cand(Q, cost=5)], ["lower_cost"], b"") == [Q, P]
    assert ranking.rank([cand(P, cost=4), cand(Q, cost=5)], ["lower_cost"], b"") == [P, Q]


def test_earlier_registration_with_none_last() -> None:
    assert ranking.rank([cand(P, at=LATE), cand(Q, at=EARLY)], ["earlier_registration"], b"") == [Q, P]
    assert ranking.rank([cand(P, at=None), cand(Q, at=LATE)], ["earlier_registration"], b"") == [Q, P]


def test_assembly_priority_lower_first() -> None:
    assert ranking.rank([cand(P, priority=2), cand(Q, priority=1)], ["assembly_priority"], b"") == [Q, P]


def test_draw_is_the_lower_hmac_and_rules_apply_in_order() -> None:
    seed = bytes(range(32))
    digest = {c: hmac.new(seed, uuid.UUID(c).bytes, hashlib.sha256).digest() for c in (P, Q)}
    expected = sorted((P, Q), key=lambda c: digest[c])
    assert ranking.rank([cand(P), cand(Q)], ["draw"], seed) == expected
    assert ranking.rank([cand(P), cand(Q)], [], seed) == expected  # draw applies when undeclared
    # An earlier rule decides before the draw can.
    assert ranking.rank([cand(P, cost=9), cand(Q, cost=1)], ["lower_cost", "draw"], seed) == [Q, P]


def test_no_votes_no_winner() -> None:
    candidates = [cand(P, 0), cand(Q, 0)]
    assert ranking.winner(candidates, ranking.rank(candidates, ["draw"], b"")) is None
    assert ranking.winner([cand(P, 1), cand(Q, 0)], [P, Q]) == P


def test_malformed_ballot_lines() -> None:
    good = f"receipt {record.A} {record.commitment('x')}"
    assert parse_ballots([good, f"tally {record.A} blank 2"]).receipts[record.A] == 1
    for bad in ([good[:-1]], [f"tally {record.A} blank -1"], [f"tally {record.A} nobody 1"], [f"{good}", "extra"]):
        with pytest.raises(EntryError):
            parse_ballots(bad)


def test_the_ledger_keeps_counters_not_receipts() -> None:
    """800 receipts per entry, 200 entries: the ledger's memory must not grow with them."""
    entry = record.ballots([(record.A, record.receipt(n)) for n in range(800)], {(record.A, record.X): 800}).encode()
    ledger = Ledger(record.CID)
    ledger.add(0, entry)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for index in range(1, 201):
            ledger.add(index, entry)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert ledger.receipts[record.A] == 201 * 800 and ledger.ballots[record.A][record.X] == 201 * 800
    assert grown < 64 * 1024, f"the ledger grew by {grown} bytes for 160,000 receipts"
