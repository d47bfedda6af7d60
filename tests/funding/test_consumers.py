"""Funding's consumers through real NATS JetStream and PostgreSQL: certified commune results become
allocations, verified milestones become disbursements (or announced refusals), and no
redelivery, duplicate or over-budget tranche ever moves money twice or too much."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import nats
import pytest
import pytest_asyncio
from nats.js import JetStreamContext
from sqlalchemy import func, select

from comuna.common.v1 import money_pb2
from comuna.consultations.v1 import events_pb2 as consultation_events
from comuna.funding.v1 import events_pb2 as funding_events
from comuna.projects.v1 import events_pb2 as project_events
from comuna_devstack.nats import EmbeddedNats
from comuna_devstack.ports import free_port
from comuna_devstack.postgres import EmbeddedPostgres
from comuna_funding.domain import allocations, ids, ledger
from comuna_funding.service import SPEC
from comuna_funding.settings import Settings
from comuna_funding.storage.models import Allocation, Disbursement, ResultSupersession
from comuna_platform.db import Database
from comuna_platform.events.streams import ensure_stream
from comuna_platform.events.tables import inbox_table, parked_table
from comuna_platform.uow import UnitOfWork
from tests.funding.conftest import MIGRATIONS
from tests.funding.helpers import drained, eventually, publish, stream_messages
from tests.support.issuer import TestIssuer
from tests.support.service import RunningService, fresh_database, running_service

pytestmark = pytest.mark.asyncio

GRANT = 1_000_000
CERTIFIED = "consultations.commune_result.certified"
VERIFIED = "projects.milestone.verified"
ALLOCATIONS_DURABLE = "funding-commune-results"
# NATS's default max_payload; every event funding publishes must stay far below it.
NATS_MAX_PAYLOAD = 1024 * 1024


@dataclass(frozen=True)
class Winner:
    commune_id: str
    commune_code: str
    candidate_id: str
    title: str


def commune_results(
    consultation_id: str, winners: list[Winner], *, extra: Sequence[Any] = ()
) -> list[consultation_events.CommuneResultCertified]:
    """What consultations emits on certification: one event per commune (`extra` are raw CommuneResults)."""
    communes = [
        consultation_events.CommuneResult(
            commune_id=w.commune_id,
            commune_code=w.commune_code,
            commune_name=w.commune_code,
            ballots=10,
            winner_candidate_id=w.candidate_id,
            candidates=[
                consultation_events.CandidateResult(candidate_id=w.candidate_id, title=w.title, votes=7, rank=1),
                consultation_events.CandidateResult(candidate_id=str(uuid.uuid4()), title="Otro", votes=3, rank=2),
            ],
        )
        for w in winners
    ]
    return [
        consultation_events.CommuneResultCertified(
            consultation_id=consultation_id, consultation_code="2025-Q4", result=result
        )
        for result in [*communes, *extra]
    ]


async def publish_all(js: JetStreamContext, messages: Sequence[Any], **kwargs: Any) -> list[uuid.UUID]:
    return [await publish(js, CERTIFIED, m, **kwargs) for m in messages]


def winners(n: int) -> list[Winner]:
    return [Winner(str(uuid.uuid4()), f"VE.01.01.C{i:04d}", str(uuid.uuid4()), f"Proyecto {i}") for i in range(n)]


async def allocations_of(service: RunningService, consultation_id: str) -> list[dict[str, Any]]:
    response = await service.client.get("/v1/allocations", params={"consultation_id": consultation_id})
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def get_json(service: RunningService, path: str, **params: Any) -> Any:
    response = await service.client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def allocation_events(js: JetStreamContext, consultation_id: str) -> list[funding_events.AllocationCreated]:
    found = await stream_messages(js, "FUNDING", "funding.allocation.created", funding_events.AllocationCreated)
    return [m for _, m in found if m.consultation_id == consultation_id]


async def tranche_events(js: JetStreamContext, milestone_id: str) -> list[funding_events.TrancheDisbursed]:
    found = await stream_messages(js, "FUNDING", "funding.tranche.disbursed", funding_events.TrancheDisbursed)
    return [m for _, m in found if m.milestone_id == milestone_id]


async def rejection_events(
    js: JetStreamContext, milestone_id: str
) -> list[tuple[dict[str, str], funding_events.TrancheRejected]]:
    found = await stream_messages(js, "FUNDING", "funding.tranche.rejected", funding_events.TrancheRejected)
    return [(headers, m) for headers, m in found if m.milestone_id == milestone_id]


async def assert_balanced(service: RunningService) -> None:
    totals = await get_json(service, "/v1/ledger/totals")
    assert totals["balanced"] and totals["items"], totals


async def certify(
    js: JetStreamContext, service: RunningService, consultation_id: str, chosen: list[Winner], **kwargs: Any
) -> list[dict[str, Any]]:
    await publish_all(js, commune_results(consultation_id, chosen, **kwargs))
    return await eventually(lambda: _complete(service, consultation_id, len(chosen)), "allocations to appear")


async def _complete(service: RunningService, consultation_id: str, n: int) -> list[dict[str, Any]] | None:
    rows = await allocations_of(service, consultation_id)
    return rows if len(rows) >= n else None


# --- certified commune results -> allocations -------------------------------------------------


async def test_certified_commune_results_fund_each_winner_once(funding: RunningService, js: JetStreamContext) -> None:
    consultation_id = str(uuid.uuid4())
    chosen = winners(3)
    no_winner = consultation_events.CommuneResult(
        commune_id=str(uuid.uuid4()), commune_code="VE.01.01.C9999", ballots=0
    )
    malformed = consultation_events.CommuneResult(
        commune_id="not-a-uuid", commune_code="VE.01.01.C9998", winner_candidate_id=str(uuid.uuid4())
    )
    messages = commune_results(consultation_id, chosen, extra=[no_winner, malformed])
    event_ids = await publish_all(js, messages)
    rows = await eventually(lambda: _complete(funding, consultation_id, 3), "allocations to appear")

    by_commune = {row["commune_id"]: row for row in rows}
    assert set(by_commune) == {w.commune_id for w in chosen}
    for w in chosen:
        row = by_commune[w.commune_id]
        assert (row["amount_minor"], row["currency"], row["funding_source"]) == (GRANT, "USD", "national")
        assert (row["commune_code"], row["candidate_id"], row["title"]) == (w.commune_code, w.candidate_id, w.title)
        assert (row["disbursed_minor"], row["remaining_minor"]) == (0, GRANT)
        # Deterministic ids: a replay can only ever name the same allocation and transfer.
        key = (uuid.UUID(consultation_id), uuid.UUID(w.commune_id), "national")
        assert row["id"] == str(ids.allocation_id_for(*key))
        assert row["transfer_id"] == str(ids.allocation_transfer_id_for(*key))
        earmark = await get_json(funding, f"/v1/accounts/{row['account_id']}")
        assert earmark["key"] == f"allocation:{row['id']}"
        assert earmark["flags"]["debits_must_not_exceed_credits"]
        assert (earmark["credits_posted_minor"], earmark["debits_posted_minor"]) == (GRANT, 0)
        [funded] = (await get_json(funding, "/v1/transfers", account_id=row["account_id"]))["items"]
        assert funded["id"] == row["transfer_id"] and funded["code"] == "grant_allocation"
        assert funded["value"] == {"amount_minor": GRANT, "currency": "USD"}
        assert funded["payer"]["key"] == "treasury:national:USD"
        assert funded["payee"] == {"id": row["account_id"], "key": f"allocation:{row['id']}"}

    events = await eventually(
        lambda: _at_least(allocation_events(js, consultation_id), 3), "AllocationCreated on FUNDING"
    )
    assert sorted((e.commune_id, e.commune_code, e.amount.amount_minor, e.amount.currency) for e in events) == sorted(
        (w.commune_id, w.commune_code, GRANT, "USD") for w in chosen
    )
    assert {e.allocation_id for e in events} == set(by_commune[w.commune_id]["id"] for w in chosen)
    assert all(e.title and e.transfer_id and e.funding_source == "national" for e in events)

    # For every commune's event:
    # 1) the very same message again: JetStream drops it inside its duplicate window;
    # 2) the same CloudEvents id under a new Nats-Msg-Id: reaches the consumer, the inbox stops it;
    # 3) a new event id with the same content: the business key (deterministic ids) stops it.
    seconds = []
    for message, event_id in zip(messages, event_ids, strict=True):
        await publish(js, CERTIFIED, message, event_id=event_id)
        await publish(js, CERTIFIED, message, event_id=event_id, msg_id=f"redelivery-{event_id}")
        seconds.append(await publish(js, CERTIFIED, message))
    await drained(js, "CONSULTATIONS", ALLOCATIONS_DURABLE)
    async with funding.runtime.db.transaction() as session:
        seen = (
            await session.execute(
                select(func.count()).select_from(inbox_table).where(inbox_table.c.event_id.in_([*event_ids, *seconds]))
            )
        ).scalar_one()
    assert seen == 2 * len(messages)

    assert sorted(r["id"] for r in await allocations_of(funding, consultation_id)) == sorted(r["id"] for r in rows)
    for row in rows:
        earmark = await get_json(funding, f"/v1/accounts/{row['account_id']}")
        assert earmark["credits_posted_minor"] == GRANT
        assert len((await get_json(funding, "/v1/transfers", account_id=row["account_id"]))["items"]) == 1
    assert len(await allocation_events(js, consultation_id)) == 3
    await assert_balanced(funding)


async def _at_least(rows: Any, n: int) -> Any:
    found = await rows
    return found if len(found) >= n else None


async def test_a_commune_already_funded_is_not_funded_again_in_a_corrected_certification(
    funding: RunningService, js: JetStreamContext
) -> None:
    """Results of the same consultation arriving again, now with more winners, fund only the new ones."""
    consultation_id = str(uuid.uuid4())
    chosen = winners(3)
    first = await certify(js, funding, consultation_id, chosen[:2])
    rows = await certify(js, funding, consultation_id, chosen)
    assert len(rows) == 3
    assert {r["id"] for r in first} <= {r["id"] for r in rows}
    assert len(await eventually(lambda: _at_least(allocation_events(js, consultation_id), 3), "events")) == 3


async def test_a_recount_of_a_funded_commune_is_recorded_and_moves_no_money(
    funding: RunningService, js: JetStreamContext
) -> None:
    """Version 2 of a funded commune (another winner) is recorded for review, once; version 2 of a
    commune not funded yet (version 1 had no winner) funds the recount's winner."""
    consultation_id = str(uuid.uuid4())
    funded, unfunded = winners(2)
    [allocation] = await certify(js, funding, consultation_id, [funded])
    other = str(uuid.uuid4())

    def recount(w: Winner, winner_candidate_id: str) -> consultation_events.CommuneResultCertified:
        result = consultation_events.CommuneResult(
            commune_id=w.commune_id,
            commune_code=w.commune_code,
            ballots=12,
            winner_candidate_id=winner_candidate_id,
            candidates=[consultation_events.CandidateResult(candidate_id=winner_candidate_id, title="Otro", rank=1)],
            version=2,
            supersedes_version=1,
            recount_reason="acta de la mesa 3 recibida tarde",
        )
        return consultation_events.CommuneResultCertified(consultation_id=consultation_id, result=result)

    for _ in range(2):  # a replay under a new event id records nothing more
        await publish(js, CERTIFIED, recount(funded, other))
    await publish(js, CERTIFIED, recount(unfunded, unfunded.candidate_id))
    rows = await eventually(lambda: _complete(funding, consultation_id, 2), "the recount's winner to be funded")
    await drained(js, "CONSULTATIONS", ALLOCATIONS_DURABLE)

    assert {(r["commune_id"], r["candidate_id"]) for r in rows} == {
        (funded.commune_id, funded.candidate_id),
        (unfunded.commune_id, unfunded.candidate_id),
    }
    async with funding.runtime.db.transaction() as session:
        recorded = (await session.execute(select(ResultSupersession))).scalars().all()
    mine = [r for r in recorded if str(r.consultation_id) == consultation_id]
    assert [
        (str(r.allocation_id), r.version, r.supersedes, str(r.funded_candidate_id), str(r.new_winner_candidate_id))
        for r in mine
    ] == [(allocation["id"], 2, 1, funded.candidate_id, other)]
    assert mine[0].winner_changed and mine[0].reason == "acta de la mesa 3 recibida tarde"
    earmark = await get_json(funding, f"/v1/accounts/{allocation['account_id']}")
    assert earmark["credits_posted_minor"] == GRANT
    await assert_balanced(funding)


