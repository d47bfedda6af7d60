"""The ledger against real PostgreSQL: idempotency, refusals that write nothing, the database's
own guards, and concurrent writers that must neither overdraw nor deadlock."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError

from comuna_funding.domain import ledger, postings
from comuna_funding.domain.ledger import NewTransfer
from comuna_funding.storage import ledger_store
from comuna_platform.db import Database
from comuna_platform.errors import Conflict, FailedPrecondition, InvalidInput, NotFound, ProblemError
from tests.funding.helpers import account, funded_earmark, open_accounts, post, spec, transfer

pytestmark = pytest.mark.asyncio


async def assert_sound(db: Database) -> None:
    """The auditor: every account's totals equal its transfers, and every currency balances."""
    async with db.transaction() as session:
        assert await ledger.audit(session) == []
        totals = await ledger.ledger_totals(session)
    assert totals and all(t.balanced for t in totals), totals


async def transfer_exists(db: Database, transfer_id: uuid.UUID) -> bool:
    async with db.transaction() as session:
        return bool(await ledger_store.transfers_by_ids(session, [transfer_id]))


async def test_a_transfer_moves_money_on_both_sides(db: Database) -> None:
    source, earmark = await funded_earmark(db, 10_000)
    commune = (await open_accounts(db, spec("commune")))[0]
    [outcome] = await post(db, transfer(earmark, commune, 2_500, code="tranche_disbursement", reference="m1"))
    assert outcome.status == "created"
    assert outcome.transfer.amount == 2_500 and outcome.transfer.code == "tranche_disbursement"
    assert (await account(db, source.id)).debits_posted == 10_000
    moved = await account(db, earmark.id)
    assert (moved.credits_posted, moved.debits_posted) == (10_000, 2_500)
    assert (await account(db, commune.id)).credits_posted == 2_500
    await assert_sound(db)


async def test_same_id_and_body_returns_the_stored_transfer_and_posts_once(db: Database) -> None:
    _, earmark = await funded_earmark(db, 1_000)
    commune = (await open_accounts(db, spec()))[0]
    request = transfer(earmark, commune, 400, reference="retry me")
    [first] = await post(db, request)
    [again] = await post(db, request)
    [third] = await post(db, request)
    assert (first.status, again.status, third.status) == ("created", "exists", "exists")
    assert again.transfer == first.transfer
    assert (await account(db, commune.id)).credits_posted == 400
    assert (await account(db, earmark.id)).debits_posted == 400
    await assert_sound(db)


async def test_retry_after_the_account_was_drained_still_answers_exists(db: Database) -> None:
    _, earmark = await funded_earmark(db, 1_000)
    commune = (await open_accounts(db, spec()))[0]
    request = transfer(earmark, commune, 1_000)
    await post(db, request)
    # The earmark is empty now; a resend must be recognised, not refused as an overdraft.
    [again] = await post(db, request)
    assert again.status == "exists"


@pytest.mark.parametrize("field", ["amount", "credit_account_id", "debit_account_id", "code", "reference"])
async def test_same_id_with_a_different_body_is_a_conflict(db: Database, field: str) -> None:
    _, earmark = await funded_earmark(db, 1_000)
    commune, other = await open_accounts(db, spec(), spec())
    original = transfer(earmark, commune, 300, reference="original")
    await post(db, original)
    changes: dict[str, dict[str, Any]] = {
        "amount": {"amount": 301},
        "credit_account_id": {"credit_account_id": other.id},
        "debit_account_id": {"debit_account_id": other.id, "credit_account_id": earmark.id},
        "code": {"code": "other_code"},
        "reference": {"reference": "modified"},
    }
    tampered = replace(original, **changes[field])
    with pytest.raises(Conflict) as raised:
        await post(db, tampered)
    assert raised.value.code == "transfer_id_reused" and raised.value.status == 409
    assert field in raised.value.extra["differs"]
    assert (await account(db, commune.id)).credits_posted == 300
    assert (await account(db, other.id)).credits_posted == 0
    await assert_sound(db)


async def test_an_overdraft_of_a_flagged_account_is_refused_and_writes_nothing(db: Database) -> None:
    _, earmark = await funded_earmark(db, 1_000)
    commune = (await open_accounts(db, spec()))[0]
    request = transfer(earmark, commune, 1_001)
    with pytest.raises(FailedPrecondition) as raised:
        await post(db, request)
    assert raised.value.code == "exceeds_credits"
    assert not await transfer_exists(db, request.id)
    assert (await account(db, earmark.id)).debits_posted == 0
    assert (await account(db, commune.id)).credits_posted == 0
    # The refused id stays free: the same id may be used later for a valid transfer.
    [later] = await post(db, replace(request, amount=1_000))
    assert later.status == "created"


async def test_credits_must_not_exceed_debits(db: Database) -> None:
    payable, other = await open_accounts(db, spec(limit_credits=True), spec())
    with pytest.raises(FailedPrecondition) as raised:
        await post(db, transfer(other, payable, 1))
    assert raised.value.code == "exceeds_debits"
    await post(db, transfer(payable, other, 50))
    await post(db, transfer(other, payable, 50))
    assert (await account(db, payable.id)).credits_posted == 50


