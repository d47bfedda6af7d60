"""A consultation's phases follow its published dates on the service's clock (a ManualClock the
test moves): every boundary just before and at it, amendments of the schedule, commune holds,
and bad input that writes nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text

from comuna_consultations.domain.phases import VotingWindow
from comuna_consultations.lifecycle.phases_storage import schedule_of, voting_windows
from comuna_platform.events import outbox_table
from tests.consultations.helpers import (
    ADULT,
    SCHEDULE,
    Consultation,
    Stack,
    add_candidate,
    amend,
    freeze_roll,
    next_code,
    open_consultation,
    open_tables,
    operator,
    register_residents,
    rows,
    spokesperson,
    transition,
    vote,
)
from tests.support.issuer import TestIssuer

pytestmark = pytest.mark.asyncio

C1, C2, C3 = "VE.01.01.C1", "VE.01.01.C2", "VE.01.02.C3"
TICK = timedelta(microseconds=1)
DATES = (
    "assemblies_open_at",
    "candidates_close_at",
    "roll_cutoff_at",
    "voting_opens_at",
    "voting_closes_at",
    "certification_opens_at",
)


@pytest.fixture(autouse=True)
def real_time_again(stack: Stack) -> Iterator[None]:
    """Each test moves the module's clock as it needs; the next one starts at the real time."""
    yield
    stack.clock.set(datetime.now(UTC))


def schedule_from_now(stack: Stack, hours: tuple[int, ...] = (1, 2, 3, 4, 5, 7)) -> dict[str, datetime]:
    """The six dates, `hours` after the clock's now (whole seconds, as stored)."""
    now = stack.clock.now().replace(microsecond=0)
    return {name: now + timedelta(hours=h) for name, h in zip(DATES, hours, strict=True)}


async def open_at(stack: Stack, issuer: TestIssuer, dates: dict[str, datetime], **rules: Any) -> Consultation:
    return await open_consultation(stack, issuer, **{k: v.isoformat() for k, v in dates.items()}, **rules)


async def count(stack: Stack, sql: str, **params: Any) -> int:
    async with stack.consultations.runtime.db.transaction() as session:
        return int((await session.execute(text(sql), params)).scalar_one())


async def phase(stack: Stack, consultation: Consultation) -> str:
    response = await stack.consultations.client.get(f"/v1/consultations/{consultation.id}")
    return str(response.json()["phase"])


async def test_a_disordered_schedule_is_refused_and_writes_nothing(stack: Stack, issuer: TestIssuer) -> None:
    before = await count(stack, "SELECT count(*) FROM consultations")
    client = stack.consultations.client
    base = {"code": next_code(), "title": "Consulta", **SCHEDULE}
    swapped = {**base, "candidates_close_at": SCHEDULE["voting_closes_at"]}
    early_certification = {**base, "certification_opens_at": SCHEDULE["voting_opens_at"]}
    for body in (swapped, early_certification):
        response = await client.post("/v1/consultations", json=body, headers=operator(issuer))
        assert (response.status_code, response.json()["code"]) == (422, "schedule_invalid"), body
    missing = {k: v for k, v in base.items() if k != "roll_cutoff_at"}
    assert (await client.post("/v1/consultations", json=missing, headers=operator(issuer))).status_code == 422
    for rule in ({"max_candidates": 0}, {"funds_per_commune": 0}, {"funds_currency": "usd"}):
        response = await client.post("/v1/consultations", json={**base, **rule}, headers=operator(issuer))
        assert response.status_code == 422, rule
    assert await count(stack, "SELECT count(*) FROM consultations") == before
    # The declared defaults: 10 candidates, 10,000.00 USD per commune.
    opened = (await client.post("/v1/consultations", json=base, headers=operator(issuer))).json()
    assert (opened["max_candidates"], opened["funds_per_commune"], opened["funds_currency"]) == (10, 1_000_000, "USD")