async def allocation_count(service: RunningService, consultation_id: str) -> int:
    async with service.runtime.db.transaction() as session:
        return int(
            (
                await session.execute(
                    select(func.count())
                    .select_from(Allocation)
                    .where(Allocation.consultation_id == uuid.UUID(consultation_id))
                )
            ).scalar_one()
        )


@pytest_asyncio.fixture
async def isolated(
    embedded_postgres: EmbeddedPostgres, issuer: TestIssuer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[RunningService, JetStreamContext]]:
    """Funding on its own database and NATS server: the thousands of events of a large round,
    left on the session's shared streams, would be replayed by later modules' consumers."""
    with EmbeddedNats(tmp_path_factory.mktemp("nats-funding") / "jetstream", free_port()) as server:
        nc = await nats.connect(server.url)
        context = nc.jetstream()
        for upstream in ("consultations", "projects"):
            await ensure_stream(context, upstream)
        url = fresh_database(embedded_postgres, f"funding_large_{uuid.uuid4().hex[:8]}", MIGRATIONS)
        try:
            async with running_service(SPEC, Settings, database_url=url, nats_url=server.url, issuer=issuer) as service:
                yield service, context
        finally:
            await nc.close()


async def test_a_large_certification_allocates_one_grant_per_winner(
    isolated: tuple[RunningService, JetStreamContext],
) -> None:
    """1,000 communes, as consultations emits them (one event each; the 2,000-commune certification
    itself is tested in tests/consultations): one grant per winner, none for the communes that cast
    no ballot, and every event small. About 10 ms per event, so a nationwide round takes about a
    minute, each event in its own short transaction."""
    funding, js = isolated
    consultation_id = str(uuid.uuid4())
    chosen = winners(900)
    empty = [
        consultation_events.CommuneResult(
            commune_id=str(uuid.uuid4()),
            commune_code=f"VE.02.01.C{i:04d}",
            commune_name="Sin votos",
            ballots=0,
            candidates=[
                consultation_events.CandidateResult(
                    candidate_id=str(uuid.uuid4()), title=f"Proyecto {k}", votes=0, rank=k, assembly_priority=k
                )
                for k in range(1, 8)
            ],
        )
        for i in range(100)
    ]
    messages = commune_results(consultation_id, chosen, extra=empty)
    assert len(messages) == 1_000
    assert max(m.ByteSize() for m in messages) < 16 * 1024
    await publish_all(js, messages)

    async def all_allocated() -> bool:
        return await allocation_count(funding, consultation_id) >= len(chosen)

    await eventually(all_allocated, "a grant for every winner", within=120)
    await drained(js, "CONSULTATIONS", ALLOCATIONS_DURABLE)
    async with funding.runtime.db.transaction() as session:
        funded = (
            await session.execute(
                select(Allocation.commune_id, Allocation.candidate_id).where(
                    Allocation.consultation_id == uuid.UUID(consultation_id)
                )
            )
        ).all()
    assert sorted((str(c), str(k)) for c, k in funded) == sorted((w.commune_id, w.candidate_id) for w in chosen)

    found = await stream_messages(js, "FUNDING", "funding.allocation.created", funding_events.AllocationCreated)
    mine = [m for _, m in found if m.consultation_id == consultation_id]
    assert len(mine) == len(chosen)
    assert len({m.allocation_id for m in mine}) == len(chosen)
    assert max(m.ByteSize() for m in mine) < NATS_MAX_PAYLOAD // 100
    await assert_balanced(funding)


