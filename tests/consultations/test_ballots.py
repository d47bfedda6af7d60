"""One person, one vote, enforced by the database; eligibility from identity; ballot secrecy in the schema."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import text

from tests.consultations.helpers import (
    ADULT,
    CHILD,
    Stack,
    close_voting,
    officer,
    operator,
    register_residents,
    rows,
    vote,
    voting_consultation,
)
from tests.support.issuer import TestIssuer

pytestmark = pytest.mark.asyncio

C1, C2, C3 = "VE.01.01.C1", "VE.01.01.C2", "VE.01.02.C3"


async def test_second_vote_is_refused_and_only_one_ballot_stored(stack: Stack, issuer: TestIssuer) -> None:
    (voter,) = await register_residents(stack, issuer, f"{C1}.CC1", ADULT, 1)
    consultation = await voting_consultation(stack, issuer)
    first, second = consultation.candidates[C1][:2]
    assert (await vote(stack, issuer, consultation, C1, first, voter)).status_code == 201
    # Same person, another candidate, the id number written differently: still the same voter.
    spelled = f"v-{int(voter[1:]):,}".replace(",", ".")
    again = await vote(stack, issuer, consultation, C1, second, spelled)
    assert again.status_code == 409, again.text
    assert again.json()["code"] == "already_voted"
    assert await rows(stack, "ballots", consultation.id) == 1
    assert await rows(stack, "participations", consultation.id) == 1


async def test_twenty_concurrent_attempts_yield_exactly_one_ballot(stack: Stack, issuer: TestIssuer) -> None:
    (voter,) = await register_residents(stack, issuer, f"{C2}.CC1", ADULT, 1)
    consultation = await voting_consultation(stack, issuer)
    choices = consultation.candidates[C2]
    responses = await asyncio.gather(*(vote(stack, issuer, consultation, C2, choices[i % 2], voter) for i in range(20)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 19, [r.text for r in responses if r.status_code not in (201, 409)]
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"already_voted"}
    assert await rows(stack, "ballots", consultation.id) == 1
    assert await rows(stack, "participations", consultation.id) == 1


async def test_the_same_person_votes_once_per_consultation_but_in_each(stack: Stack, issuer: TestIssuer) -> None:
    (voter,) = await register_residents(stack, issuer, f"{C1}.CC1", ADULT, 1)
    one = await voting_consultation(stack, issuer, {C1: 1})
    two = await voting_consultation(stack, issuer, {C1: 1})
    assert (await vote(stack, issuer, one, C1, one.candidates[C1][0], voter)).status_code == 201
    assert (await vote(stack, issuer, two, C1, two.candidates[C1][0], voter)).status_code == 201


@pytest.mark.parametrize("case", ["not_registered", "under_age", "other_commune", "registered_after_the_cutoff"])
async def test_ineligible_voters_are_refused_and_nothing_is_written(
    stack: Stack, issuer: TestIssuer, case: str
) -> None:
    if case == "not_registered":
        voter = stack.new_voter_id()
    elif case == "under_age":
        (voter,) = await register_residents(stack, issuer, f"{C1}.CC1", CHILD, 1)
    elif case == "other_commune":
        (voter,) = await register_residents(stack, issuer, f"{C2}.CC1", ADULT, 1)
    consultation = await voting_consultation(stack, issuer)
    if case == "registered_after_the_cutoff":  # the roll is frozen: a later registration is not on it
        (voter,) = await register_residents(stack, issuer, f"{C1}.CC1", ADULT, 1)
    response = await vote(stack, issuer, consultation, C1, consultation.candidates[C1][0], voter)
    assert response.status_code == 403, response.text
    problem = response.json()
    # One answer whatever the reason: the table learns nothing more about the person.
    assert problem["code"] == "voter_not_on_roll"
    assert "reason" not in problem
    assert voter not in response.text  # the id number is never echoed
    assert await rows(stack, "ballots", consultation.id) == 0
    assert await rows(stack, "participations", consultation.id) == 0


async def test_malformed_national_id_is_422(stack: Stack, issuer: TestIssuer) -> None:
    consultation = await voting_consultation(stack, issuer, {C1: 1})
    response = await vote(stack, issuer, consultation, C1, consultation.candidates[C1][0], "not-a-cedula")
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "document_invalid"
    assert await rows(stack, "ballots", consultation.id) == 0


async def test_candidate_must_belong_to_the_commune(stack: Stack, issuer: TestIssuer) -> None:
    (voter,) = await register_residents(stack, issuer, f"{C1}.CC1", ADULT, 1)
    consultation = await voting_consultation(stack, issuer)
    foreign = await vote(stack, issuer, consultation, C1, consultation.candidates[C2][0], voter)
    assert foreign.status_code == 422
    assert foreign.json()["code"] == "candidate_not_in_commune"
    unknown = await vote(stack, issuer, consultation, C1, str(uuid.uuid4()), voter)
    assert unknown.status_code == 404
    assert unknown.json()["code"] == "candidate_not_found"
    other_commune = await vote(
        stack, issuer, consultation, C1, consultation.candidates[C1][0], voter, commune_id=str(uuid.uuid4())
    )
    assert other_commune.status_code == 404
    assert other_commune.json()["code"] == "commune_not_found"
    assert await rows(stack, "ballots", consultation.id) == 0
    # The refusals did not use up the vote.
    assert (await vote(stack, issuer, consultation, C1, consultation.candidates[C1][0], voter)).status_code == 201


async def test_ballots_only_while_voting(stack: Stack, issuer: TestIssuer) -> None:
    (voter,) = await register_residents(stack, issuer, f"{C1}.CC1", ADULT, 1)
    consultation = await voting_consultation(stack, issuer, {C1: 1})
    candidate = consultation.candidates[C1][0]
    await close_voting(stack, issuer, consultation)
    late = await vote(stack, issuer, consultation, C1, candidate, voter)
    assert late.status_code == 409
    assert late.json()["code"] == "consultation_not_in_voting"
    assert await rows(stack, "participations", consultation.id) == 0


async def test_officers_act_only_on_their_channel_and_territory(stack: Stack, issuer: TestIssuer) -> None:
    (voter, online_voter) = await register_residents(stack, issuer, f"{C1}.CC1", ADULT, 2)
    consultation = await voting_consultation(stack, issuer, {C1: 1})
    candidate = consultation.candidates[C1][0]
    c2_officer = await officer(stack, consultation.id, C2)
    elsewhere = await vote(stack, issuer, consultation, C1, candidate, voter, headers=c2_officer)
    assert elsewhere.status_code == 403
    assert elsewhere.json()["code"] == "forbidden_territory"
    # An officer of a table in C1, but of another consultation, is not an officer of this one.
    other = await voting_consultation(stack, issuer, {C1: 1})
    other_officer = await officer(stack, other.id, C1)
    foreign = await vote(stack, issuer, consultation, C1, candidate, voter, headers=other_officer)
    assert (foreign.status_code, foreign.json()["code"]) == (403, "forbidden_territory")
    # The national operator holds no table: not a table officer anywhere.
    wrong_role = await vote(stack, issuer, consultation, C1, candidate, voter, headers=operator(issuer))
    assert wrong_role.status_code == 403
    assert wrong_role.json()["code"] == "forbidden_role"
    # A token that claims the old officer role and the whole country gains nothing.
    # (Keycloak itself says so: realm roles and a territory claim set on the token.)
    claimed = issuer.headers(
        subject="nobody", realm_access={"roles": ["table_officer", "operator"]}, comuna_territories=["VE"]
    )
    bogus = await vote(stack, issuer, consultation, C1, candidate, voter, headers=claimed)
    assert (bogus.status_code, bogus.json()["code"]) == (403, "forbidden_role")
    online_by_officer = await vote(stack, issuer, consultation, C1, candidate, voter, channel="online")
    assert online_by_officer.status_code == 403
    assert await rows(stack, "participations", consultation.id) == 0
    # The officer of a table of this consultation in C1 may; an online gateway uses a service token.
    table = await vote(
        stack, issuer, consultation, C1, candidate, voter, headers=await officer(stack, consultation.id, C1)
    )
    assert table.status_code == 201
    online = await vote(
        stack,
        issuer,
        consultation,
        C1,
        candidate,
        online_voter,
        channel="online",
        headers=issuer.headers(roles=["service"]),
    )
    assert online.status_code == 201


async def test_ballots_table_cannot_link_a_ballot_to_a_voter(stack: Stack) -> None:
    async with stack.consultations.runtime.db.transaction() as session:
        columns = (
            await session.execute(
                text("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'ballots'")
            )
        ).all()
        constraints = (
            (
                await session.execute(
                    text(
                        "SELECT ccu.table_name FROM information_schema.table_constraints tc "
                        "JOIN information_schema.constraint_column_usage ccu "
                        "ON tc.constraint_name = ccu.constraint_name "
                        "WHERE tc.table_name = 'ballots' AND tc.constraint_type = 'FOREIGN KEY'"
                    )
                )
            )
            .scalars()
            .all()
        )
        id_default = (
            await session.execute(
                text(
                    "SELECT column_default FROM information_schema.columns "
                    "WHERE table_name = 'ballots' AND column_name = 'id'"
                )
            )
        ).scalar_one()
    # The table is where it was cast (the table's subtotal), not who cast it.
    assert {name for name, _ in columns} == {
        "id",
        "consultation_id",
        "commune_id",
        "candidate_id",
        "channel",
        "table_id",
    }
    assert not any("time" in dtype or "date" in dtype for _, dtype in columns)
    assert set(constraints) == {"candidates", "voting_tables"}
    assert id_default is None  # no sequence: ids are random, not in casting order


async def test_ballot_ids_are_random_uuid4(stack: Stack, issuer: TestIssuer) -> None:
    voters = await register_residents(stack, issuer, f"{C1}.CC1", ADULT, 3)
    consultation = await voting_consultation(stack, issuer, {C1: 1})
    ids = []
    for voter in voters:
        response = await vote(stack, issuer, consultation, C1, consultation.candidates[C1][0], voter)
        ids.append(uuid.UUID(response.json()["ballot_id"]))
    assert all(i.version == 4 for i in ids)