@pytest.mark.parametrize(
    ("make", "error", "code"),
    [
        (lambda a, b: transfer(a, b, 0), InvalidInput, "amount_must_be_positive"),
        (lambda a, b: transfer(a, b, -5), InvalidInput, "amount_must_be_positive"),
        (lambda a, b: transfer(a, a, 5), InvalidInput, "accounts_must_be_different"),
        (lambda a, b: replace(transfer(a, b, 5), currency="usd"), InvalidInput, "currency_invalid"),
        (lambda a, b: replace(transfer(a, b, 5), currency="EUR"), InvalidInput, "currency_mismatch"),
        (lambda a, b: transfer(a, b, 5, code="Bad Code"), InvalidInput, "transfer_code_invalid"),
        (lambda a, b: transfer(a, b, 5, reference="x" * 501), InvalidInput, "reference_too_long"),
        (lambda a, b: replace(transfer(a, b, 5), credit_account_id=uuid.uuid4()), NotFound, "credit_account_not_found"),
        (lambda a, b: replace(transfer(a, b, 5), debit_account_id=uuid.uuid4()), NotFound, "debit_account_not_found"),
    ],
)
async def test_invalid_transfers_are_refused_with_a_stable_code(
    db: Database, make: object, error: type[ProblemError], code: str
) -> None:
    a, b = await open_accounts(db, spec(), spec())
    request = make(a, b)  # type: ignore[operator]
    with pytest.raises(error) as raised:
        await post(db, request)
    assert raised.value.code == code
    assert not await transfer_exists(db, request.id)


async def test_a_batch_is_all_or_nothing(db: Database) -> None:
    _, earmark = await funded_earmark(db, 100)
    commune = (await open_accounts(db, spec()))[0]
    first, second = transfer(earmark, commune, 60), transfer(earmark, commune, 60)
    with pytest.raises(FailedPrecondition):
        await post(db, first, second)
    assert not await transfer_exists(db, first.id)
    assert (await account(db, earmark.id)).debits_posted == 0
    [ok] = await post(db, first)
    assert ok.status == "created"


async def test_a_refusal_leaves_the_callers_transaction_usable(db: Database) -> None:
    _, earmark = await funded_earmark(db, 100)
    commune = (await open_accounts(db, spec()))[0]
    good = transfer(earmark, commune, 40)
    async with db.transaction() as session:
        with pytest.raises(FailedPrecondition):
            await ledger.create_transfer(session, transfer(earmark, commune, 1_000))
        assert (await ledger.create_transfer(session, good)).status == "created"
    assert (await account(db, commune.id)).credits_posted == 40


async def test_account_keys_cannot_be_reused_with_other_properties(db: Database) -> None:
    flagged = spec("commitment", limit_debits=True)
    await open_accounts(db, flagged)
    assert (await open_accounts(db, flagged))[0].debits_must_not_exceed_credits
    with pytest.raises(Conflict) as raised:
        await open_accounts(db, ledger.AccountSpec(key=flagged.key, currency="USD", kind="commitment"))
    assert raised.value.code == "account_key_reused"
    with pytest.raises(InvalidInput):
        await open_accounts(db, spec(limit_debits=True, limit_credits=True))


# --- the database's own guards --------------------------------------------------------------


async def _raw(db: Database, sql: str, **params: object) -> None:
    async with db.transaction() as session:
        await session.execute(text(sql), params)


async def test_the_database_refuses_to_update_delete_or_truncate_transfers(db: Database) -> None:
    _, earmark = await funded_earmark(db, 500)
    commune = (await open_accounts(db, spec()))[0]
    [done] = await post(db, transfer(earmark, commune, 200))
    tid = done.transfer.id
    for sql in (
        "UPDATE transfers SET amount = 1 WHERE id = :id",
        "UPDATE transfers SET reference = 'rewritten' WHERE id = :id",
        "DELETE FROM transfers WHERE id = :id",
    ):
        with pytest.raises(DBAPIError, match="immutable"):
            await _raw(db, sql, id=tid)
    with pytest.raises(DBAPIError, match="immutable"):
        await _raw(db, "TRUNCATE transfers CASCADE")
    async with db.transaction() as session:
        assert (await ledger_store.transfers_by_ids(session, [tid]))[tid] == done.transfer