async def test_winners_funded_by_the_former_whole_certification_are_not_funded_again(
    funding: RunningService, js: JetStreamContext
) -> None:
    """Allocations made before the upgrade (one batch per certification) and the per-commune events
    name the same deterministic ids, so a consultation seen both ways is funded once."""
    consultation_id = str(uuid.uuid4())
    chosen = winners(4)
    policy = allocations.GrantPolicy(amount_minor=GRANT, currency="USD", funding_source="national")
    async with funding.runtime.db.transaction() as session:
        before = await allocations.allocate_grants(
            UnitOfWork.of(session),
            uuid.UUID(consultation_id),
            [
                allocations.Winner(uuid.UUID(w.commune_id), w.commune_code, uuid.UUID(w.candidate_id), w.title)
                for w in chosen[:3]
            ],
            policy,
        )
    assert len(before) == 3
    await publish_all(js, commune_results(consultation_id, chosen))
    rows = await eventually(lambda: _complete(funding, consultation_id, 4), "the fourth allocation")
    await drained(js, "CONSULTATIONS", ALLOCATIONS_DURABLE)
    assert len(rows) == 4 and {uuid.UUID(r["id"]) for r in rows} >= set(before)
    for row in rows:
        assert len((await get_json(funding, "/v1/transfers", account_id=row["account_id"]))["items"]) == 1
    assert len(await eventually(lambda: _at_least(allocation_events(js, consultation_id), 4), "events")) == 4
    await assert_balanced(funding)


