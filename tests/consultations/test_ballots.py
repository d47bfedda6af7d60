"""The ballot path: who casts on each channel, one person one vote across channels, the window,
the group commit's all-or-nothing batches, receipts."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text

from tests.consultations.helpers import (
    ADULT,
    CHILD,
    Consultation,
    Stack,
    close_voting,
    link_resident,
    officer,
    open_tables,
    operator,
    register_residents,
    rows,
    table_code,
    vote,
    vote_online,
    voting_clock,
    voting_consultation,
)
from tests.support.identity import person
from tests.support.issuer import TestIssuer

pytestmark = pytest.mark.asyncio

C1, C2, C3 = "VE.01.01.C1", "VE.01.01.C2", "VE.01.02.C3"


async def linked_voter(stack: Stack, issuer: TestIssuer, council: str) -> tuple[str, dict[str, str]]:
    """A resident with a linked Keycloak account (before the roll is frozen): document, headers."""
    (document,) = await register_residents(stack, issuer, council, ADULT, 1)
    subject = await link_resident(stack, issuer, document)
    return document, person(issuer, subject)


async def nothing_written(stack: Stack, consultation: Consultation) -> None:
    for table in ("ballots", "participations", "participation_conflicts"):
        assert await rows(stack, table, consultation.id) == 0, table


async def test_second_vote_at_a_table_is_the_one_refusal_and_a_conflict(stack: Stack, issuer: TestIssuer) -> None:
    (voter,) = await register_residents(stack, issuer, f"{C1}.CC1", ADULT, 1)
    consultation = await voting_consultation(stack, issuer)
    first, second = consultation.candidates[C1][:2]
    assert (await vote(stack, issuer, consultation, C1, first, voter)).status_code == 201
    # Same person, another candidate, the id number written differently: still the same voter.
    spelled = f"v-{int(voter[1:]):,}".replace(",", ".")
    again = await vote(stack, issuer, consultation, C1, second, spelled)
    assert (again.status_code, again.json()["code"]) == (403, "voter_may_not_vote"), again.text
    assert await rows(stack, "ballots", consultation.id) == 1
    assert await rows(stack, "participations", consultation.id) == 1
    assert await rows(stack, "participation_conflicts", consultation.id) == 1


async def test_twenty_concurrent_attempts_yield_exactly_one_ballot(stack: Stack, issuer: TestIssuer) -> None:
    (voter,) = await register_residents(stack, issuer, f"{C2}.CC1", ADULT, 1)
    consultation = await voting_consultation(stack, issuer)
    choices = consultation.candidates[C2]
    responses = await asyncio.gather(*(vote(stack, issuer, consultation, C2, choices[i % 2], voter) for i in range(20)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [403] * 19, [r.text for r in responses if r.status_code not in (201, 403)]
    assert {r.json()["code"] for r in responses if r.status_code == 403} == {"voter_may_not_vote"}
    assert await rows(stack, "ballots", consultation.id) == 1
    assert await rows(stack, "participations", consultation.id) == 1
    assert await rows(stack, "participation_conflicts", consultation.id) == 19


async def test_a_double_vote_raced_online_and_at_a_table_counts_once(stack: Stack, issuer: TestIssuer) -> None:
    document, resident = await linked_voter(stack, issuer, f"{C1}.CC1")
    consultation = await voting_consultation(stack, issuer, {C1: 2})
    online, table = await asyncio.gather(
        vote_online(stack, consultation, C1, consultation.candidates[C1][0], resident),
        vote(stack, issuer, consultation, C1, consultation.candidates[C1][1], document),
    )
    outcomes = sorted([(online.status_code, "online"), (table.status_code, "table")])
    assert outcomes[0][0] == 201, (online.text, table.text)
    refused = table if outcomes[0][1] == "online" else online
    assert (refused.status_code, refused.json()["code"]) in ((403, "voter_may_not_vote"), (409, "already_voted"))
    assert await rows(stack, "ballots", consultation.id) == 1
    assert await rows(stack, "participations", consultation.id) == 1
    async with stack.consultations.runtime.db.transaction() as session:
        conflicts = (
            await session.execute(
                text(
                    "SELECT c.channel, c.commune_id, c.ballot_counted, c.voter_ref = p.voter_ref"
                    " FROM participation_conflicts c JOIN participations p USING (consultation_id)"
                    " WHERE c.consultation_id = :c"
                ),
                {"c": uuid.UUID(consultation.id)},
            )
        ).all()
    assert conflicts == [(outcomes[1][1], stack.commune_ids[C1], False, True)]


async def test_online_the_signed_in_resident_votes_once_and_checks_the_receipt(
    stack: Stack, issuer: TestIssuer
) -> None:
    _, resident = await linked_voter(stack, issuer, f"{C1}.CC1")
    consultation = await voting_consultation(stack, issuer, {C1: 1})
    candidate = consultation.candidates[C1][0]
    cast = await vote_online(stack, consultation, C1, candidate, resident)
    assert cast.status_code == 201, cast.text
    receipt = cast.json()["receipt"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", receipt)
    checked = await stack.consultations.client.get(f"/v1/consultations/{consultation.id}/receipts/{receipt}")
    assert (checked.json()["receipt"], checked.json()["recorded"]) == (receipt, True)
    assert candidate not in checked.text
    unknown = await stack.consultations.client.get(f"/v1/consultations/{consultation.id}/receipts/{'A' * 22}")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "receipt_not_found")
    malformed = await stack.consultations.client.get(f"/v1/consultations/{consultation.id}/receipts/{uuid.uuid4()}")
    assert malformed.status_code == 422
    again = await vote_online(stack, consultation, C1, candidate, resident)
    assert (again.status_code, again.json()["code"]) == (409, "already_voted")
    async with stack.consultations.runtime.db.transaction() as session:
        stored = (
            await session.execute(
                text("SELECT channel, table_id FROM ballots WHERE consultation_id = :c"),
                {"c": uuid.UUID(consultation.id)},
            )
        ).all()
    assert stored == [("online", None)]


async def test_nobody_votes_online_on_someone_elses_behalf(stack: Stack, issuer: TestIssuer) -> None:
    document, resident = await linked_voter(stack, issuer, f"{C1}.CC1")
    (unlinked,) = await register_residents(stack, issuer, f"{C1}.CC1", ADULT, 1)
    _, elsewhere = await linked_voter(stack, issuer, f"{C2}.CC1")
    consultation = await voting_consultation(stack, issuer, {C1: 1})
    candidate = consultation.candidates[C1][0]
    service = await vote_online(stack, consultation, C1, candidate, issuer.headers(roles=["service"]))
    assert (service.status_code, service.json()["code"]) == (403, "forbidden_role")
    # A person without a linked census record, and an officer: not residents voting for themselves.
    stranger = await vote_online(stack, consultation, C1, candidate, person(issuer, str(uuid.uuid4())))
    assert (stranger.status_code, stranger.json()["code"]) == (403, "forbidden_role")
    by_officer = await vote_online(stack, consultation, C1, candidate, await officer(stack, consultation.id, C1))
    assert (by_officer.status_code, by_officer.json()["code"]) == (403, "forbidden_role")
    # A document in an online ballot is refused, even the resident's own.
    body = {
        "commune_id": str(stack.commune_ids[C1]),
        "candidate_id": candidate,
        "channel": "online",
        "national_id": unlinked,
    }
    with_document = await stack.consultations.client.post(
        f"/v1/consultations/{consultation.id}/ballots", json=body, headers=resident
    )
    assert (with_document.status_code, with_document.json()["code"]) == (422, "online_ballot_fields")
    # A resident of another commune is not on this commune's roll.
    other = await vote_online(stack, consultation, C1, candidate, elsewhere)
    assert (other.status_code, other.json()["code"]) == (403, "voter_not_on_roll")
    await nothing_written(stack, consultation)
    assert document not in with_document.text


async def test_the_same_person_votes_once_per_consultation_but_in_each(stack: Stack, issuer: TestIssuer) -> None:
    (voter,) = await register_residents(stack, issuer, f"{C1}.CC1", ADULT, 1)
    one = await voting_consultation(stack, issuer, {C1: 1})
    two = await voting_consultation(stack, issuer, {C1: 1})
    assert (await vote(stack, issuer, one, C1, one.candidates[C1][0], voter)).status_code == 201
    assert (await vote(stack, issuer, two, C1, two.candidates[C1][0], voter)).status_code == 201


@pytest.mark.parametrize("case", ["not_registered", "under_age", "other_commune", "registered_after_the_cutoff"])
async def test_ineligible_voters_get_the_one_answer_and_nothing_is_written(
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
    # One answer whatever the reason, the same as "already voted": the officer learns "may vote or not".
    assert problem["code"] == "voter_may_not_vote"
    assert "reason" not in problem
    assert voter not in response.text  # the id number is never echoed
    await nothing_written(stack, consultation)


async def test_malformed_national_id_is_422(stack: Stack, issuer: TestIssuer) -> None:
    consultation = await voting_consultation(stack, issuer, {C1: 1})
    response = await vote(stack, issuer, consultation, C1, consultation.candidates[C1][0], "not-a-cedula")
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "document_invalid"
    await nothing_written(stack, consultation)


async def test_candidate_must_belong_to_the_commune_and_blank_is_explicit(stack: Stack, issuer: TestIssuer) -> None:
    (voter, blank_voter) = await register_residents(stack, issuer, f"{C1}.CC1", ADULT, 2)
    consultation = await voting_consultation(stack, issuer)
    foreign = await vote(stack, issuer, consultation, C1, consultation.candidates[C2][0], voter)
    assert (foreign.status_code, foreign.json()["code"]) == (422, "candidate_not_in_commune")
    unknown = await vote(stack, issuer, consultation, C1, str(uuid.uuid4()), voter)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "candidate_not_found")
    other_commune = await vote(
        stack, issuer, consultation, C1, consultation.candidates[C1][0], voter, commune_id=str(uuid.uuid4())
    )
    assert (other_commune.status_code, other_commune.json()["code"]) == (404, "commune_not_found")
    await nothing_written(stack, consultation)
    # The refusals did not use up the vote.
    assert (await vote(stack, issuer, consultation, C1, consultation.candidates[C1][0], voter)).status_code == 201
    # A blank ballot is an explicit null; a missing candidate is a malformed body.
    missing = {"commune_id": str(stack.commune_ids[C1]), "channel": "table", "national_id": blank_voter}
    response = await stack.consultations.client.post(
        f"/v1/consultations/{consultation.id}/ballots",
        json={**missing, "table_code": table_code(C1)},
        headers=await officer(stack, consultation.id, C1),
    )
    assert response.status_code == 422
    assert (await vote(stack, issuer, consultation, C1, None, blank_voter)).status_code == 201
    async with stack.consultations.runtime.db.transaction() as session:
        blanks = await session.execute(
            text("SELECT count(*) FROM ballots WHERE consultation_id = :c AND candidate_id IS NULL"),
            {"c": uuid.UUID(consultation.id)},
        )
        assert blanks.scalar_one() == 1


async def test_ballots_only_inside_the_window_on_the_server_clock(stack: Stack, issuer: TestIssuer) -> None:
    (voter,) = await register_residents(stack, issuer, f"{C1}.CC1", ADULT, 1)
    consultation = await voting_consultation(stack, issuer, {C1: 1})
    candidate = consultation.candidates[C1][0]
    clock = voting_clock(stack)
    during = clock.now()
    published = (await stack.consultations.client.get(f"/v1/consultations/{consultation.id}")).json()
    opens, closes = published["voting_opens_at"], published["voting_closes_at"]
    try:
        for instant in (datetime.fromisoformat(opens) - timedelta(seconds=1), datetime.fromisoformat(closes)):
            clock.set(instant)
            refused = stack.consultations.client.post(
                f"/v1/consultations/{consultation.id}/ballots",
                json={
                    "commune_id": str(stack.commune_ids[C1]),
                    "candidate_id": candidate,
                    "channel": "table",
                    "national_id": voter,
                    "table_code": table_code(C1),
                },
                headers=await officer(stack, consultation.id, C1),
            )
            response = await refused
            assert (response.status_code, response.json()["code"]) == (409, "consultation_not_in_voting"), instant
        await nothing_written(stack, consultation)
        # The last instant before the close is inside.
        clock.set(datetime.fromisoformat(closes) - timedelta(microseconds=1))
        response = await stack.consultations.client.post(
            f"/v1/consultations/{consultation.id}/ballots",
            json={
                "commune_id": str(stack.commune_ids[C1]),
                "candidate_id": candidate,
                "channel": "table",
                "national_id": voter,
                "table_code": table_code(C1),
            },
            headers=await officer(stack, consultation.id, C1),
        )
        assert response.status_code == 201, response.text
    finally:
        clock.set(during)


async def test_no_ballot_after_the_consultation_is_closed(stack: Stack, issuer: TestIssuer) -> None:
    (voter,) = await register_residents(stack, issuer, f"{C1}.CC1", ADULT, 1)
    consultation = await voting_consultation(stack, issuer, {C1: 1})
    await close_voting(stack, issuer, consultation)
    late = await vote(stack, issuer, consultation, C1, consultation.candidates[C1][0], voter)
    assert (late.status_code, late.json()["code"]) == (409, "consultation_not_in_voting")
    await nothing_written(stack, consultation)


async def test_only_an_officer_of_this_electronic_table_records_its_ballots(stack: Stack, issuer: TestIssuer) -> None:
    (voter,) = await register_residents(stack, issuer, f"{C1}.CC1", ADULT, 1)
    consultation = await voting_consultation(stack, issuer, {C1: 1, C2: 1})
    await open_tables(stack, consultation.id, kind="paper", suffix="P1")
    candidate = consultation.candidates[C1][0]
    mine = await officer(stack, consultation.id, C1)
    cases = [
        # Another table's officer (of C2), on their own table of C2 or naming C1's table.
        (await officer(stack, consultation.id, C2), table_code(C1), 403, "forbidden_table"),
        (await officer(stack, consultation.id, C2), table_code(C2), 403, "forbidden_table"),
        # This officer naming another table, or a table that does not exist.
        (mine, table_code(C2), 403, "forbidden_table"),
        (mine, "T9-nowhere", 403, "forbidden_table"),
        # An officer of the same table code in another consultation.
        (await officer(stack, str(uuid.uuid4()), C1), table_code(C1), 403, "forbidden_table"),
        # The national operator holds no table; a token claiming roles gains nothing.
        (operator(issuer), table_code(C1), 403, "forbidden_role"),
        (
            issuer.headers(subject="nobody", realm_access={"roles": ["table_officer"]}, comuna_territories=["VE"]),
            table_code(C1),
            403,
            "forbidden_role",
        ),
        (issuer.headers(roles=["service"]), table_code(C1), 403, "forbidden_role"),
        # The officer of C1's paper table: check-ins only, no ballots through the API.
        (await officer(stack, consultation.id, C1, "P1-" + C1), "P1-" + C1, 409, "table_not_electronic"),
    ]
    for headers, table, status, code in cases:
        response = await vote(stack, issuer, consultation, C1, candidate, voter, headers=headers, table=table)
        assert (response.status_code, response.json()["code"]) == (status, code), (table, response.text)
    await nothing_written(stack, consultation)
    cast = await vote(stack, issuer, consultation, C1, candidate, voter, headers=mine)
    assert cast.status_code == 201, cast.text
    async with stack.consultations.runtime.db.transaction() as session:
        where = (
            await session.execute(
                text(
                    "SELECT b.table_id = t.id, p.table_id IS NULL, p.channel FROM ballots b, participations p,"
                    " voting_tables t WHERE b.consultation_id = :c AND p.consultation_id = :c"
                    " AND t.consultation_id = :c AND t.code = :code"
                ),
                {"c": uuid.UUID(consultation.id), "code": table_code(C1)},
            )
        ).all()
    # The ballot names its table (subtotals); the participation does not (secrecy, migration 0010).
    assert where == [(True, True, "table")]


async def test_a_failed_batch_writes_nothing_and_the_retry_counts_once(stack: Stack, issuer: TestIssuer) -> None:
    voters = await register_residents(stack, issuer, f"{C1}.CC1", ADULT, 3)
    consultation = await voting_consultation(stack, issuer, {C1: 1})
    candidate = consultation.candidates[C1][0]
    # A real failure inside the batch's transaction, after its participations were inserted.
    async with stack.consultations.runtime.db.transaction() as session:
        await session.execute(
            text(
                "CREATE FUNCTION fail_ballots() RETURNS trigger LANGUAGE plpgsql AS"
                " $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$"
            )
        )
        await session.execute(
            text("CREATE TRIGGER fail_ballots BEFORE INSERT ON ballots FOR EACH ROW EXECUTE FUNCTION fail_ballots()")
        )
    try:
        failed = await asyncio.gather(*(vote(stack, issuer, consultation, C1, candidate, v) for v in voters))
        for response in failed:
            assert (response.status_code, response.json()["code"]) == (503, "ballot_not_stored"), response.text
            assert "injected" not in response.text
        await nothing_written(stack, consultation)
    finally:
        async with stack.consultations.runtime.db.transaction() as session:
            await session.execute(text("DROP TRIGGER fail_ballots ON ballots"))
            await session.execute(text("DROP FUNCTION fail_ballots()"))
    retried = await asyncio.gather(*(vote(stack, issuer, consultation, C1, candidate, v) for v in voters))
    assert [r.status_code for r in retried] == [201] * 3
    again = await vote(stack, issuer, consultation, C1, candidate, voters[0])
    assert again.status_code == 403
    assert await rows(stack, "ballots", consultation.id) == 3
    assert await rows(stack, "participations", consultation.id) == 3


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
    names = {name for name, _ in columns}
    assert names == {"id", "consultation_id", "commune_id", "candidate_id", "channel", "table_id"}
    assert not any("time" in dtype or "date" in dtype for _, dtype in columns)
    assert set(constraints) == {"candidates", "voting_tables"}
    assert id_default is None  # no sequence: ids are random, not in casting order
