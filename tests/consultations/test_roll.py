"""The voter roll in consultations: freezing through identity, the supervised load (binary
COPY, resumed after a crash from the last stored seq), verification of count and digest (a
tampered roll is refused), and voting only on a verified roll."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta

import pytest
import pytest_asyncio
from sqlalchemy import text

from comuna_consultations.domain.identity import PackedEntries, RollSource
from comuna_consultations.roll.loader import RollLoader
from comuna_consultations.vocabulary import RollLoadStatus
from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_platform.documents import normalise_document
from comuna_platform.errors import Unavailable
from comuna_platform.voter_keys import document_point, multiply, scalar_from
from tests.consultations.conftest import open_stack
from tests.consultations.helpers import (
    SCHEDULE,
    Consultation,
    Stack,
    add_candidate,
    open_consultation,
    open_tables,
    open_voting,
    operator,
    rows,
    spokesperson,
    vote,
)
from tests.support.issuer import TestIssuer

pytestmark = pytest.mark.asyncio

C1, C2 = "VE.01.01.C1", "VE.01.01.C2"

VOTING_DAY = date.fromisoformat(SCHEDULE["voting_opens_at"][:10])


@pytest_asyncio.fixture(scope="module")
async def quiet(
    embedded_postgres: EmbeddedPostgres, embedded_nats: EmbeddedNats, issuer: TestIssuer
) -> AsyncIterator[Stack]:
    """A stack whose own roll loader looks once at start and then sleeps: the tests drive loads."""
    async with open_stack(
        embedded_postgres, embedded_nats, issuer, uuid.uuid4().hex[:10], roll_poll_seconds=3600.0
    ) as stack:
        yield stack


class CrashingSource:
    """The real identity client, cut after `chunks` chunks (a crash or a lost connection)."""

    def __init__(self, source: RollSource, chunks: int) -> None:
        self._source = source
        self._chunks = chunks

    async def freeze_roll(self, **terms: object) -> object:
        raise AssertionError("not used")

    async def get_roll(self, consultation_id: uuid.UUID) -> object:
        return await self._source.get_roll(consultation_id)

    async def stream_roll(
        self, consultation_id: uuid.UUID, *, after_seq: int, chunk_size: int
    ) -> AsyncIterator[PackedEntries]:
        sent = 0
        async for chunk in self._source.stream_roll(consultation_id, after_seq=after_seq, chunk_size=chunk_size):
            if sent == self._chunks:
                raise Unavailable("connection lost", code="identity_unavailable")
            yield chunk
            sent += 1


async def seed_voters(stack: Stack, council_code: str, n: int) -> list[str]:
    """Adult residents of a council written straight into identity's census tables (the schema
    contract), roll bases computed as the import does; returns their documents."""
    council = (await stack.identity.client.get(f"/v1/territories/{council_code}")).json()["id"]
    secret = stack.identity.runtime.settings.roll_secret.get_secret_value().encode()  # type: ignore[attr-defined]
    documents = [stack.new_voter_id() for _ in range(n)]
    async with stack.identity.runtime.db.transaction() as session:
        for document in documents:
            resident = uuid.uuid4()
            base = multiply(scalar_from(secret, "roll-base"), document_point(normalise_document(document)))
            await session.execute(
                text(
                    "INSERT INTO residents (id, document_key_id, document_hash, roll_base, birth_date, status,"
                    " status_since) VALUES (:id, 1, :hash, :base, :birth, 'active', :birth)"
                ),
                {"id": resident, "hash": uuid.uuid4().bytes * 2, "base": base, "birth": date(1980, 5, 17)},
            )
            await session.execute(
                text(
                    "INSERT INTO resident_residences (id, resident_id, council_id, valid_from) VALUES (:id, :r, :c, :f)"
                ),
                {"id": uuid.uuid4(), "r": resident, "c": uuid.UUID(council), "f": date(1990, 1, 1)},
            )
    return documents


def loader(stack: Stack, source: object | None = None, chunk_size: int = 2) -> RollLoader:
    return RollLoader(
        stack.consultations.runtime.db,
        source or stack.consultations.app.state.identity,  # type: ignore[arg-type]
        chunk_size=chunk_size,
    )


async def until_frozen_by_identity(stack: Stack, consultation_id: str) -> None:
    identity = stack.consultations.app.state.identity
    deadline = time.monotonic() + 60
    while not (await identity.get_roll(uuid.UUID(consultation_id))).frozen:
        assert time.monotonic() < deadline, "identity did not freeze the roll within 60 s"
        await asyncio.sleep(0.05)


async def roll_state(stack: Stack, consultation: Consultation) -> dict[str, object]:
    response = await stack.consultations.client.get(f"/v1/consultations/{consultation.id}/roll")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def freeze(stack: Stack, issuer: TestIssuer, consultation: Consultation, **body: object) -> dict[str, object]:
    response = await stack.consultations.client.post(
        f"/v1/consultations/{consultation.id}/roll:freeze", json=body, headers=operator(issuer)
    )
    assert response.status_code == 202, response.text
    return dict(response.json())


async def test_a_load_cut_midway_resumes_after_the_last_stored_chunk_and_verifies(
    quiet: Stack, issuer: TestIssuer
) -> None:
    voters = await seed_voters(quiet, f"{C1}.CC1", 5)
    await seed_voters(quiet, f"{C2}.CC1", 2)
    consultation = await open_consultation(quiet, issuer)
    assert (await add_candidate(quiet, issuer, consultation, C1, 1)).status_code == 201
    requested = await freeze(quiet, issuer, consultation)
    assert requested["status"] == "requested" and requested["cutoff"] == date.today().isoformat()
    # Voting day comes on the clock, but no ballot is taken before the roll is verified.
    await open_voting(quiet, issuer, consultation)
    not_yet = await vote(quiet, issuer, consultation, C1, consultation.candidates[C1][0], voters[0])
    assert (not_yet.status_code, not_yet.json()["code"]) == (409, "roll_not_verified")

    await until_frozen_by_identity(quiet, consultation.id)
    with pytest.raises(Unavailable):
        await loader(quiet, CrashingSource(quiet.consultations.app.state.identity, chunks=1)).load(
            uuid.UUID(consultation.id)
        )
    cut = await roll_state(quiet, consultation)
    assert cut["status"] == "loading" and cut["loaded"] == 2
    total = cut["expected_count"]
    assert isinstance(total, int) and total >= 7

    assert await loader(quiet).load(uuid.UUID(consultation.id)) == RollLoadStatus.VERIFIED
    done = await roll_state(quiet, consultation)
    assert done["status"] == "verified" and done["loaded"] == total and done["verified_at"]
    async with quiet.consultations.runtime.db.transaction() as session:
        stored = await session.execute(
            text(
                "SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM roll_entries WHERE consultation_id = :c"
            ),
            {"c": uuid.UUID(consultation.id)},
        )
        assert tuple(stored.one()) == (total, total, 1, total)
    # Loading again changes nothing.
    assert await loader(quiet).load(uuid.UUID(consultation.id)) == RollLoadStatus.VERIFIED

    await open_tables(quiet, consultation.id)
    candidate = consultation.candidates[C1][0]
    assert (await vote(quiet, issuer, consultation, C1, candidate, voters[0])).status_code == 201
    # The same person, written another way, is the same entry: one vote (the table's one refusal).
    again = await vote(quiet, issuer, consultation, C1, candidate, "v-" + voters[0][1:])
    assert (again.status_code, again.json()["code"]) == (403, "voter_may_not_vote")


async def test_a_tampered_roll_is_refused_and_voting_cannot_start(quiet: Stack, issuer: TestIssuer) -> None:
    voters = await seed_voters(quiet, f"{C1}.CC1", 3)
    consultation = await open_consultation(quiet, issuer)
    assert (await add_candidate(quiet, issuer, consultation, C1, 1)).status_code == 201
    communes = (
        await quiet.consultations.client.get(f"/v1/consultations/{consultation.id}/communes", params={"limit": 1000})
    ).json()
    identity = quiet.consultations.app.state.identity
    # Identity freezes first (the same terms consultations will ask for), then someone alters
    # an entry in identity's database behind its back.
    await identity.freeze_roll(
        consultation_id=uuid.UUID(consultation.id),
        cutoff=date.today(),
        voting_day=VOTING_DAY,
        commune_ids=[uuid.UUID(c["commune_id"]) for c in communes["items"]],
    )
    await until_frozen_by_identity(quiet, consultation.id)
    async with quiet.identity.runtime.db.transaction() as session:
        altered = await session.execute(
            text("UPDATE voter_roll_entries SET council_id = :other WHERE consultation_id = :c AND seq = 1"),
            {"other": uuid.uuid4(), "c": uuid.UUID(consultation.id)},
        )
        assert altered.rowcount == 1  # type: ignore[attr-defined]

    await freeze(quiet, issuer, consultation)
    assert await loader(quiet, chunk_size=1000).load(uuid.UUID(consultation.id)) == RollLoadStatus.REFUSED
    state = await roll_state(quiet, consultation)
    assert state["status"] == "refused" and "digest" in str(state["error"])
    await open_voting(quiet, issuer, consultation)
    refused = await vote(quiet, issuer, consultation, C1, consultation.candidates[C1][0], voters[0])
    assert (refused.status_code, refused.json()["code"]) == (409, "roll_not_verified")
    assert await rows(quiet, "participations", consultation.id) == 0
    # A refused roll stays refused: the loader does not pick it up again.
    assert await loader(quiet).load(uuid.UUID(consultation.id)) == RollLoadStatus.REFUSED


async def test_freeze_requests_are_checked_and_idempotent(quiet: Stack, issuer: TestIssuer) -> None:
    consultation = await open_consultation(quiet, issuer)
    client = quiet.consultations.client
    url = f"/v1/consultations/{consultation.id}/roll:freeze"
    late = await client.post(
        url, json={"cutoff": (VOTING_DAY + timedelta(days=1)).isoformat()}, headers=operator(issuer)
    )
    assert (late.status_code, late.json()["code"]) == (422, "roll_dates_invalid")
    assert (await client.post(url, json={"cutoff": "yesterday"}, headers=operator(issuer))).status_code == 422
    assert (await client.post(url, json={"extra": 1}, headers=operator(issuer))).status_code == 422
    assert (await client.post(url, json={}, headers=spokesperson(issuer, C1))).status_code == 403
    assert (await client.post(url, json={})).status_code == 401
    unknown = await client.post(f"/v1/consultations/{uuid.uuid4()}/roll:freeze", json={}, headers=operator(issuer))
    assert (unknown.status_code, unknown.json()["code"]) == (404, "consultation_not_found")
    missing = await client.get(f"/v1/consultations/{consultation.id}/roll")
    assert (missing.status_code, missing.json()["code"]) == (404, "roll_not_found")

    first = await freeze(quiet, issuer, consultation)
    again = await freeze(quiet, issuer, consultation, cutoff=date.today().isoformat())
    assert again == first
    other = await client.post(
        url, json={"cutoff": (date.today() - timedelta(days=1)).isoformat()}, headers=operator(issuer)
    )
    assert (other.status_code, other.json()["code"]) == (409, "roll_cutoff_conflict")
    async with quiet.consultations.runtime.db.transaction() as session:
        loads = await session.execute(
            text("SELECT count(*) FROM roll_loads WHERE consultation_id = :c"), {"c": uuid.UUID(consultation.id)}
        )
        assert loads.scalar_one() == 1