# --- verified milestones -> disbursements -----------------------------------------------------


def verified(
    allocation: dict[str, Any],
    amount: int,
    *,
    milestone_id: str | None = None,
    commune_id: str | None = None,
    currency: str = "USD",
    allocation_id: str | None = None,
) -> project_events.MilestoneVerified:
    return project_events.MilestoneVerified(
        project_id=str(uuid.uuid5(uuid.NAMESPACE_URL, allocation["id"])),
        milestone_id=milestone_id or str(uuid.uuid4()),
        allocation_id=allocation_id or allocation["id"],
        commune_id=commune_id or allocation["commune_id"],
        tranche=money_pb2.Money(amount_minor=amount, currency=currency),
        verified_by="overseer",
    )


async def disbursement(service: RunningService, milestone_id: str) -> Disbursement | None:
    async with service.runtime.db.transaction() as session:
        return (
            await session.execute(select(Disbursement).where(Disbursement.milestone_id == uuid.UUID(milestone_id)))
        ).scalar_one_or_none()


async def settle(
    js: JetStreamContext, service: RunningService, message: project_events.MilestoneVerified, **kwargs: Any
) -> Disbursement:
    await publish(js, VERIFIED, message, **kwargs)
    return await eventually(lambda: disbursement(service, message.milestone_id), "the disbursement")