async def test_every_phase_boundary_just_before_and_at(stack: Stack, issuer: TestIssuer) -> None:
    (voter, second, late) = await register_residents(stack, issuer, f"{C1}.CC1", ADULT, 3)
    dates = schedule_from_now(stack)
    consultation = await open_at(stack, issuer, dates)
    clock = stack.clock

    clock.set(dates["assemblies_open_at"] - TICK)
    assert await phase(stack, consultation) == "scheduled"
    closed = await add_candidate(stack, issuer, consultation, C1, 1)
    assert (closed.status_code, closed.json()["code"], closed.json()["phase"]) == (
        409,
        "registration_closed",
        "scheduled",
    )
    clock.set(dates["assemblies_open_at"])
    assert await phase(stack, consultation) == "assemblies"
    assert (await add_candidate(stack, issuer, consultation, C1, 1)).status_code == 201

    clock.set(dates["candidates_close_at"] - TICK)
    assert (await add_candidate(stack, issuer, consultation, C1, 2)).status_code == 201
    clock.set(dates["candidates_close_at"])
    assert await phase(stack, consultation) == "registration_closed"
    refused = await add_candidate(stack, issuer, consultation, C1, 3)
    assert (refused.status_code, refused.json()["code"]) == (409, "registration_closed")
    assert len(consultation.candidates[C1]) == 2

    # The roll is requested only before voting opens.
    clock.set(dates["voting_opens_at"] - TICK)
    await freeze_roll(stack, issuer, consultation)
    await open_tables(stack, consultation.id)
    candidate = consultation.candidates[C1][0]
    early = await vote(stack, issuer, consultation, C1, candidate, voter)
    assert (early.status_code, early.json()["code"]) == (409, "consultation_not_in_voting")

    clock.set(dates["voting_opens_at"])
    assert await phase(stack, consultation) == "voting"
    assert (await vote(stack, issuer, consultation, C1, candidate, voter)).status_code == 201
    other = await open_at(stack, issuer, dates)
    too_late = await stack.consultations.client.post(
        f"/v1/consultations/{other.id}/roll:freeze", json={}, headers=operator(issuer)
    )
    assert (too_late.status_code, too_late.json()["code"]) == (409, "roll_request_closed")

    clock.set(dates["voting_closes_at"] - TICK)
    assert (await vote(stack, issuer, consultation, C1, candidate, second)).status_code == 201
    clock.set(dates["voting_closes_at"])
    assert await phase(stack, consultation) == "tally"
    after = await vote(stack, issuer, consultation, C1, candidate, late)
    assert (after.status_code, after.json()["code"]) == (409, "consultation_not_in_voting")

    clock.set(dates["certification_opens_at"] - TICK)
    not_yet = await transition(stack, issuer, consultation.id, "certify")
    assert (not_yet.status_code, not_yet.json()["code"], not_yet.json()["phase"]) == (
        409,
        "certification_not_open",
        "tally",
    )
    clock.set(dates["certification_opens_at"])
    assert await phase(stack, consultation) == "certification"
    certified = await transition(stack, issuer, consultation.id, "certify")
    assert certified.status_code == 200, certified.text
    results = (await stack.consultations.client.get(f"/v1/consultations/{consultation.id}/results")).json()
    assert results["ballots"] == 2


