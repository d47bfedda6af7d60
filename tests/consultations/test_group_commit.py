"""The ballot group commit against PostgreSQL: take_part's conflicts, batch formation, one
transaction per batch (shared xmin), the minimum batch for a lone ballot."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from comuna_consultations.domain.record import receipt_commitment
from comuna_consultations.storage.participations import ParticipationRow, take_part
from comuna_consultations.voting.group_commit import BallotToWrite, BallotWriter, BatchPolicy, Outcome, Written
from tests.consultations.helpers import Consultation, Stack, record_entries, voting_consultation
from tests.support.issuer import TestIssuer

pytestmark = pytest.mark.asyncio

C1 = "VE.01.01.C1"


def participation(stack: Stack, consultation: Consultation, **changes: Any) -> ParticipationRow:
    row = ParticipationRow(uuid.UUID(consultation.id), uuid.uuid4().hex * 2, stack.commune_ids[C1], "online")
    return dataclasses.replace(row, **changes)


async def table_of(stack: Stack, consultation: Consultation) -> uuid.UUID:
    async with stack.consultations.runtime.db.transaction() as session:
        found = await session.execute(
            text("SELECT id FROM voting_tables WHERE consultation_id = :c AND commune_id = :m"),
            {"c": uuid.UUID(consultation.id), "m": stack.commune_ids[C1]},
        )
        return uuid.UUID(str(found.scalar_one()))


async def test_take_part_admits_one_participation_per_person_and_keeps_every_refusal(
    stack: Stack, issuer: TestIssuer
) -> None:
    consultation = await voting_consultation(stack, issuer, {C1: 1})
    table = await table_of(stack, consultation)
    earlier = participation(stack, consultation)
    twice = participation(stack, consultation)
    db = stack.consultations.runtime.db
    async with db.engine.begin() as conn:
        assert await take_part(conn, [earlier]) == [True]
    rows = [
        twice,
        participation(stack, consultation, voter_ref=twice.voter_ref, channel="paper", table_id=table),
        participation(
            stack, consultation, voter_ref=earlier.voter_ref, channel="offline", table_id=table, ballot_counted=True
        ),
        participation(stack, consultation),
    ]
    async with db.engine.begin() as conn:
        assert await take_part(conn, rows) == [True, False, False, True]
        assert await take_part(conn, []) == []
    async with db.transaction() as session:
        conflicts = (
            await session.execute(
                text(
                    "SELECT voter_ref, channel, table_id, ballot_counted FROM participation_conflicts"
                    " WHERE consultation_id = :c ORDER BY channel"
                ),
                {"c": uuid.UUID(consultation.id)},
            )
        ).all()
        taken = await session.execute(
            text("SELECT count(*) FROM participations WHERE consultation_id = :c"), {"c": uuid.UUID(consultation.id)}
        )
    assert conflicts == [
        (earlier.voter_ref, "offline", table, True),
        (twice.voter_ref, "paper", table, False),
    ]
    assert taken.scalar_one() == 3


async def batch_xmins(stack: Stack, consultation: Consultation) -> tuple[list[int], list[int]]:
    """Ballots per writing transaction, and participations per writing transaction."""
    async with stack.consultations.runtime.db.transaction() as session:
        counts = []
        for table in ("ballots", "participations"):
            found = await session.execute(
                text(f"SELECT count(*) FROM {table} WHERE consultation_id = :c GROUP BY xmin::text ORDER BY 1"),
                {"c": uuid.UUID(consultation.id)},
            )
            counts.append([int(n) for n in found.scalars()])
    return counts[0], counts[1]


async def settle() -> None:
    """Let the queued writes reach the writer (no time passes on any timer that matters here)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_batch_is_one_transaction_and_leaves_when_full(stack: Stack, issuer: TestIssuer) -> None:
    consultation = await voting_consultation(stack, issuer, {C1: 1})
    candidate = uuid.UUID(consultation.candidates[C1][0])
    # Linger and hold far longer than the test: only a full batch can leave.
    writer = BallotWriter(stack.consultations.runtime.db, BatchPolicy(max_size=5, min_size=5, linger=600, max_hold=600))
    first = [
        asyncio.ensure_future(
            writer.write(BallotToWrite(participation(stack, consultation), candidate, accepted_at=stack.clock.now()))
        )
        for _ in range(4)
    ]
    await settle()
    assert not any(task.done() for task in first)
    last = asyncio.ensure_future(
        writer.write(BallotToWrite(participation(stack, consultation), None, accepted_at=stack.clock.now()))
    )
    written: list[Written] = await asyncio.wait_for(asyncio.gather(*first, last), timeout=30)
    assert {w.outcome for w in written} == {Outcome.CAST}
    assert len({w.ballot_id for w in written}) == 5
    assert await batch_xmins(stack, consultation) == ([5], [5])