async def commune_account(service: RunningService, commune_id: str) -> dict[str, Any] | None:
    found = (await get_json(service, "/v1/accounts", key=f"commune:{commune_id}:USD"))["items"]
    return found[0] if found else None


async def test_verified_milestones_move_tranches_and_never_beyond_the_allocation(
    funding: RunningService, js: JetStreamContext
) -> None:
    [allocation] = await certify(js, funding, str(uuid.uuid4()), winners(1))

    first = verified(allocation, 400_000)
    done = await settle(js, funding, first)
    assert (done.status, done.reason, done.amount_minor) == ("completed", None, 400_000)
    assert done.id == ids.disbursement_id_for(uuid.UUID(first.milestone_id))
    [event] = await eventually(lambda: _at_least(tranche_events(js, first.milestone_id), 1), "TrancheDisbursed")
    assert (event.allocation_id, event.commune_id, event.project_id) == (
        allocation["id"],
        allocation["commune_id"],
        first.project_id,
    )
    assert (event.amount.amount_minor, event.amount.currency) == (400_000, "USD")
    assert event.disbursement_id == str(done.id) and event.transfer_id == str(done.transfer_id)

    detail = await get_json(funding, f"/v1/allocations/{allocation['id']}")
    assert (detail["disbursed_minor"], detail["remaining_minor"]) == (400_000, 600_000)
    assert [d["status"] for d in detail["disbursements"]] == ["completed"]
    commune = await commune_account(funding, allocation["commune_id"])
    assert commune is not None and commune["kind"] == "commune" and commune["credits_posted_minor"] == 400_000
    [paid] = (await get_json(funding, "/v1/transfers", account_id=commune["id"]))["items"]
    assert paid["code"] == "tranche_disbursement" and paid["payer"]["id"] == allocation["account_id"]

    # The same milestone again under a new event id: one disbursement, money moved once.
    await publish(js, VERIFIED, first)
    await drained(js, "PROJECTS", "funding-disbursements")
    assert (await get_json(funding, f"/v1/allocations/{allocation['id']}"))["disbursed_minor"] == 400_000
    assert len(await tranche_events(js, first.milestone_id)) == 1

    # More than the 600,000 left: refused, recorded, nothing moves; the refusal is announced.
    greedy = verified(allocation, 600_001)
    refused = await settle(js, funding, greedy)
    assert (refused.status, refused.reason, refused.transfer_id) == ("rejected", "exceeds_allocation", None)
    [(headers, rejection)] = await eventually(
        lambda: _at_least(rejection_events(js, greedy.milestone_id), 1), "TrancheRejected on FUNDING"
    )
    assert (rejection.disbursement_id, rejection.allocation_id, rejection.project_id, rejection.commune_id) == (
        str(refused.id),
        allocation["id"],
        greedy.project_id,
        allocation["commune_id"],
    )
    assert (rejection.amount.amount_minor, rejection.amount.currency, rejection.reason) == (
        600_001,
        "USD",
        "exceeds_allocation",
    )
    assert headers["ce-type"] == "comuna.funding.v1.TrancheRejected" and headers["ce-subject"] == str(refused.id)
    assert headers["ce-id"] == str(ids.event_id_for("funding.tranche.rejected", refused.id))
    # The refused milestone again under a new event id: the stored refusal stands, announced once.
    await publish(js, VERIFIED, greedy)
    await drained(js, "PROJECTS", "funding-disbursements")
    assert len(await rejection_events(js, greedy.milestone_id)) == 1
    detail = await get_json(funding, f"/v1/allocations/{allocation['id']}")
    assert (detail["disbursed_minor"], detail["remaining_minor"]) == (400_000, 600_000)
    assert {(d["milestone_id"], d["status"]) for d in detail["disbursements"]} == {
        (first.milestone_id, "completed"),
        (greedy.milestone_id, "rejected"),
    }
    assert (await commune_account(funding, allocation["commune_id"]) or {})["credits_posted_minor"] == 400_000
    assert await tranche_events(js, greedy.milestone_id) == []
    assert await rejection_events(js, first.milestone_id) == []

    # Exactly what is left: paid, and the earmark is empty.
    last = await settle(js, funding, verified(allocation, 600_000))
    assert last.status == "completed"
    earmark = await get_json(funding, f"/v1/accounts/{allocation['account_id']}")
    assert earmark["balance_minor"] == 0 and earmark["debits_posted_minor"] == GRANT
    await assert_balanced(funding)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"allocation_id": str(uuid.uuid4())}, "allocation_unknown"),
        ({"allocation_id": "not-a-uuid"}, "allocation_unknown"),
        ({"commune_id": str(uuid.uuid4())}, "commune_mismatch"),
        ({"currency": "EUR"}, "currency_mismatch"),
        ({"amount": 0}, "invalid_amount"),
        ({"amount": -5}, "invalid_amount"),
    ],
)
async def test_tranches_that_cannot_be_paid_are_recorded_as_rejected(
    funding: RunningService, js: JetStreamContext, change: dict[str, Any], reason: str
) -> None:
    [allocation] = await certify(js, funding, str(uuid.uuid4()), winners(1))
    amount = change.pop("amount", 1_000)
    message = verified(allocation, amount, **change)
    refused = await settle(js, funding, message)
    assert (refused.status, refused.reason, refused.transfer_id) == ("rejected", reason, None)
    detail = await get_json(funding, f"/v1/allocations/{allocation['id']}")
    assert detail["disbursed_minor"] == 0
    assert await tranche_events(js, message.milestone_id) == []
    [(_, rejection)] = await eventually(
        lambda: _at_least(rejection_events(js, message.milestone_id), 1), "TrancheRejected on FUNDING"
    )
    assert (rejection.reason, rejection.disbursement_id, rejection.project_id) == (
        reason,
        str(refused.id),
        message.project_id,
    )
    # Ids that did not parse are announced empty, never as the garbage received.
    assert rejection.allocation_id == ("" if refused.allocation_id is None else str(refused.allocation_id))
    assert rejection.commune_id == str(refused.commune_id)
    assert (rejection.amount.amount_minor, rejection.amount.currency) == (amount, message.tranche.currency)


