"""The FundingSource contract end to end: funding's RemoteSource against the reference
treasury running as its own process. Each call is idempotent by reservation id; refusals,
conflicts and bad input have their own exceptions; concurrent reserves never overdraw."""

from __future__ import annotations

import asyncio
import json
import uuid

import grpc
import pytest

from comuna.common.v1.money_pb2 import Money
from comuna.funding.source.v1 import source_pb2 as pb
from comuna.funding.source.v1 import source_pb2_grpc
from comuna_funding.sources import (
    CancelOutcome,
    ConflictKind,
    MovementKind,
    RemoteSource,
    SourceConflict,
    SourceFunds,
    SourceInvalidRequest,
    SourceMovement,
    SourceNotFound,
    SourceRefused,
    SourceUnavailable,
    UnavailableCause,
)
from tests.treasury.conftest import CURRENCY, TERRITORIES, TOKEN, TreasuryProcess, run

pytestmark = pytest.mark.asyncio


def rid() -> uuid.UUID:
    return uuid.uuid4()


def delta(before: SourceFunds, after: SourceFunds) -> tuple[int, int, int]:
    return (
        after.available_minor - before.available_minor,
        after.reserved_minor - before.reserved_minor,
        after.committed_minor - before.committed_minor,
    )


async def movements_of(source: RemoteSource, reservation_id: uuid.UUID) -> list[SourceMovement]:
    found: list[SourceMovement] = []
    cursor = ""
    while True:
        page = await source.statement(cursor, 1000)
        found += [m for m in page.movements if m.reservation_id == reservation_id]
        if not page.has_more:
            return found
        cursor = page.next_cursor


async def test_describe_reports_the_treasury_configuration(source: RemoteSource) -> None:
    described = await source.describe()
    assert described.name == "Tesorería de prueba"
    assert described.currency == CURRENCY
    assert described.territory_ids == TERRITORIES
    assert described.contract_version == 1


async def test_check_funds_sums_to_what_was_deposited(source: RemoteSource, treasury: TreasuryProcess) -> None:
    funds = await source.check_funds()
    assert funds.currency == CURRENCY and funds.at is not None
    balance = run("balance", "--database-url", treasury.database_url)
    assert balance.returncode == 0, balance.stderr
    assert json.loads(balance.stdout) == {
        "currency": CURRENCY,
        "available_minor": funds.available_minor,
        "reserved_minor": funds.reserved_minor,
        "committed_minor": funds.committed_minor,
    }
    page = await source.statement("", 1000)
    deposits = sum(m.amount_minor for m in page.movements if m.kind == MovementKind.DEPOSIT)
    assert funds.available_minor + funds.reserved_minor + funds.committed_minor == deposits


async def test_reserve_then_commit_each_retried_takes_effect_once(source: RemoteSource) -> None:
    before = await source.check_funds()
    reservation = rid()
    commune = uuid.uuid4()
    held = await source.reserve(reservation, 2_500, CURRENCY, "project A", commune_id=commune)
    assert (held.reservation_id, held.amount_minor, held.currency) == (reservation, 2_500, CURRENCY)
    assert await source.reserve(reservation, 2_500, CURRENCY, "project A", commune_id=commune) == held
    assert delta(before, await source.check_funds()) == (-2_500, 2_500, 0)

    committed = await source.commit(reservation)
    assert (committed.committed_minor, committed.released_minor, committed.currency) == (2_500, 0, CURRENCY)
    assert await source.commit(reservation) == committed
    # "The whole amount" and "no amount" are the same body.
    assert await source.commit(reservation, 2_500, CURRENCY) == committed
    # A Reserve retried after the commit answers what it answered: RESERVED, no second hold.
    assert await source.reserve(reservation, 2_500, CURRENCY, "project A", commune_id=commune) == held
    assert delta(before, await source.check_funds()) == (-2_500, 0, 2_500)
    kinds = [m.kind for m in await movements_of(source, reservation)]
    assert kinds == [MovementKind.RESERVE, MovementKind.COMMIT]


async def test_a_partial_commit_releases_the_rest(source: RemoteSource) -> None:
    before = await source.check_funds()
    reservation = rid()
    await source.reserve(reservation, 1_000, CURRENCY, "partial")
    committed = await source.commit(reservation, 600, CURRENCY)
    assert (committed.committed_minor, committed.released_minor) == (600, 400)
    assert await source.commit(reservation, 600, CURRENCY) == committed
    assert delta(before, await source.check_funds()) == (-600, 0, 600)
    for other in (None, 700):
        with pytest.raises(SourceConflict) as conflict:
            await source.commit(reservation, other, CURRENCY if other else None)
        assert conflict.value.kind == ConflictKind.ALREADY_EXISTS
    with pytest.raises(SourceInvalidRequest):
        await source.commit(reservation, 600, "USD")
    commit = [m for m in await movements_of(source, reservation) if m.kind == MovementKind.COMMIT]
    assert [(m.amount_minor, m.released_minor) for m in commit] == [(600, 400)]