async def test_amendments_move_only_future_dates_keep_the_order_and_are_recorded(
    stack: Stack, issuer: TestIssuer
) -> None:
    dates = schedule_from_now(stack)
    consultation = await open_at(stack, issuer, dates)
    clock = stack.clock
    clock.set(dates["assemblies_open_at"] + timedelta(minutes=30))  # assemblies opened half an hour ago
    now = clock.now()
    refusals = [
        ({"voting_opens_at": now - timedelta(minutes=1)}, "schedule_date_passed"),  # into the past
        ({"assemblies_open_at": now + timedelta(hours=1)}, "schedule_date_passed"),  # a date already passed
        ({"voting_opens_at": dates["voting_closes_at"] + timedelta(hours=1)}, "schedule_invalid"),  # order
        ({"voting_opens_at": dates["voting_opens_at"]}, "schedule_unchanged"),
        ({}, "schedule_invalid"),
    ]
    for change, code in refusals:
        response = await amend(stack, issuer, consultation.id, "operator error", **change)
        assert (response.status_code, response.json()["code"]) == (422, code), change
    blank = await stack.consultations.client.post(
        f"/v1/consultations/{consultation.id}:amend-schedule",
        json={"reason": "", "voting_opens_at": (now + timedelta(hours=1)).isoformat()},
        headers=operator(issuer),
    )
    assert blank.status_code == 422
    spoke = await stack.consultations.client.post(
        f"/v1/consultations/{consultation.id}:amend-schedule",
        json={"reason": "mine", "voting_opens_at": (now + timedelta(hours=3, minutes=30)).isoformat()},
        headers=spokesperson(issuer, C1),
    )
    assert spoke.status_code == 403
    assert await rows(stack, "schedule_amendments", consultation.id) == 0
    async with stack.consultations.runtime.db.transaction() as session:
        unchanged = await schedule_of(session, _id(consultation))
    assert unchanged is not None and unchanged.voting_opens_at == dates["voting_opens_at"]

    later = dates["voting_opens_at"] + timedelta(minutes=30)
    moved = await amend(stack, issuer, consultation.id, "the school is free only later", voting_opens_at=later)
    assert moved.status_code == 200, moved.text
    assert datetime.fromisoformat(moved.json()["voting_opens_at"]) == later
    history = (await stack.consultations.client.get(f"/v1/consultations/{consultation.id}/schedule-amendments")).json()
    (entry,) = history["items"]
    assert entry["reason"] == "the school is free only later"
    assert list(entry["changes"]) == ["voting_opens_at"]
    assert datetime.fromisoformat(entry["changes"]["voting_opens_at"][0]) == dates["voting_opens_at"]
    assert entry["amended_by"] and entry["amended_at"]
    async with stack.consultations.runtime.db.transaction() as session:
        subjects = (
            (
                await session.execute(
                    select(outbox_table.c.subject).where(outbox_table.c.aggregate_id == consultation.id)
                )
            )
            .scalars()
            .all()
        )
    assert subjects.count("consultations.schedule.amended") == 1


def _id(consultation: Consultation) -> uuid.UUID:
    return uuid.UUID(consultation.id)


