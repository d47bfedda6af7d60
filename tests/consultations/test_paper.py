"""Paper tables: check-ins through the one-participation rule, tally sheets confirmed by a second officer."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from comuna.consultations.v1 import events_pb2
from tests.consultations import helpers
from tests.consultations.helpers import Stack, vote
from tests.consultations.tables_support import C1, C2, Laid, close_voting, count, laid_out_consultation, officer_of
from tests.support.issuer import TestIssuer

pytestmark = pytest.mark.asyncio

SCAN = hashlib.sha256(b"acta de escrutinio, mesa P1").hexdigest()


async def _check_in(stack: Stack, laid: Laid, table: str, document: str, headers: dict[str, str]) -> httpx.Response:
    return await stack.consultations.client.post(
        f"/v1/consultations/{laid.id}/tables/{table}/check-ins", json={"national_id": document}, headers=headers
    )


async def _submit(stack: Stack, laid: Laid, table: str, headers: dict[str, str], **sheet: Any) -> httpx.Response:
    return await stack.consultations.client.post(
        f"/v1/consultations/{laid.id}/tables/{table}/tally-sheet", json={"scan_sha256": SCAN, **sheet}, headers=headers
    )


async def _confirm(stack: Stack, laid: Laid, table: str, sheet_id: str, headers: dict[str, str]) -> httpx.Response:
    return await stack.consultations.client.post(
        f"/v1/consultations/{laid.id}/tables/{table}/tally-sheet:confirm", json={"sheet_id": sheet_id}, headers=headers
    )


def _sheet(laid: Laid, first: int, second: int, *, blank: int = 0, null: int = 0, checked_in: int) -> dict[str, Any]:
    a, b = laid.consultation.candidates[C1]
    return {
        "votes": [{"candidate_id": a, "votes": first}, {"candidate_id": b, "votes": second}],
        "blank": blank,
        "null": null,
        "checked_in": checked_in,
    }


async def _written(stack: Stack, laid: Laid) -> tuple[int, int, int]:
    return (
        await count(stack, "tally_sheets", laid.id),
        await count(stack, "tally_sheet_votes", laid.id),
        await count(stack, "tally_sheets", laid.id, "confirmed_at IS NOT NULL"),
    )


async def test_paper_check_ins_take_part_once_across_channels(stack: Stack, issuer: TestIssuer) -> None:
    laid = await laid_out_consultation(stack, issuer)
    p1 = await officer_of(stack, laid.id, C1, "P1")
    first, online_voter = laid.voters.c1[:2]
    created = await _check_in(stack, laid, "P1", first, p1)
    assert created.status_code == 201, created.text
    assert created.json() == {"recorded": True}
    # Twice at the paper table, or at the paper table after a ballot elsewhere: 409, kept as a conflict.
    again = await _check_in(stack, laid, "P1", first, p1)
    assert (again.status_code, again.json()["code"]) == (409, "already_took_part")
    ballot = await vote(stack, issuer, laid.consultation, C1, laid.consultation.candidates[C1][0], online_voter)
    assert ballot.status_code == 201
    after_ballot = await _check_in(stack, laid, "P1", online_voter, p1)
    assert (after_ballot.status_code, after_ballot.json()["code"]) == (409, "already_took_part")
    assert await count(stack, "participations", laid.id) == 2
    assert await count(stack, "participations", laid.id, "channel = 'paper'") == 1
    assert await count(stack, "participation_conflicts", laid.id, "channel = 'paper' AND table_id IS NOT NULL") == 2
    # Not on this table's roll, whatever the reason: one answer, nothing written.
    for document in (laid.voters.unregistered, laid.voters.child, laid.voters.c2[0]):
        refused = await _check_in(stack, laid, "P1", document, p1)
        assert (refused.status_code, refused.json()["code"]) == (403, "voter_not_on_roll")
    assert await count(stack, "participations", laid.id) == 2
    assert await count(stack, "participation_conflicts", laid.id) == 2
    # An electronic table's check-in now says no for the paper voter.
    e1 = await officer_of(stack, laid.id, C1, "E1")
    response = await stack.consultations.client.post(
        f"/v1/consultations/{laid.id}/tables/E1:check-in", json={"national_id": first}, headers=e1
    )
    assert response.json() == {"may_vote": False}


async def test_two_officers_of_the_table_make_the_sheet_final(stack: Stack, issuer: TestIssuer) -> None:
    laid = await laid_out_consultation(stack, issuer)
    submitter = await officer_of(stack, laid.id, C1, "P1")
    confirmer = await officer_of(stack, laid.id, C1, "P1", n=2)
    for document in laid.voters.c1[:3]:
        assert (await _check_in(stack, laid, "P1", document, submitter)).status_code == 201
    close_voting(stack, laid)

    first = await _submit(stack, laid, "P1", submitter, **_sheet(laid, 1, 0, null=1, checked_in=3))
    assert first.status_code == 201, first.text
    # A correction replaces the unconfirmed sheet; the first one can no longer be confirmed.
    corrected = await _submit(stack, laid, "P1", submitter, **_sheet(laid, 1, 1, null=1, checked_in=3))
    assert corrected.status_code == 201, corrected.text
    sheet = corrected.json()
    assert sheet["id"] != first.json()["id"]
    assert (sheet["blank"], sheet["null"], sheet["checked_in"], sheet["confirmed"]) == (0, 1, 3, False)
    stale = await _confirm(stack, laid, "P1", first.json()["id"], confirmer)
    assert (stale.status_code, stale.json()["code"]) == (409, "tally_sheet_replaced")
    assert await _written(stack, laid) == (1, 2, 0)

    own = await _confirm(stack, laid, "P1", sheet["id"], submitter)
    assert (own.status_code, own.json()["code"]) == (403, "second_officer_required")
    assert await _written(stack, laid) == (1, 2, 0)

    confirmed = await _confirm(stack, laid, "P1", sheet["id"], confirmer)
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["confirmed"] is True
    public = await stack.consultations.client.get(f"/v1/consultations/{laid.id}/tables/P1/tally-sheet")
    assert public.status_code == 200
    assert sorted(v["votes"] for v in public.json()["votes"]) == [1, 1]
    assert public.json()["scan_sha256"] == SCAN

    event = await _confirmed_event(stack, laid)
    assert (event.table_code, event.sheet_id, event.checked_in, event.null_votes, event.blank) == (
        "P1",
        sheet["id"],
        3,
        1,
        0,
    )
    assert sorted(v.votes for v in event.votes) == [1, 1]
    assert event.scan_sha256 == SCAN

    # Final: no second confirmation, no correction.
    twice = await _confirm(stack, laid, "P1", sheet["id"], await officer_of(stack, laid.id, C1, "P1", n=3))
    assert (twice.status_code, twice.json()["code"]) == (409, "tally_sheet_already_confirmed")
    late = await _submit(stack, laid, "P1", submitter, **_sheet(laid, 0, 1, null=1, checked_in=3))
    assert (late.status_code, late.json()["code"]) == (409, "tally_sheet_confirmed")
    assert await _written(stack, laid) == (1, 2, 1)
    assert await _confirmed_events(stack, laid) == 1


async def test_every_refused_sheet_writes_nothing(stack: Stack, issuer: TestIssuer) -> None:
    laid = await laid_out_consultation(stack, issuer)
    p1 = await officer_of(stack, laid.id, C1, "P1")
    for document in laid.voters.c1[:2]:
        assert (await _check_in(stack, laid, "P1", document, p1)).status_code == 201
    good = _sheet(laid, 1, 1, checked_in=2)

    early = await _submit(stack, laid, "P1", p1, **good)
    assert (early.status_code, early.json()["code"]) == (409, "voting_not_closed")
    close_voting(stack, laid)

    other_commune = {
        **good,
        "votes": [*good["votes"][:1], {"candidate_id": laid.consultation.candidates[C2][0], "votes": 1}],
    }
    unknown = {**good, "votes": [{"candidate_id": str(uuid.uuid4()), "votes": 1}]}
    cases: list[tuple[str, dict[str, str], dict[str, Any], int, str]] = [
        ("P1", p1, _sheet(laid, 2, 1, checked_in=2), 422, "tally_exceeds_check_ins"),  # 3 counted, 2 in
        ("P1", p1, _sheet(laid, 2, 0, null=1, checked_in=2), 422, "tally_exceeds_check_ins"),
        ("P1", p1, _sheet(laid, 1, 1, checked_in=3), 422, "checked_in_mismatch"),
        ("P1", p1, _sheet(laid, 0, 0, checked_in=1), 422, "checked_in_mismatch"),
        ("P1", p1, other_commune, 422, "candidate_not_in_commune"),
        ("P1", p1, unknown, 404, "candidate_not_found"),
        ("P1", await officer_of(stack, laid.id, C1, "E1"), good, 403, "forbidden_table"),
        ("P1", await officer_of(stack, laid.id, C2, "P2"), good, 403, "forbidden_table"),
        ("E1", await officer_of(stack, laid.id, C1, "E1"), good, 409, "wrong_table_kind"),
        ("O1", await officer_of(stack, laid.id, C1, "O1"), good, 409, "wrong_table_kind"),
        ("P1", p1, {**good, "blank": -1}, 422, "validation_error"),
        ("P1", p1, {**good, "votes": good["votes"] * 2}, 422, "validation_error"),
    ]
    for table, headers, sheet, status, code in cases:
        response = await _submit(stack, laid, table, headers, **sheet)
        assert (response.status_code, response.json()["code"]) == (status, code), (code, response.text)
        assert await _written(stack, laid) == (0, 0, 0), code
    # A sheet with fewer votes than check-ins is fine (a ballot may be left in nobody's box).
    fine = await _submit(stack, laid, "P1", p1, **_sheet(laid, 1, 0, checked_in=2))
    assert fine.status_code == 201, fine.text
    # The confirmation by an officer of another table, or of nothing at all, is refused too.
    other = await _confirm(stack, laid, "P1", fine.json()["id"], await officer_of(stack, laid.id, C2, "P2"))
    assert (other.status_code, other.json()["code"]) == (403, "forbidden_table")
    assert await _written(stack, laid) == (1, 2, 0)
    assert await _confirmed_events(stack, laid) == 0


async def _confirmed_rows(stack: Stack, laid: Laid) -> list[bytes]:
    async with stack.consultations.runtime.db.transaction() as session:
        result = await session.execute(
            text("SELECT payload FROM outbox_events WHERE subject = 'consultations.tally_sheet.confirmed'")
        )
        payloads = [bytes(row.payload) for row in result]
    out = []
    for payload in payloads:
        message = events_pb2.TallySheetConfirmed.FromString(payload)
        if message.consultation_id == laid.id:
            out.append(payload)
    return out


async def _confirmed_events(stack: Stack, laid: Laid) -> int:
    return len(await _confirmed_rows(stack, laid))


async def _confirmed_event(stack: Stack, laid: Laid) -> events_pb2.TallySheetConfirmed:
    (payload,) = await _confirmed_rows(stack, laid)
    return events_pb2.TallySheetConfirmed.FromString(payload)


async def test_an_operators_close_ends_check_ins_and_lets_the_sheet_in(stack: Stack, issuer: TestIssuer) -> None:
    laid = await laid_out_consultation(stack, issuer)
    p1 = await officer_of(stack, laid.id, C1, "P1")
    assert (await _check_in(stack, laid, "P1", laid.voters.c1[0], p1)).status_code == 201
    # The operator brings the close forward (a recorded amendment) and the clock passes it: no more check-ins.
    await helpers.close_voting(stack, issuer, laid.consultation)
    late = await _check_in(stack, laid, "P1", laid.voters.c1[1], p1)
    assert (late.status_code, late.json()["code"]) == (409, "voting_not_open")
    assert await count(stack, "participations", laid.id) == 1
    sheet = await _submit(stack, laid, "P1", p1, **_sheet(laid, 1, 0, checked_in=1))
    assert sheet.status_code == 201, sheet.text