async def test_cancel_releases_once_and_closes_the_reservation(source: RemoteSource) -> None:
    before = await source.check_funds()
    reservation = rid()
    await source.reserve(reservation, 3_000, CURRENCY, "to cancel")
    cancelled = await source.cancel(reservation)
    assert (cancelled.outcome, cancelled.released_minor) == (CancelOutcome.CANCELLED, 3_000)
    assert await source.cancel(reservation) == cancelled
    assert delta(before, await source.check_funds()) == (0, 0, 0)
    with pytest.raises(SourceConflict) as after_cancel:
        await source.commit(reservation)
    assert after_cancel.value.kind == ConflictKind.FAILED_PRECONDITION
    assert [m.kind for m in await movements_of(source, reservation)] == [MovementKind.RESERVE, MovementKind.CANCEL]


async def test_cancel_after_commit_is_a_failed_precondition(source: RemoteSource) -> None:
    reservation = rid()
    await source.reserve(reservation, 10, CURRENCY, "x")
    await source.commit(reservation)
    with pytest.raises(SourceConflict) as refused:
        await source.cancel(reservation)
    assert refused.value.kind == ConflictKind.FAILED_PRECONDITION


async def test_a_reservation_id_reused_with_another_body_is_refused(source: RemoteSource) -> None:
    reservation = rid()
    await source.reserve(reservation, 500, CURRENCY, "the first body", project_id="p-1")
    before = await source.check_funds()
    others = [(501, "the first body", "p-1"), (500, "another", "p-1"), (500, "the first body", None)]
    for amount, reference, project in others:
        with pytest.raises(SourceConflict) as conflict:
            await source.reserve(reservation, amount, CURRENCY, reference, project_id=project)
        assert conflict.value.kind == ConflictKind.ALREADY_EXISTS
    assert delta(before, await source.check_funds()) == (0, 0, 0)
    await source.cancel(reservation)


async def test_insufficient_funds_is_a_refusal_that_stays_one(source: RemoteSource, treasury: TreasuryProcess) -> None:
    before = await source.check_funds()
    reservation = rid()
    too_much = before.available_minor + 1
    with pytest.raises(SourceRefused) as refused:
        await source.reserve(reservation, too_much, CURRENCY, "too much")
    assert refused.value.reason == "insufficient_funds" and refused.value.reservation_id == reservation
    # Funds arrive; the same reservation retried is still refused (a new attempt takes a new id).
    deposited = run("deposit", "--database-url", treasury.database_url, "--amount-minor", "5", "--reference", "more")
    assert deposited.returncode == 0, deposited.stderr
    with pytest.raises(SourceRefused) as again:
        await source.reserve(reservation, too_much, CURRENCY, "too much")
    assert (again.value.reason, again.value.at) == (refused.value.reason, refused.value.at)
    # Cancelling a refused reservation is safe and releases nothing; committing it is refused.
    cancelled = await source.cancel(reservation)
    assert (cancelled.outcome, cancelled.released_minor) == (CancelOutcome.REFUSED, 0)
    with pytest.raises(SourceConflict) as commit:
        await source.commit(reservation)
    assert commit.value.kind == ConflictKind.FAILED_PRECONDITION
    assert delta(before, await source.check_funds()) == (5, 0, 0)
    assert await movements_of(source, reservation) == []


async def test_another_currency_is_refused(source: RemoteSource) -> None:
    with pytest.raises(SourceRefused) as refused:
        await source.reserve(rid(), 100, "USD", "dollars")
    assert refused.value.reason == "currency_mismatch"


async def test_unknown_reservations_are_not_found(source: RemoteSource) -> None:
    with pytest.raises(SourceNotFound):
        await source.commit(rid())
    with pytest.raises(SourceNotFound):
        await source.cancel(rid())


@pytest.mark.parametrize(
    ("amount", "reference"), [(0, "zero"), (-5, "negative"), (10, "bad\x00text"), (10, "new\nline"), (10, "x" * 501)]
)
async def test_bad_input_is_an_invalid_request(source: RemoteSource, amount: int, reference: str) -> None:
    before = await source.check_funds()
    with pytest.raises(SourceInvalidRequest):
        await source.reserve(rid(), amount, CURRENCY, reference)
    assert delta(before, await source.check_funds()) == (0, 0, 0)


async def test_commit_above_the_reserved_amount_is_invalid(source: RemoteSource) -> None:
    reservation = rid()
    await source.reserve(reservation, 100, CURRENCY, "small")
    with pytest.raises(SourceInvalidRequest):
        await source.commit(reservation, 101, CURRENCY)
    with pytest.raises(SourceInvalidRequest):
        await source.commit(reservation, 0, CURRENCY)
    await source.cancel(reservation)