async def parked_rows(service: RunningService, event_id: uuid.UUID) -> list[dict[str, Any]] | None:
    """The parked rows of an event, or None while there is none yet."""
    async with service.runtime.db.transaction() as session:
        rows = await session.execute(select(parked_table).where(parked_table.c.event_id == event_id))
        return [dict(row) for row in rows.mappings().all()] or None


async def test_malformed_milestone_ids_are_parked_without_blocking_the_stream(
    funding: RunningService, js: JetStreamContext
) -> None:
    [allocation] = await certify(js, funding, str(uuid.uuid4()), winners(1))
    bad = verified(allocation, 1_000)
    bad.milestone_id = "not-a-uuid"
    bad_id = await publish(js, VERIFIED, bad)
    good = await settle(js, funding, verified(allocation, 1_000))
    assert good.status == "completed"
    [parked] = await eventually(lambda: parked_rows(funding, bad_id), "the malformed event to be parked")
    assert (parked["consumer"], parked["reason"], parked["deliveries"]) == ("funding-disbursements", "unprocessable", 1)
    assert "milestone_id" in parked["error"]


async def test_a_certified_result_from_anyone_but_consultations_is_parked_and_moves_no_money(
    funding: RunningService, js: JetStreamContext
) -> None:
    """A forged event (valid CloudEvents headers, made-up consultation) stamped by another source."""
    consultation_id = str(uuid.uuid4())
    [forged] = commune_results(consultation_id, winners(1))
    event_id = await publish(js, CERTIFIED, forged, source="/comuna/funding")
    [parked] = await eventually(lambda: parked_rows(funding, event_id), "the forged event to be parked")
    assert (parked["consumer"], parked["reason"]) == (ALLOCATIONS_DURABLE, "source_mismatch")
    await drained(js, "CONSULTATIONS", ALLOCATIONS_DURABLE)
    assert await allocation_count(funding, consultation_id) == 0
    assert await allocation_events(js, consultation_id) == []