async def test_a_lone_ballot_waits_for_company(stack: Stack, issuer: TestIssuer) -> None:
    consultation = await voting_consultation(stack, issuer, {C1: 1})
    candidate = uuid.UUID(consultation.candidates[C1][0])
    writer = BallotWriter(stack.consultations.runtime.db, BatchPolicy(min_size=2, linger=0, max_hold=600))
    alone = asyncio.ensure_future(
        writer.write(BallotToWrite(participation(stack, consultation), candidate, accepted_at=stack.clock.now()))
    )
    await settle()
    assert not alone.done()
    company = asyncio.ensure_future(
        writer.write(BallotToWrite(participation(stack, consultation), candidate, accepted_at=stack.clock.now()))
    )
    await asyncio.wait_for(asyncio.gather(alone, company), timeout=30)
    assert await batch_xmins(stack, consultation) == ([2], [2])


async def test_after_the_max_hold_a_lone_ballot_is_written_rather_than_refused(
    stack: Stack, issuer: TestIssuer
) -> None:
    consultation = await voting_consultation(stack, issuer, {C1: 1})
    writer = BallotWriter(stack.consultations.runtime.db, BatchPolicy(min_size=2, linger=0, max_hold=0.01))
    written = await asyncio.wait_for(
        writer.write(BallotToWrite(participation(stack, consultation), None, accepted_at=stack.clock.now())), 30
    )
    assert written.outcome is Outcome.CAST
    assert await batch_xmins(stack, consultation) == ([1], [1])


async def stored_ballots(stack: Stack, consultation: Consultation) -> dict[str, str]:
    async with stack.consultations.runtime.db.transaction() as session:
        found = await session.execute(
            text("SELECT id::text, coalesce(candidate_id::text, 'blank') FROM ballots WHERE consultation_id = :c"),
            {"c": uuid.UUID(consultation.id)},
        )
        return {row[0]: row[1] for row in found}


async def test_a_lone_ballot_is_carried_into_the_next_batch_with_its_receipt_and_choice(
    stack: Stack, issuer: TestIssuer
) -> None:
    consultation = await voting_consultation(stack, issuer, {C1: 2})
    first, second = (uuid.UUID(c) for c in consultation.candidates[C1])
    writer = BallotWriter(stack.consultations.runtime.db, BatchPolicy(min_size=2, linger=0, max_hold=0.01))
    alone = await asyncio.wait_for(
        writer.write(BallotToWrite(participation(stack, consultation), first, accepted_at=stack.clock.now())), 30
    )
    assert await batch_xmins(stack, consultation) == ([1], [1])  # lone for now
    later = await asyncio.wait_for(
        writer.write(BallotToWrite(participation(stack, consultation), second, accepted_at=stack.clock.now())), 30
    )
    # Both ballot rows now carry the second transaction's xmin: the first participation's own
    # transaction holds no ballot, and the second holds two ballots for its one participation.
    assert await batch_xmins(stack, consultation) == ([2], [1, 1])
    assert await stored_ballots(stack, consultation) == {
        str(alone.ballot_id): str(first),
        str(later.ballot_id): str(second),
    }
    # Two ballots in that transaction: nothing left to carry; the next lone one is alone again.
    third = await asyncio.wait_for(
        writer.write(BallotToWrite(participation(stack, consultation), None, accepted_at=stack.clock.now())), 30
    )
    assert await batch_xmins(stack, consultation) == ([1, 2], [1, 1, 1])
    assert len(await stored_ballots(stack, consultation)) == 3 and third.outcome is Outcome.CAST


async def test_a_carried_ballot_of_a_commune_that_stopped_voting_stays_as_it_is(
    stack: Stack, issuer: TestIssuer
) -> None:
    consultation = await voting_consultation(stack, issuer, {C1: 1})
    candidate = uuid.UUID(consultation.candidates[C1][0])
    writer = BallotWriter(stack.consultations.runtime.db, BatchPolicy(min_size=2, linger=0, max_hold=0.01))
    alone = await asyncio.wait_for(
        writer.write(BallotToWrite(participation(stack, consultation), candidate, accepted_at=stack.clock.now())), 30
    )
    before = await batch_xmins(stack, consultation)
    # A ballot accepted after the close (voting day is 30 days ahead) is refused, and the carry
    # of a commune that no longer votes is not rewritten.
    late = await asyncio.wait_for(
        writer.write(
            BallotToWrite(
                participation(stack, consultation), candidate, accepted_at=stack.clock.now() + timedelta(days=60)
            )
        ),
        30,
    )
    assert late.outcome is Outcome.NOT_IN_VOTING
    assert await batch_xmins(stack, consultation) == before == ([1], [1])
    assert await stored_ballots(stack, consultation) == {str(alone.ballot_id): str(candidate)}