async def test_malformed_ids_cursors_and_limits_are_invalid_argument(treasury: TreasuryProcess) -> None:
    metadata = (("authorization", f"Bearer {TOKEN}"),)
    async with grpc.aio.insecure_channel(treasury.target) as channel:
        stub = source_pb2_grpc.FundingSourceStub(channel)  # type: ignore[no-untyped-call]
        calls = [
            (stub.Reserve, pb.ReserveRequest(reservation_id="nope", amount=Money(amount_minor=1, currency=CURRENCY))),
            (stub.Reserve, pb.ReserveRequest(reservation_id=str(rid()))),  # no amount
            (stub.Reserve, pb.ReserveRequest(reservation_id=str(rid()), amount=Money(amount_minor=1, currency="ves"))),
            (stub.Commit, pb.CommitRequest(reservation_id="")),
            (stub.Cancel, pb.CancelRequest(reservation_id="1234")),
            (stub.Statement, pb.StatementRequest(after_cursor="abc")),
            (stub.Statement, pb.StatementRequest(after_cursor="-1")),
            (stub.Statement, pb.StatementRequest(limit=-1)),
        ]
        for method, request in calls:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await method(request, metadata=metadata)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (request, refused.value.details())


async def test_concurrent_reserves_never_overdraw(source: RemoteSource) -> None:
    before = await source.check_funds()
    amount = before.available_minor // 7 + 1  # at most 6 fit
    ids = [rid() for _ in range(24)]
    outcomes = await asyncio.gather(*(source.reserve(i, amount, CURRENCY, "race") for i in ids), return_exceptions=True)
    held = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, SourceRefused)]
    assert len(held) + len(refused) == len(ids), [o for o in outcomes if isinstance(o, BaseException)]
    assert len(held) == before.available_minor // amount
    assert {r.reason for r in refused} == {"insufficient_funds"}
    after = await source.check_funds()
    assert after.available_minor >= 0
    assert delta(before, after) == (-amount * len(held), amount * len(held), 0)
    # Give the money back, concurrently too; every cancel releases exactly its own hold.
    await asyncio.gather(*(source.cancel(h.reservation_id) for h in held))
    assert delta(before, await source.check_funds()) == (0, 0, 0)


async def test_statement_pages_in_order_and_can_be_polled(source: RemoteSource) -> None:
    for _ in range(3):
        await source.reserve(rid(), 1, CURRENCY, "paged")
    whole = await source.statement("", 1000)
    assert not whole.has_more and whole.movements
    assert whole.movements[0].kind == MovementKind.DEPOSIT and whole.movements[0].reservation_id is None
    paged: list[SourceMovement] = []
    cursor = ""
    while True:
        page = await source.statement(cursor, 3)
        assert len(page.movements) <= 3
        paged += page.movements
        if page.movements:
            assert page.next_cursor == page.movements[-1].cursor
        cursor = page.next_cursor
        if not page.has_more:
            break
    assert paged == list(whole.movements)
    assert [int(m.cursor) for m in paged] == sorted({int(m.cursor) for m in paged})
    assert len({m.movement_id for m in paged}) == len(paged)
    # At the end: nothing new, and the cursor stays put; a new movement shows up after it.
    idle = await source.statement(cursor, 10)
    assert (idle.movements, idle.next_cursor, idle.has_more) == ((), cursor, False)
    fresh = rid()
    await source.reserve(fresh, 7, CURRENCY, "polled")
    polled = await source.statement(cursor, 10)
    assert [(m.reservation_id, m.kind, m.amount_minor, m.reference) for m in polled.movements] == [
        (fresh, MovementKind.RESERVE, 7, "polled")
    ]
    # limit 0 is the source's default page (100), not "nothing".
    assert (await source.statement("", 0)).movements


async def test_a_wrong_or_missing_token_is_unauthenticated_and_does_nothing(
    source: RemoteSource, treasury: TreasuryProcess
) -> None:
    before = await source.check_funds()
    reservation = rid()
    for token in ("not-the-token", ""):
        async with RemoteSource(treasury.target, token, 5.0) as stranger:
            with pytest.raises(SourceUnavailable) as refused:
                await stranger.reserve(reservation, 10, CURRENCY, "intruder")
            assert refused.value.cause == UnavailableCause.UNAUTHENTICATED
            assert refused.value.misconfigured and not refused.value.outcome_unknown
            with pytest.raises(SourceUnavailable):
                await stranger.describe()
    async with grpc.aio.insecure_channel(treasury.target) as channel:
        stub = source_pb2_grpc.FundingSourceStub(channel)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.aio.AioRpcError) as bare:
            await stub.CheckFunds(pb.CheckFundsRequest())  # no metadata at all
        assert bare.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert delta(before, await source.check_funds()) == (0, 0, 0)
    with pytest.raises(SourceNotFound):
        await source.cancel(reservation)
    assert TOKEN not in treasury.log()


async def test_an_unreachable_source_is_unavailable() -> None:
    from comuna_devstack.ports import free_port

    async with RemoteSource(f"127.0.0.1:{free_port()}", TOKEN, 2.0) as nowhere:
        with pytest.raises(SourceUnavailable) as down:
            await nowhere.check_funds()
    assert down.value.cause in (UnavailableCause.UNAVAILABLE, UnavailableCause.DEADLINE_EXCEEDED)
    assert down.value.outcome_unknown