async def test_the_database_refuses_overdrafts_and_unbalanced_postings(db: Database) -> None:
    source, earmark = await funded_earmark(db, 500)
    # Overdraw the flagged account directly, keeping debits = credits overall.
    with pytest.raises(IntegrityError, match="ck_accounts_debits_within_credits"):
        await _raw(db, "UPDATE accounts SET debits_posted = debits_posted + 501 WHERE id = :e;", e=earmark.id)
    # One-sided postings, even on an account without limits.
    with pytest.raises(IntegrityError, match="unbalanced postings"):
        await _raw(db, "UPDATE accounts SET credits_posted = credits_posted + 1 WHERE id = :s", s=source.id)
    # Totals never go down, accounts never change identity or flags, never open with money, never vanish.
    for sql in (
        "UPDATE accounts SET debits_posted = 0, credits_posted = 0 WHERE id = :s",
        "UPDATE accounts SET debits_must_not_exceed_credits = false WHERE id = :s",
        "UPDATE accounts SET currency = 'EUR' WHERE id = :s",
        "DELETE FROM accounts WHERE id = :s",
    ):
        with pytest.raises(DBAPIError):
            await _raw(db, sql, s=earmark.id)
    with pytest.raises(DBAPIError, match="zero totals"):
        await _raw(
            db,
            "INSERT INTO accounts (id, key, currency, kind, credits_posted) VALUES (:id, :key, 'USD', 'source', 100)",
            id=uuid.uuid4(),
            key=f"forged:{uuid.uuid4()}",
        )
    # A transfer whose currency differs from its accounts' is refused by the composite keys.
    with pytest.raises(IntegrityError):
        await _raw(
            db,
            "INSERT INTO transfers (id, debit_account_id, credit_account_id, amount, currency, code) "
            "VALUES (:id, :d, :c, 1, 'EUR', 'forged')",
            id=uuid.uuid4(),
            d=source.id,
            c=earmark.id,
        )
    assert (await account(db, earmark.id)).debits_posted == 0
    await assert_sound(db)


async def test_the_database_backs_up_wrong_application_checks(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the application's limit check were broken, PostgreSQL still refuses the overdraft."""

    def no_checks(*_: object) -> None:
        return None

    _, earmark = await funded_earmark(db, 100)
    commune = (await open_accounts(db, spec()))[0]
    monkeypatch.setattr(postings, "_check_limits", no_checks)
    request = transfer(earmark, commune, 101)
    good = transfer(earmark, commune, 10)
    async with db.transaction() as session:
        with pytest.raises(FailedPrecondition) as raised:
            await ledger.create_transfer(session, request)
        assert raised.value.code == "ledger_constraint_violated"
        # The savepoint kept the surrounding transaction alive.
        await ledger.create_transfer(session, good)
    assert not await transfer_exists(db, request.id)
    assert (await account(db, earmark.id)).debits_posted == 10
    await assert_sound(db)


# --- concurrency ----------------------------------------------------------------------------


async def _attempt(db: Database, request: NewTransfer) -> str:
    try:
        [outcome] = await post(db, request)
    except ProblemError as exc:
        return exc.code
    return outcome.status


async def test_concurrent_transfers_cannot_overdraw_a_flagged_account(db: Database) -> None:
    _, earmark = await funded_earmark(db, 1_000)
    communes = await open_accounts(db, *(spec() for _ in range(5)))
    requests = [transfer(earmark, communes[i % 5], 30) for i in range(60)]
    results = await asyncio.gather(*(_attempt(db, r) for r in requests))
    assert results.count("created") == 33
    assert results.count("exceeds_credits") == 27
    drained = await account(db, earmark.id)
    assert (drained.credits_posted, drained.debits_posted) == (1_000, 990)
    assert sum([(await account(db, c.id)).credits_posted for c in communes]) == 990
    await assert_sound(db)


async def test_opposite_transfers_between_the_same_accounts_do_not_deadlock(db: Database) -> None:
    accounts = await open_accounts(db, *(spec() for _ in range(4)))
    batches = [
        [transfer(accounts[i % 4], accounts[(i + 1) % 4], 7), transfer(accounts[(i + 3) % 4], accounts[i % 4], 5)]
        for i in range(40)
    ]

    async def run(batch: list[NewTransfer]) -> None:
        await post(db, *batch)

    await asyncio.wait_for(asyncio.gather(*(run(b) for b in batches)), timeout=60)
    rows = [await account(db, a.id) for a in accounts]
    assert sum(r.debits_posted for r in rows) == sum(r.credits_posted for r in rows) == 40 * 12
    await assert_sound(db)


async def test_concurrent_resends_of_one_transfer_post_it_once(db: Database) -> None:
    _, earmark = await funded_earmark(db, 1_000)
    commune = (await open_accounts(db, spec()))[0]
    request = transfer(earmark, commune, 700)
    results = await asyncio.gather(*(_attempt(db, request) for _ in range(20)))
    assert sorted(set(results)) == ["created", "exists"] and results.count("created") == 1
    assert (await account(db, commune.id)).credits_posted == 700


async def test_concurrent_different_transfers_under_one_id_post_exactly_one(db: Database) -> None:
    _, earmark = await funded_earmark(db, 10_000)
    communes = await open_accounts(db, *(spec() for _ in range(10)))
    shared = uuid.uuid4()
    requests = [transfer(earmark, communes[i], 100 + i, transfer_id=shared) for i in range(10)]
    results = await asyncio.gather(*(_attempt(db, r) for r in requests))
    assert results.count("created") == 1
    assert results.count("transfer_id_reused") == 9
    assert (
        sum([(await account(db, c.id)).credits_posted for c in communes])
        == (await account(db, earmark.id)).debits_posted
    )
    await assert_sound(db)