async def test_a_batch_answers_each_ballot_and_writes_ballots_only_for_new_participations(
    stack: Stack, issuer: TestIssuer
) -> None:
    consultation = await voting_consultation(stack, issuer, {C1: 1})
    closed = await voting_consultation(stack, issuer, {C1: 1})
    async with stack.consultations.runtime.db.transaction() as session:
        await session.execute(text("UPDATE consultations SET status = 'certified' WHERE id = :c"), {"c": closed.id})
    writer = BallotWriter(stack.consultations.runtime.db, BatchPolicy(max_size=4, min_size=4, linger=600, max_hold=600))
    voter = participation(stack, consultation)
    ballots = [
        BallotToWrite(voter, None, accepted_at=stack.clock.now()),
        BallotToWrite(
            participation(stack, consultation, voter_ref=voter.voter_ref), None, accepted_at=stack.clock.now()
        ),
        BallotToWrite(participation(stack, closed), None, accepted_at=stack.clock.now()),
        BallotToWrite(participation(stack, consultation), None, accepted_at=stack.clock.now()),
    ]
    written = await asyncio.wait_for(asyncio.gather(*(writer.write(b) for b in ballots)), timeout=30)
    assert [w.outcome for w in written] == [Outcome.CAST, Outcome.ALREADY_VOTED, Outcome.NOT_IN_VOTING, Outcome.CAST]
    assert await batch_xmins(stack, consultation) == ([2], [2])
    assert await batch_xmins(stack, closed) == ([], [])


async def test_a_batch_enters_the_record_in_its_own_transaction_receipts_apart_from_its_tally(
    stack: Stack, issuer: TestIssuer
) -> None:
    consultation = await voting_consultation(stack, issuer, {C1: 2})
    first, second = consultation.candidates[C1]
    commune = stack.commune_ids[C1]
    writer = BallotWriter(stack.consultations.runtime.db, BatchPolicy(max_size=3, min_size=3, linger=600, max_hold=600))
    choices = [uuid.UUID(first), uuid.UUID(second), None]
    written = await asyncio.wait_for(
        asyncio.gather(
            *(
                writer.write(BallotToWrite(participation(stack, consultation), c, accepted_at=stack.clock.now()))
                for c in choices
            )
        ),
        timeout=30,
    )
    [entry] = await record_entries(stack, consultation)
    assert entry[:2] == ["comuna-ballots/v1", f"consultation {consultation.id}"]
    assert entry[2:5] == sorted(f"receipt {commune} {receipt_commitment(w.receipt or '')}" for w in written)
    # Tallies sorted by commune, then choice: blank first.
    assert entry[5:] == [
        f"tally {commune} blank 1",
        *sorted([f"tally {commune} {first} 1", f"tally {commune} {second} 1"]),
    ]
    # Nothing stored holds a receipt: not the ballots, not the index (commitments only).
    async with stack.consultations.runtime.db.transaction() as session:
        ids = {
            str(i)
            for i in (
                await session.execute(
                    text("SELECT id FROM ballots WHERE consultation_id = :c"), {"c": uuid.UUID(consultation.id)}
                )
            ).scalars()
        }
        indexed = (
            await session.execute(
                text("SELECT commitment, xmin::text FROM record_receipts WHERE consultation_id = :c"),
                {"c": uuid.UUID(consultation.id)},
            )
        ).all()
        ballot_xmins = set(
            (
                await session.execute(
                    text("SELECT xmin::text FROM ballots WHERE consultation_id = :c"), {"c": uuid.UUID(consultation.id)}
                )
            ).scalars()
        )
    assert {w.receipt for w in written}.isdisjoint(ids | {c for c, _ in indexed})
    assert {x for _, x in indexed} == ballot_xmins  # the same transaction: in the log when stored


async def test_a_lone_batch_logs_its_receipt_and_its_tally_goes_with_the_batch_that_carries_it(
    stack: Stack, issuer: TestIssuer
) -> None:
    consultation = await voting_consultation(stack, issuer, {C1: 1})
    candidate = uuid.UUID(consultation.candidates[C1][0])
    commune = stack.commune_ids[C1]
    writer = BallotWriter(stack.consultations.runtime.db, BatchPolicy(min_size=2, linger=0, max_hold=0.01))
    alone = await asyncio.wait_for(
        writer.write(BallotToWrite(participation(stack, consultation), candidate, accepted_at=stack.clock.now())), 30
    )
    later = await asyncio.wait_for(
        writer.write(BallotToWrite(participation(stack, consultation), None, accepted_at=stack.clock.now())), 30
    )
    lone, carrier = await record_entries(stack, consultation)
    assert lone[2:] == [f"receipt {commune} {receipt_commitment(alone.receipt or '')}"]  # no tally
    assert carrier[2:] == [
        f"receipt {commune} {receipt_commitment(later.receipt or '')}",
        f"tally {commune} blank 1",
        f"tally {commune} {candidate} 1",
    ]
    checked = await stack.consultations.client.get(f"/v1/consultations/{consultation.id}/receipts/{alone.receipt}")
    found = checked.json()
    assert (found["receipt"], found["recorded"]) == (alone.receipt, True)
    assert (found["commitment"], found["entry_index"]) == (receipt_commitment(alone.receipt or ""), 0)