# --- two replicas racing over the same events -------------------------------------------------


@pytest_asyncio.fixture
async def replica(
    funding_db_url: str, funding: RunningService, embedded_nats: Any, issuer: TestIssuer
) -> AsyncIterator[RunningService]:
    """A second instance on the same database and durable consumers, as in a scaled deployment."""
    async with running_service(
        SPEC, Settings, database_url=funding_db_url, nats_url=embedded_nats.url, issuer=issuer
    ) as second:
        yield second


async def test_two_replicas_fed_many_copies_allocate_and_disburse_once(
    funding: RunningService, replica: RunningService, js: JetStreamContext
) -> None:
    consultation_id = str(uuid.uuid4())
    chosen = winners(5)
    messages = commune_results(consultation_id, chosen)
    for _ in range(8):
        await publish_all(js, messages)
    rows = await eventually(lambda: _complete(funding, consultation_id, 5), "allocations")
    await drained(js, "CONSULTATIONS", ALLOCATIONS_DURABLE)
    assert len(await allocations_of(funding, consultation_id)) == 5
    assert len(await allocation_events(js, consultation_id)) == 5

    # Eight copies of each of three milestones of one allocation, 300,000 each: all fit.
    target = rows[0]
    milestones = [verified(target, 300_000) for _ in range(3)]
    for _ in range(8):
        for milestone in milestones:
            await publish(js, VERIFIED, milestone)
    for milestone in milestones:
        await eventually(partial(disbursement, funding, milestone.milestone_id), "disbursement")
    await drained(js, "PROJECTS", "funding-disbursements")
    detail = await get_json(funding, f"/v1/allocations/{target['id']}")
    assert detail["disbursed_minor"] == 900_000
    assert len(detail["disbursements"]) == 3
    async with funding.runtime.db.transaction() as session:
        count = (
            await session.execute(
                select(func.count())
                .select_from(Allocation)
                .where(Allocation.consultation_id == uuid.UUID(consultation_id))
            )
        ).scalar_one()
    assert count == 5
    await assert_balanced(funding)


async def test_a_nationwide_batch_is_allocated_quickly_and_only_once(db: Database) -> None:
    """5,336 communes (the reported scale of a round) allocated in one batch by the domain
    (the consumer passes one winner per event; bulk callers may pass all): fast, and a replay
    allocates nothing."""
    consultation_id = uuid.uuid4()
    chosen = [
        allocations.Winner(uuid.uuid4(), f"VE.01.01.C{i:04d}", uuid.uuid4(), f"Proyecto {i}") for i in range(5_336)
    ]
    policy = allocations.GrantPolicy(amount_minor=GRANT, currency="USD", funding_source="national")
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with db.transaction() as session:
        created = await allocations.allocate_grants(UnitOfWork.of(session), consultation_id, chosen, policy)
    elapsed = loop.time() - started
    assert len(created) == 5_336
    assert elapsed < 20, f"allocating a national round took {elapsed:.1f}s"
    async with db.transaction() as session:
        assert await allocations.allocate_grants(UnitOfWork.of(session), consultation_id, chosen, policy) == []
        assert await ledger.audit(session) == []
        assert all(t.balanced for t in await ledger.ledger_totals(session))
        count = (
            await session.execute(
                select(func.count()).select_from(Allocation).where(Allocation.consultation_id == consultation_id)
            )
        ).scalar_one()
    assert count == 5_336