async def test_holds_exclude_or_postpone_a_commune_and_ballots_follow_them(stack: Stack, issuer: TestIssuer) -> None:
    (c1_voter,) = await register_residents(stack, issuer, f"{C1}.CC1", ADULT, 1)
    (c2_voter,) = await register_residents(stack, issuer, f"{C2}.CC1", ADULT, 1)
    dates = schedule_from_now(stack, (-1, 1, 2, 3, 4, 8))
    consultation = await open_at(stack, issuer, dates)
    for commune in (C1, C2):
        assert (await add_candidate(stack, issuer, consultation, commune, 1)).status_code == 201
    await freeze_roll(stack, issuer, consultation)
    await open_tables(stack, consultation.id)
    client = stack.consultations.client
    base = f"/v1/consultations/{consultation.id}/communes"
    c1, c2, c3 = (stack.commune_ids[c] for c in (C1, C2, C3))
    postponed = (dates["voting_closes_at"], dates["voting_closes_at"] + timedelta(hours=2))

    bad = [
        ({"kind": "excluded", "reason": ""}, 422),
        ({"kind": "banished", "reason": "x"}, 422),
        ({"kind": "postponed", "reason": "flood"}, 422),  # no window
        ({"kind": "excluded", "reason": "x", "voting_opens_at": postponed[0].isoformat()}, 422),
        (
            {
                "kind": "postponed",
                "reason": "flood",
                "voting_opens_at": (dates["voting_opens_at"] - timedelta(hours=1)).isoformat(),  # before national
                "voting_closes_at": postponed[1].isoformat(),
            },
            422,
        ),
    ]
    for body, status in bad:
        response = await client.post(f"{base}/{c1}:hold", json=body, headers=operator(issuer))
        assert response.status_code == status, (body, response.text)
    denied = await client.post(
        f"{base}/{c1}:hold", json={"kind": "excluded", "reason": "x"}, headers=spokesperson(issuer, C1)
    )
    assert denied.status_code == 403
    assert await rows(stack, "commune_holds", consultation.id) == 0

    excluded = await client.post(
        f"{base}/{c1}:hold", json={"kind": "excluded", "reason": "the road is cut"}, headers=operator(issuer)
    )
    assert excluded.status_code == 201, excluded.text
    window = {"voting_opens_at": postponed[0].isoformat(), "voting_closes_at": postponed[1].isoformat()}
    moved = await client.post(
        f"{base}/{c2}:hold",
        json={"kind": "postponed", "reason": "the school floods", **window},
        headers=operator(issuer),
    )
    assert moved.status_code == 201, moved.text
    twice = await client.post(f"{base}/{c1}:hold", json={"kind": "excluded", "reason": "x"}, headers=operator(issuer))
    assert (twice.status_code, twice.json()["code"]) == (409, "commune_already_held")

    listed = (await client.get(f"/v1/consultations/{consultation.id}/holds")).json()["items"]
    assert {(h["commune_id"], h["kind"], h["reason"]) for h in listed} == {
        (str(c1), "excluded", "the road is cut"),
        (str(c2), "postponed", "the school floods"),
    }
    assert all(h["held_by"] and h["held_at"] for h in listed)
    async with stack.consultations.runtime.db.transaction() as session:
        windows = await voting_windows(session, _id(consultation))
    assert windows == {c1: None, c2: VotingWindow(*postponed)}

    stack.clock.set(dates["voting_opens_at"])
    candidate_1, candidate_2 = consultation.candidates[C1][0], consultation.candidates[C2][0]
    refused = await vote(stack, issuer, consultation, C1, candidate_1, c1_voter)
    assert (refused.status_code, refused.json()["code"]) == (409, "commune_excluded")
    waiting = await vote(stack, issuer, consultation, C2, candidate_2, c2_voter)
    assert (waiting.status_code, waiting.json()["code"]) == (409, "consultation_not_in_voting")
    # A hold is decided before the commune's voting opens.
    too_late = await client.post(
        f"{base}/{c3}:hold", json={"kind": "excluded", "reason": "x"}, headers=operator(issuer)
    )
    assert (too_late.status_code, too_late.json()["code"]) == (409, "voting_already_open")
    assert await rows(stack, "participations", consultation.id) == 0

    stack.clock.set(postponed[0])
    assert (await vote(stack, issuer, consultation, C2, candidate_2, c2_voter)).status_code == 201
    still = await vote(stack, issuer, consultation, C1, candidate_1, c1_voter)
    assert still.json()["code"] == "commune_excluded"


async def test_candidates_keep_the_declared_rules_and_bad_ones_write_nothing(stack: Stack, issuer: TestIssuer) -> None:
    consultation = await open_consultation(stack, issuer, max_candidates=2, funds_per_commune=500_000)
    bad_fields: list[tuple[dict[str, Any], int, str | None]] = [
        ({"estimated_cost": 500_001}, 422, "cost_exceeds_funds"),
        ({"currency": "EUR"}, 422, "currency_mismatch"),
        ({"category": "spaceflight"}, 422, None),
        ({"estimated_cost": 0}, 422, None),
        ({"category": None}, 422, None),
    ]
    for fields, status, code in bad_fields:
        response = await add_candidate(stack, issuer, consultation, C1, 1, **fields)
        assert response.status_code == status, (fields, response.text)
        if code:
            assert response.json()["code"] == code
    too_far = await add_candidate(stack, issuer, consultation, C1, 3)
    assert (too_far.status_code, too_far.json()["code"]) == (422, "too_many_candidates")
    assert await rows(stack, "candidates", consultation.id) == 0
    ok = await add_candidate(stack, issuer, consultation, C1, 1, category="health", estimated_cost=500_000)
    assert ok.status_code == 201, ok.text
    body = ok.json()
    assert (body["category"], body["estimated_cost"], body["currency"]) == ("health", 500_000, "USD")
    assert body["registered_at"]
