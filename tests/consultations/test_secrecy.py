"""Ballot secrecy on the stored rows: the joins an operator with database access would try.

240 people vote at tables concurrently, through the REST API, with batches of exactly 16
(`ballot_batch_max = ballot_batch_min = 16`: every batch is full). The test knows what each
person chose, so it can score each attack: pairing participations with ballots by `xmin`, by
physical order (`ctid`, which in these fresh append-only tables is also insertion order), and
by commit timestamps. Under the old one-transaction-per-ballot path every attack linked every
ballot (84 of 84 in the issue); here none may do better than chance within a batch.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from sqlalchemy import text

from comuna_consultations.domain.pseudonyms import Pseudonyms
from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_platform.documents import normalise_document
from comuna_platform.voter_keys import document_point, multiply
from tests.consultations.conftest import VOTER_REF_SECRET, open_stack
from tests.consultations.helpers import ADULT, Consultation, Stack, register_residents, vote, voting_consultation
from tests.support.issuer import TestIssuer

pytestmark = pytest.mark.asyncio

C1 = "VE.01.01.C1"
BATCH = 16
VOTERS = 15 * BATCH


@pytest_asyncio.fixture(scope="module")
async def batched(
    embedded_postgres: EmbeddedPostgres, embedded_nats: EmbeddedNats, issuer: TestIssuer
) -> AsyncIterator[Stack]:
    async with open_stack(
        embedded_postgres,
        embedded_nats,
        issuer,
        "secrecy" + uuid.uuid4().hex[:6],
        ballot_batch_max=BATCH,
        ballot_batch_min=BATCH,
        ballot_batch_linger_seconds=600.0,
        ballot_batch_max_hold_seconds=600.0,
    ) as stack:
        yield stack


async def cast_all(stack: Stack, issuer: TestIssuer) -> tuple[Consultation, dict[str, str]]:
    """Everyone votes at once; returns the consultation and each voter_ref's true choice."""
    voters = await register_residents(stack, issuer, f"{C1}.CC1", ADULT, VOTERS)
    consultation = await voting_consultation(stack, issuer, {C1: 3})
    options: list[str | None] = [*consultation.candidates[C1], None]
    choices = {voter: options[i % len(options)] for i, voter in enumerate(voters)}
    responses = await asyncio.gather(*(vote(stack, issuer, consultation, C1, choices[v], v) for v in voters))
    assert [r.status_code for r in responses] == [201] * VOTERS, {r.text for r in responses if r.status_code != 201}
    async with stack.consultations.runtime.db.transaction() as session:
        t_c = bytes(
            (
                await session.execute(
                    text("SELECT voter_key FROM roll_loads WHERE consultation_id = :c"), {"c": consultation.id}
                )
            ).scalar_one()
        )
    pseudonyms = Pseudonyms(VOTER_REF_SECRET.encode())
    cid = uuid.UUID(consultation.id)
    truth = {
        pseudonyms.voter_ref(cid, multiply(t_c, document_point(normalise_document(v)))): str(choices[v]) for v in voters
    }
    return consultation, truth


async def stored(stack: Stack, consultation: Consultation, query: str) -> list[tuple[str, ...]]:
    async with stack.consultations.runtime.db.transaction() as session:
        found = await session.execute(text(query), {"c": uuid.UUID(consultation.id)})
        return [tuple(str(value) for value in row) for row in found.all()]


def chance_bound(groups: list[list[str]]) -> float:
    """An upper bound for the matches of a random pairing within each group: the expected
    number (sum over groups of n_c^2 / n) plus four standard deviations (Poisson-like)."""
    expected = sum(sum(n * n for n in Counter(group).values()) / len(group) for group in groups)
    return expected + 4 * math.sqrt(expected)


async def test_no_join_on_the_stored_rows_links_a_ballot_to_a_voter(batched: Stack, issuer: TestIssuer) -> None:
    consultation, truth = await cast_all(batched, issuer)
    participations = await stored(
        batched,
        consultation,
        "SELECT xmin::text, voter_ref FROM participations WHERE consultation_id = :c ORDER BY ctid",
    )
    ballots = await stored(
        batched,
        consultation,
        "SELECT xmin::text, coalesce(candidate_id::text, 'None') FROM ballots WHERE consultation_id = :c ORDER BY ctid",
    )
    assert len(participations) == len(ballots) == VOTERS

    # xmin: a ballot's writing transaction is its batch, shared by BATCH ballots and the same
    # BATCH participations; never one ballot alone.
    ballot_batches: dict[str, list[str]] = defaultdict(list)
    for xmin, choice in ballots:
        ballot_batches[xmin].append(choice)
    people_batches: dict[str, list[str]] = defaultdict(list)
    for xmin, voter_ref in participations:
        people_batches[xmin].append(voter_ref)
    assert sorted(len(group) for group in ballot_batches.values()) == [BATCH] * (VOTERS // BATCH)
    assert set(ballot_batches) == set(people_batches)

    # Physical (= insertion) order within each batch: pair the k-th participation with the k-th
    # ballot of the same xmin, and count how often that ballot holds the person's real choice.
    matches = sum(
        truth[voter_ref] == choice
        for xmin, people in people_batches.items()
        for voter_ref, choice in zip(people, ballot_batches[xmin], strict=True)
    )
    bound = chance_bound(list(ballot_batches.values()))
    assert matches <= bound, f"ctid order within batches linked {matches} of {VOTERS} (chance bound {bound:.0f})"
    # The same over the whole table (row order without xmin).
    overall = sum(truth[p[1]] == b[1] for p, b in zip(participations, ballots, strict=True))
    everything = [[b[1] for b in ballots]]
    assert overall <= chance_bound(everything), f"global ctid order linked {overall} of {VOTERS}"
    # The xmin join alone names a batch: its best guess (the batch's commonest choice) is right
    # for at most the chance share of each batch, far from one ballot per person.
    best_guess = sum(Counter(ballot_batches[xmin]).most_common(1)[0][1] for xmin in people_batches)
    assert best_guess < VOTERS / 2

    # An electronic table's participation names no table (its ballot does): at a table with one
    # voter in a batch, xmin + table would otherwise pair the two rows whatever the batch size.
    tabled = await stored(
        batched,
        consultation,
        "SELECT count(*) FROM participations WHERE consultation_id = :c AND table_id IS NOT NULL",
    )
    assert tabled == [("0",)]
    tables = await stored(
        batched, consultation, "SELECT count(DISTINCT table_id) FROM ballots WHERE consultation_id = :c"
    )
    assert tables == [("1",)]  # the per-table subtotals still have it

    # Commit timestamps are not kept (they would date each batch, not each ballot, anyway).
    setting = await stored(batched, consultation, "SELECT current_setting('track_commit_timestamp')")
    assert setting == [("off",)]
    # The pseudonym is not the roll entry key: the roll (and t_c, in this database) does not join it.
    joined = await stored(
        batched,
        consultation,
        "SELECT count(*) FROM participations p JOIN roll_entries r ON r.consultation_id = p.consultation_id"
        " AND (p.voter_ref = encode(r.voter_key, 'hex') OR p.voter_ref = encode(r.login_key, 'hex'))"
        " WHERE p.consultation_id = :c",
    )
    assert joined == [("0",)]
