"""Property-based tests of the ledger against real PostgreSQL, in the spirit of TigerBeetle's
simulator: random accounts with random flags, random sequences of transfers (valid, overdrawing,
overflowing, mismatched, resent, id-reusing), and an auditor that replays the same sequence on
an independent in-memory model and compares every outcome and every balance.

Hypothesis drives synchronous test functions, so each module runs its own event loop (an
`asyncio.Runner`) with its own connection pool, separate from pytest-asyncio's loop.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from comuna_devstack.postgres import EmbeddedPostgres
from comuna_funding.domain import ledger
from comuna_funding.domain.ledger import MAX_AMOUNT, AccountSpec, NewTransfer
from comuna_funding.storage import ledger_store
from comuna_platform.db import Database
from comuna_platform.errors import ProblemError
from tests.funding.conftest import MIGRATIONS
from tests.support.service import fresh_database

FLAGS = [(False, False), (True, False), (False, True)]
CURRENCIES = ["USD", "EUR"]


@dataclass
class Harness:
    runner: asyncio.Runner
    db: Database

    def run(self, coro: Any) -> Any:
        return self.runner.run(coro)


@pytest.fixture(scope="module")
def harness(embedded_postgres: EmbeddedPostgres) -> Iterator[Harness]:
    url = fresh_database(embedded_postgres, f"funding_prop_{uuid.uuid4().hex[:12]}", MIGRATIONS)
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        db = Database(url, pool_size=5)
        try:
            yield Harness(runner, db)
        finally:
            runner.run(db.dispose())


# --- the model (the auditor's expectation) --------------------------------------------------


@dataclass
class ModelAccount:
    currency: str
    limit_debits: bool
    limit_credits: bool
    debits: int = 0
    credits: int = 0


@dataclass
class Model:
    accounts: dict[uuid.UUID, ModelAccount]
    transfers: dict[uuid.UUID, NewTransfer] = field(default_factory=dict)

    def apply(self, t: NewTransfer) -> str:
        """The outcome TigerBeetle's rules give, checked in the ledger's documented order."""
        if not 0 < t.amount <= MAX_AMOUNT:
            return "amount_must_be_positive"
        if t.debit_account_id == t.credit_account_id:
            return "accounts_must_be_different"
        stored = self.transfers.get(t.id)
        if stored is not None:
            return "exists" if stored == t else "transfer_id_reused"
        debit, credit = self.accounts[t.debit_account_id], self.accounts[t.credit_account_id]
        if t.currency != debit.currency or t.currency != credit.currency:
            return "currency_mismatch"
        if debit.debits + t.amount > MAX_AMOUNT:
            return "overflows_debits_posted"
        if credit.credits + t.amount > MAX_AMOUNT:
            return "overflows_credits_posted"
        if debit.limit_debits and debit.debits + t.amount > debit.credits:
            return "exceeds_credits"
        if credit.limit_credits and credit.credits + t.amount > credit.debits:
            return "exceeds_debits"
        debit.debits += t.amount
        credit.credits += t.amount
        self.transfers[t.id] = t
        return "created"


# --- strategies -----------------------------------------------------------------------------

# Weighted by repetition: mostly valid, ordinary transfers between unlimited or limited
# accounts, with a steady share of invalid, overflowing, resent and id-reusing ones.
FLAG_CHOICES = [FLAGS[0], FLAGS[0], FLAGS[1], FLAGS[2]]
AMOUNT_KINDS = ["small"] * 8 + ["nonpositive", "huge"]
OP_KINDS = ["new"] * 7 + ["resend", "reuse_id", "same_account"]


def amount_of(kind: str, small: int, big: int) -> int:
    return {"small": small, "nonpositive": 1 - small % 4, "huge": big}[kind]


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[tuple[tuple[bool, bool], str]], list[dict[str, Any]]]:
    n_accounts = draw(st.integers(min_value=2, max_value=5))
    accounts = [
        (draw(st.sampled_from(FLAG_CHOICES)), draw(st.sampled_from(CURRENCIES[:1] if i < 2 else CURRENCIES)))
        for i in range(n_accounts)
    ]
    ops = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "kind": st.sampled_from(OP_KINDS),
                    "debit": st.integers(0, n_accounts - 1),
                    "credit_offset": st.integers(1, n_accounts - 1),
                    "amount": st.builds(
                        amount_of,
                        st.sampled_from(AMOUNT_KINDS),
                        st.integers(1, 300),
                        st.integers(MAX_AMOUNT // 3, MAX_AMOUNT),
                    ),
                    "currency_of": st.sampled_from(["debit"] * 5 + ["credit"]),
                    "pick": st.integers(0, 10_000),
                    "reference": st.sampled_from(["", "a", "b"]),
                }
            ),
            min_size=1,
            max_size=30,
        )
    )
    return accounts, ops


def build(
    op: dict[str, Any], ids: list[uuid.UUID], currencies: list[str], sent: list[NewTransfer], created: list[NewTransfer]
) -> NewTransfer:
    debit_index = op["debit"]
    credit_index = debit_index if op["kind"] == "same_account" else (debit_index + op["credit_offset"]) % len(ids)
    debit, credit = ids[debit_index], ids[credit_index]
    currency = currencies[debit_index if op["currency_of"] == "debit" else credit_index]
    fresh = NewTransfer(
        id=uuid.uuid4(),
        debit_account_id=debit,
        credit_account_id=credit,
        amount=op["amount"],
        currency=currency,
        code="test",
        reference=op["reference"],
    )
    if sent and op["kind"] == "resend":
        return sent[int(op["pick"]) % len(sent)]
    if created and op["kind"] == "reuse_id":
        reused = created[int(op["pick"]) % len(created)].id
        return replace(fresh, id=reused)
    return fresh


async def attempt(db: Database, t: NewTransfer) -> str:
    try:
        async with db.transaction() as session:
            return (await ledger.create_transfer(session, t)).status
    except ProblemError as exc:
        return exc.code


async def run_scenario(db: Database, accounts: list[tuple[tuple[bool, bool], str]], ops: list[dict[str, Any]]) -> None:
    specs = [
        AccountSpec(
            key=f"prop:{uuid.uuid4()}",
            currency=cur,
            kind="commune",
            debits_must_not_exceed_credits=flags[0],
            credits_must_not_exceed_debits=flags[1],
        )
        for flags, cur in accounts
    ]
    async with db.transaction() as session:
        rows = await ledger.ensure_accounts(session, specs)
    ids = [rows[s.key].id for s in specs]
    model = Model(
        {
            rows[s.key].id: ModelAccount(s.currency, s.debits_must_not_exceed_credits, s.credits_must_not_exceed_debits)
            for s in specs
        }
    )
    sent: list[NewTransfer] = []
    attempted: set[uuid.UUID] = set()
    for op in ops:
        t = build(op, ids, [s.currency for s in specs], sent, list(model.transfers.values()))
        expected = model.apply(t)
        actual = await attempt(db, t)
        assert actual == expected, (t, expected, actual)
        event(f"outcome: {actual}")
        sent.append(t)
        attempted.add(t.id)

    async with db.transaction() as session:
        stored = await ledger_store.transfers_by_ids(session, list(attempted))
        locked = await ledger_store.lock_accounts(session, ids)
        audit = await ledger.audit(session)
        totals = await ledger.ledger_totals(session)
    # Exactly the transfers the model accepted exist, with the bodies first accepted; every
    # refused attempt wrote nothing.
    assert set(stored) == set(model.transfers)
    for tid, t in model.transfers.items():
        row = stored[tid]
        assert (row.debit_account_id, row.credit_account_id, row.amount, row.currency, row.reference) == (
            t.debit_account_id,
            t.credit_account_id,
            t.amount,
            t.currency,
            t.reference,
        )
    for aid, expected_account in model.accounts.items():
        held = locked[aid]
        assert (held.debits_posted, held.credits_posted) == (expected_account.debits, expected_account.credits)
        # Flagged accounts are never overdrawn.
        if held.debits_must_not_exceed_credits:
            assert held.debits_posted <= held.credits_posted
        if held.credits_must_not_exceed_debits:
            assert held.credits_posted <= held.debits_posted
    # Within this scenario's closed set of accounts, debits equal credits per currency...
    for currency in CURRENCIES:
        scoped = [locked[aid] for aid in ids if locked[aid].currency == currency]
        assert sum(r.debits_posted for r in scoped) == sum(r.credits_posted for r in scoped)
    # ...and across the whole ledger every account matches its transfers and every currency balances.
    assert audit == []
    assert all(t.balanced for t in totals), totals


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=scenarios())
def test_random_transfer_sequences_keep_the_ledger_sound(
    harness: Harness, scenario: tuple[list[tuple[tuple[bool, bool], str]], list[dict[str, Any]]]
) -> None:
    accounts, ops = scenario
    harness.run(run_scenario(harness.db, accounts, ops))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    funded=st.integers(min_value=1, max_value=500),
    tranches=st.lists(st.integers(min_value=1, max_value=120), min_size=1, max_size=12),
)
def test_random_concurrent_tranches_never_overdraw_an_earmark(
    harness: Harness, funded: int, tranches: list[int]
) -> None:
    """Concurrent payouts race for one earmark: what is paid never exceeds what it received,
    and the accepted set is one the earmark could afford."""

    async def scenario() -> None:
        source = AccountSpec(key=f"prop:{uuid.uuid4()}", currency="USD", kind="source")
        earmark = AccountSpec(
            key=f"prop:{uuid.uuid4()}", currency="USD", kind="commitment", debits_must_not_exceed_credits=True
        )
        sink = AccountSpec(key=f"prop:{uuid.uuid4()}", currency="USD", kind="commune")
        async with harness.db.transaction() as session:
            await ledger.ensure_accounts(session, [source, earmark, sink])
        assert (
            await attempt(
                harness.db, NewTransfer(uuid.uuid4(), source.id, earmark.id, funded, "USD", "grant_allocation")
            )
            == "created"
        )
        requests = [
            NewTransfer(uuid.uuid4(), earmark.id, sink.id, amount, "USD", "tranche_disbursement") for amount in tranches
        ]
        results = await asyncio.gather(*(attempt(harness.db, r) for r in requests))
        assert set(results) <= {"created", "exceeds_credits"}
        paid = sum(r.amount for r, outcome in zip(requests, results, strict=True) if outcome == "created")
        refused = [r.amount for r, outcome in zip(requests, results, strict=True) if outcome != "created"]
        assert paid <= funded
        # A refusal only happens when the tranche did not fit in what was left at the end.
        assert all(amount > funded - paid for amount in refused)
        async with harness.db.transaction() as session:
            rows = await ledger_store.lock_accounts(session, [earmark.id, sink.id])
        assert rows[earmark.id].debits_posted == rows[sink.id].credits_posted == paid

    harness.run(scenario())
