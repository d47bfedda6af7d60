"""Property-based tests of the two-phase ledger against real PostgreSQL and a shadow model.

The model (`Model`) is written from docs/ledger.md in plain Python, without funding's
`postings`: accounts with their four totals and flags, pending transfers and their one
resolution (post, partial or whole; void; expire after the timeout), closed accounts, linked
chains that succeed or fail as a whole, exchanges through clearing accounts, and idempotency
(the same id and body: "exists" with the stored transfer; another body: `transfer_id_reused`).
Where several rules refuse one transfer, the model names the one the ledger checks first.

- A Hypothesis state machine opens accounts, sends batches (single, pending, post, void,
  exchanges, chains, overdrafts, unknown accounts, currency mismatches, malformed transfers,
  reused ids), resends earlier batches, closes accounts and expires pending transfers, each
  step in a real transaction; the ledger's decision on every transfer must be the model's, and
  after every step every account's totals must be the model's.
- Concurrent workloads on disjoint and overlapping accounts, with concurrent resends, are
  checked by invariants (their order is not determined) and by replaying the journal, whose
  order is the commit order, through the model: every committed transfer must be one the
  model accepts at its place in the log.
- A batch interrupted mid-transaction (task cancelled, backend killed with
  `pg_terminate_backend`, while holding its locks or at a random moment) commits all or
  nothing; its retry applies it exactly once (created, then "exists").
- The whole journal of the module's database is replayed, checkpointed with a generated key
  (its root compared with an RFC 6962 root computed here) and served to `comuna-verify ledger`.

Hypothesis drives synchronous tests, so the module runs its own event loop (an
`asyncio.Runner`) with its own connection pool, as tests/funding/test_ledger_properties.py does.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from comuna_devstack.postgres import EmbeddedPostgres
from comuna_funding.domain import journal as entries_format
from comuna_funding.domain import ledger
from comuna_funding.domain.ledger import AccountSpec, Exchange, NewTransfer, TransferOutcome
from comuna_funding.storage import journal, ledger_store
from comuna_funding.storage.ledger_store import TransferRow
from comuna_funding.vocabulary import AccountKind, TransferKind
from comuna_platform.db import Database
from comuna_platform.errors import ProblemError
from comuna_platform.http import public_log
from comuna_platform.tlog import merkle, note, tiles
from comuna_platform.tlog.checkpoint import parse_checkpoint
from comuna_verify import cli
from comuna_verify import ledger as verifier
from tests.funding.conftest import MIGRATIONS
from tests.support.service import fresh_database
from tests.verify.ledger_record import serving

T = TypeVar("T")


@dataclass
class Harness:
    runner: asyncio.Runner
    db: Database

    def run(self, coro: Awaitable[T]) -> T:
        async def wrapped() -> T:
            # A hung lock wait fails the test instead of hanging the suite.
            async with asyncio.timeout(60):
                return await coro

        return self.runner.run(wrapped())


@pytest.fixture(scope="module")
def harness(embedded_postgres: EmbeddedPostgres) -> Iterator[Harness]:
    url = fresh_database(embedded_postgres, f"funding_2p_{uuid.uuid4().hex[:12]}", MIGRATIONS)
    with asyncio.Runner(loop_factory=asyncio.new_event_loop) as runner:
        db = Database(url, pool_size=12)
        try:
            yield Harness(runner, db)
        finally:
            runner.run(db.dispose())


# --- the shadow model (docs/ledger.md) ------------------------------------------------------

MAX = 2**63 - 1  # amounts and totals are PostgreSQL bigints
DP, CP, DQ, CQ = range(4)
TOTALS = ("debits_posted", "credits_posted", "debits_pending", "credits_pending")
RESOLVING = ("post", "void", "expire")
SNAKE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
ISO = re.compile(r"^[A-Z]{3}$")
MAX_TIMEOUT = 5 * 366 * 24 * 3600
DEBITS_LIMITED, CREDITS_LIMITED = "debits_must_not_exceed_credits", "credits_must_not_exceed_debits"


def half_even(value: Fraction) -> int:
    """Round half to even, in exact arithmetic."""
    whole, rest = divmod(value.numerator, value.denominator)
    if 2 * rest > value.denominator or (2 * rest == value.denominator and whole % 2):
        whole += 1
    return whole


def counter_amount(base: int, rate: Decimal) -> int:
    return half_even(base * Fraction(rate))


@dataclass(frozen=True)
class Req:
    """A transfer as a client sends it (None: left to the pending transfer it resolves)."""

    id: uuid.UUID
    kind: str = "single"
    debit: uuid.UUID | None = None
    credit: uuid.UUID | None = None
    amount: int | None = None
    currency: str | None = None
    code: str = "prop"
    reference: str = ""
    pending_id: uuid.UUID | None = None
    timeout: int | None = None
    exchange: tuple[uuid.UUID, uuid.UUID, Decimal] | None = None
    linked: bool = False

    def new(self) -> NewTransfer:
        return NewTransfer(
            id=self.id,
            debit_account_id=self.debit,
            credit_account_id=self.credit,
            amount=self.amount,
            currency=self.currency,
            code=self.code,
            reference=self.reference,
            kind=TransferKind(self.kind),
            pending_id=self.pending_id,
            timeout_seconds=self.timeout,
            exchange=None if self.exchange is None else Exchange(*self.exchange),
            linked=self.linked,
        )

    def body(self) -> tuple[object, ...]:
        """What idempotency compares (`linked` only ties it to its neighbours in one batch)."""
        return (
            self.kind,
            self.debit,
            self.credit,
            self.amount,
            self.currency,
            self.code,
            self.reference,
            self.pending_id,
            self.timeout,
            self.exchange,
        )


def from_row(row: TransferRow) -> Req:
    exchange = None
    if row.exchange_base_id is not None and row.exchange_counter_id is not None and row.exchange_rate is not None:
        exchange = (row.exchange_base_id, row.exchange_counter_id, row.exchange_rate)
    return Req(
        row.id,
        row.kind,
        row.debit_account_id,
        row.credit_account_id,
        row.amount,
        row.currency,
        row.code,
        row.reference,
        row.pending_id,
        row.timeout_seconds,
        exchange,
    )


@dataclass
class MAccount:
    key: str
    currency: str
    kind: str
    limit_debits: bool = False
    limit_credits: bool = False
    totals: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    closed: bool = False


@dataclass(frozen=True)
class Stored:
    req: Req  # resolved: accounts, currency and amount filled in, not linked
    at: datetime


class Refused(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Undo:
    """What one chain changed, to take back if one of its transfers is refused."""

    totals: dict[uuid.UUID, list[int]] = field(default_factory=dict)
    resolved: list[uuid.UUID] = field(default_factory=list)
    pendings: list[uuid.UUID] = field(default_factory=list)


def chains(batch: Sequence[Req]) -> list[list[int]]:
    """Indices grouped into chains: a linked transfer is tied to the next one."""
    groups: list[list[int]] = []
    current: list[int] = []
    for index, req in enumerate(batch):
        current.append(index)
        if not req.linked:
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    return groups


class Model:
    def __init__(self) -> None:
        self.accounts: dict[uuid.UUID, MAccount] = {}
        self.transfers: dict[uuid.UUID, Stored] = {}
        self.resolved: dict[uuid.UUID, uuid.UUID] = {}  # pending id -> the transfer that resolved it

    # accounts

    def open(self, account_id: uuid.UUID, account: MAccount) -> None:
        assert account_id not in self.accounts
        self.accounts[account_id] = account

    def close(self, account_id: uuid.UUID) -> str:
        account = self.accounts.get(account_id)
        if account is None:
            return "account_not_found"
        if account.closed:
            return "closed"
        if account.totals[DQ] or account.totals[CQ]:
            return "account_has_pending"
        account.closed = True
        return "closed"

    def pendings(self) -> list[Req]:
        return [s.req for s in self.transfers.values() if s.req.kind == "pending"]

    def due(self, now: datetime) -> set[uuid.UUID]:
        """Unresolved pending transfers whose timeout has passed."""
        return {
            s.req.id
            for s in self.transfers.values()
            if s.req.kind == "pending"
            and s.req.timeout is not None
            and s.req.id not in self.resolved
            and s.at + timedelta(seconds=s.req.timeout) <= now
        }

    # transfers

    @staticmethod
    def shape(r: Req) -> str | None:
        """What needs no ledger state."""
        resolving = r.kind in RESOLVING
        if resolving != (r.pending_id is not None):
            return "pending_id_must_match_kind"
        if r.amount is not None and not 0 < r.amount <= MAX:
            return "amount_must_be_positive"
        if not resolving and (r.amount is None or r.debit is None or r.credit is None or r.currency is None):
            return "transfer_incomplete"
        if r.debit is not None and r.debit == r.credit:
            return "accounts_must_be_different"
        if r.currency is not None and not ISO.match(r.currency):
            return "currency_invalid"
        if not SNAKE.match(r.code):
            return "transfer_code_invalid"
        if len(r.reference) > 500:
            return "reference_too_long"
        if r.reference and not r.reference.isprintable():
            return "reference_invalid"
        if r.timeout is not None:
            if r.kind != "pending":
                return "timeout_reserved_for_pending"
            if not 0 < r.timeout <= MAX_TIMEOUT:
                return "timeout_invalid"
        if r.exchange is not None:
            base, counter, rate = r.exchange
            if r.kind != "single" or r.id not in (base, counter) or base == counter:
                return "exchange_invalid"
            if not 0 < rate < Decimal(10) ** 20 or -int(rate.as_tuple().exponent) > 18:
                return "exchange_rate_invalid"
        return None

    def same(self, r: Req, stored: Req) -> bool:
        """A resend of `stored`? A resolution's omitted fields are its pending transfer's."""
        if r.kind in RESOLVING and r.kind == stored.kind and stored.pending_id in self.transfers:
            assert stored.pending_id is not None
            p = self.transfers[stored.pending_id].req
            r = replace(
                r,
                debit=r.debit or p.debit,
                credit=r.credit or p.credit,
                currency=r.currency or p.currency,
                amount=r.amount if r.amount is not None else p.amount,
            )
        return r.body() == stored.body()

    def submit(self, batch: Sequence[Req], now: datetime, *, allow_expire: bool = False) -> list[str]:
        """Decide a batch (non-atomic: chains are all or nothing), apply what is accepted; one
        result per transfer: "created", "exists" or the refusal's code."""
        out: list[str | None] = [self.shape(r) for r in batch]
        for i, r in enumerate(batch):
            if out[i] is None and r.id in self.transfers:
                out[i] = "exists" if self.same(r, self.transfers[r.id].req) else "transfer_id_reused"
        in_batch: dict[uuid.UUID, Req] = {}  # pending transfers this batch created so far
        created: list[Req] = []
        for group in chains(batch):
            if any(out[i] not in (None, "exists") for i in group):
                # A refused transfer refuses its whole chain; a stored one stays stored.
                for i in group:
                    out[i] = out[i] or "linked_transfer_failed"
                continue
            members = [i for i in group if out[i] is None]
            if not members:
                continue
            if batch[group[-1]].linked:
                for i in members:
                    out[i] = "linked_transfer_failed"
                out[members[-1]] = "linked_chain_open"
                continue
            undo = Undo()
            accepted: list[tuple[int, Req]] = []
            failure: tuple[int, str] | None = None
            for i in members:
                try:
                    accepted.append((i, self._apply(batch[i], now, in_batch, undo, allow_expire)))
                except Refused as exc:
                    failure = (i, exc.code)
                    break
            if failure is None:
                failure = self._exchanges(accepted)
            if failure is not None:
                self._rollback(undo, in_batch)
                for i in members:
                    out[i] = "linked_transfer_failed"
                out[failure[0]] = failure[1]
                continue
            for i, resolved in accepted:
                out[i] = "created"
                created.append(resolved)
        for resolved in created:
            self.transfers[resolved.id] = Stored(resolved, now)
        assert all(o is not None for o in out)
        return [o for o in out if o is not None]

    def _add(self, undo: Undo, account_id: uuid.UUID, index: int, amount: int) -> None:
        totals = self.accounts[account_id].totals
        undo.totals.setdefault(account_id, list(totals))
        totals[index] += amount

    def _rollback(self, undo: Undo, in_batch: dict[uuid.UUID, Req]) -> None:
        for account_id, totals in undo.totals.items():
            self.accounts[account_id].totals = totals
        for pending_id in undo.resolved:
            del self.resolved[pending_id]
        for pending_id in undo.pendings:
            del in_batch[pending_id]

    def _apply(self, r: Req, now: datetime, in_batch: dict[uuid.UUID, Req], undo: Undo, allow_expire: bool) -> Req:
        if r.kind == "expire" and not allow_expire:
            raise Refused("transfer_kind_reserved")
        pending: Req | None = None
        if r.pending_id is not None:
            stored = self.transfers.get(r.pending_id)
            pending = stored.req if stored is not None else in_batch.get(r.pending_id)
            if pending is None:
                raise Refused("pending_transfer_not_found")
            if pending.kind != "pending":
                raise Refused("pending_transfer_not_pending")
            if r.pending_id in self.resolved:
                raise Refused("pending_transfer_already_resolved")
            if stored is not None and pending.timeout is not None:
                expired = now >= stored.at + timedelta(seconds=pending.timeout)
                if r.kind == "expire" and not expired:
                    raise Refused("pending_not_due")
                if r.kind != "expire" and expired:
                    raise Refused("pending_transfer_expired")
            elif r.kind == "expire":
                raise Refused("pending_not_due")
            if r.debit is not None and r.debit != pending.debit:
                raise Refused("pending_transfer_has_different_debit_account")
            if r.credit is not None and r.credit != pending.credit:
                raise Refused("pending_transfer_has_different_credit_account")
            if r.currency is not None and r.currency != pending.currency:
                raise Refused("currency_mismatch")
            assert pending.amount is not None
            if r.amount is not None and r.kind == "post" and r.amount > pending.amount:
                raise Refused("exceeds_pending_transfer_amount")
            if r.amount is not None and r.kind != "post" and r.amount != pending.amount:
                raise Refused("pending_transfer_has_different_amount")
            r = replace(
                r,
                debit=pending.debit,
                credit=pending.credit,
                currency=pending.currency,
                amount=pending.amount if r.amount is None else r.amount,
            )
        r = replace(r, linked=False)
        debit_id, credit_id, amount = r.debit, r.credit, r.amount
        assert debit_id is not None and credit_id is not None and amount is not None
        debit, credit = self.accounts.get(debit_id), self.accounts.get(credit_id)
        if debit is None:
            raise Refused("debit_account_not_found")
        if credit is None:
            raise Refused("credit_account_not_found")
        for side, account in (("debit", debit), ("credit", credit)):
            if account.closed:
                raise Refused(f"{side}_account_closed")
            if account.currency != r.currency:
                raise Refused("currency_mismatch")
        if r.kind == "single":
            self._add(undo, debit_id, DP, amount)
            self._add(undo, credit_id, CP, amount)
        elif r.kind == "pending":
            self._add(undo, debit_id, DQ, amount)
            self._add(undo, credit_id, CQ, amount)
            in_batch[r.id] = r
            undo.pendings.append(r.id)
        else:
            assert pending is not None and pending.amount is not None and r.pending_id is not None
            self._add(undo, debit_id, DQ, -pending.amount)
            self._add(undo, credit_id, CQ, -pending.amount)
            if r.kind == "post":
                self._add(undo, debit_id, DP, amount)
                self._add(undo, credit_id, CP, amount)
            self.resolved[r.pending_id] = r.id
            undo.resolved.append(r.pending_id)
        for account in (debit, credit):
            t = account.totals
            for index, name in enumerate(TOTALS):
                if t[index] > MAX:
                    raise Refused(f"overflows_{name}")
            if account.limit_debits and t[DP] + t[DQ] > t[CP]:
                raise Refused("exceeds_credits")
            if account.limit_credits and t[CP] + t[CQ] > t[DP]:
                raise Refused("exceeds_debits")
        return r

    def _exchanges(self, chain: list[tuple[int, Req]]) -> tuple[int, str] | None:
        """An exchange's legs are in the chain, in two currencies, through the clearing
        accounts, the counter amount the base amount times the rate."""
        by_id = {r.id: r for _, r in chain}
        for index, leg in chain:
            if leg.exchange is None:
                continue
            base_id, counter_id, rate = leg.exchange
            base, counter = by_id.get(base_id), by_id.get(counter_id)
            if base is None or counter is None or base.exchange != counter.exchange:
                return index, "exchange_unpaired"
            if base.currency == counter.currency:
                return index, "exchange_same_currency"
            assert base.amount is not None
            if counter.amount != counter_amount(base.amount, rate):
                return index, "exchange_amount_mismatch"
            assert base.credit is not None and counter.debit is not None
            for clearing in (self.accounts.get(base.credit), self.accounts.get(counter.debit)):
                if clearing is None or clearing.kind != "clearing":
                    return index, "exchange_not_through_clearing"
        return None


# --- the journal, read as an outsider reads it ----------------------------------------------


def parse_entry(data: bytes) -> tuple[str, dict[str, str]]:
    lines = data.decode().split("\n")
    assert lines[-1] == "", "every line ends in a newline"
    fields: dict[str, str] = {}
    for line in lines[1:-1]:
        name, _, value = line.partition(" ")
        assert name not in fields, line
        fields[name] = value
    return lines[0], fields


def parse_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def entry_transfer(fields: dict[str, str]) -> Req:
    def optional(value: str) -> str | None:
        return None if value == "-" else value

    exchange = None
    if fields["exchange"] != "-":
        base, counter, rate = fields["exchange"].split(" ")
        exchange = (uuid.UUID(base), uuid.UUID(counter), Decimal(rate))
    pending, timeout = optional(fields["pending"]), optional(fields["timeout"])
    return Req(
        id=uuid.UUID(fields["transfer"]),
        kind=fields["kind"],
        debit=uuid.UUID(fields["debit"]),
        credit=uuid.UUID(fields["credit"]),
        amount=int(fields["amount"]),
        currency=fields["currency"],
        code=fields["code"],
        reference=fields["reference"],
        pending_id=None if pending is None else uuid.UUID(pending),
        timeout=None if timeout is None else int(timeout),
        exchange=exchange,
    )


def replay(entries: Sequence[bytes], model: Model) -> Counter[str]:
    """Apply journal entries in log order to `model`: every account is new, every closing
    closes an open account without pending amounts, and every transfer is one the model
    accepts at that point (an exchange's two legs together). Counts entries by kind."""
    counts: Counter[str] = Counter()
    base_leg: tuple[Req, datetime] | None = None
    for data in entries:
        head, fields = parse_entry(data)
        if head == "comuna-account/v1":
            flags = set() if fields["flags"] == "-" else set(fields["flags"].split(","))
            assert flags <= {DEBITS_LIMITED, CREDITS_LIMITED}
            account = MAccount(
                fields["key"], fields["currency"], fields["kind"], DEBITS_LIMITED in flags, CREDITS_LIMITED in flags
            )
            model.open(uuid.UUID(fields["account"]), account)
            counts["account"] += 1
        elif head == "comuna-account-closed/v1":
            closing = model.accounts[uuid.UUID(fields["account"])]
            assert not closing.closed
            assert model.close(uuid.UUID(fields["account"])) == "closed"
            counts["closed"] += 1
        else:
            assert head == "comuna-transfer/v1", head
            req, at = entry_transfer(fields), parse_time(fields["at"])
            counts[req.kind] += 1
            if req.exchange is not None and req.exchange[0] == req.id:
                assert base_leg is None
                base_leg = (req, at)  # its counter leg comes next, in the same transaction
                continue
            batch = [req]
            if base_leg is not None:
                assert req.exchange is not None and base_leg[0].exchange == req.exchange and base_leg[1] == at
                batch = [replace(base_leg[0], linked=True), req]
                base_leg = None
            assert model.submit(batch, at, allow_expire=True) == ["created"] * len(batch), batch
    assert base_leg is None
    return counts


def rfc6962_root(entries: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of RFC 6962 §2.1, recursively, from the leaves."""

    def mth(leaves: Sequence[bytes]) -> bytes:
        if len(leaves) == 1:
            return leaves[0]
        k = 1 << ((len(leaves) - 1).bit_length() - 1)
        return merkle.node_hash(mth(leaves[:k]), mth(leaves[k:]))

    return mth([merkle.leaf_hash(e) for e in entries]) if entries else merkle.empty_root()


async def journal_size(db: Database) -> int:
    async with db.transaction() as session:
        size, _ = await journal.journal().log.sizes(await session.connection())
    return size


async def journal_entries(db: Database, start: int = 0) -> list[bytes]:
    async with db.transaction() as session:
        rows = await session.execute(
            text("SELECT data FROM tlog_entries WHERE origin = :origin AND idx >= :start ORDER BY idx"),
            {"origin": journal.journal().origin, "start": start},
        )
        return [bytes(data) for data in rows.scalars()]


# --- talking to the ledger ------------------------------------------------------------------


def outcome(decision: ledger.Decision) -> str:
    return decision.status if isinstance(decision, TransferOutcome) else decision.code


async def submit(db: Database, batch: Sequence[Req]) -> tuple[datetime, list[ledger.Decision]]:
    """One batch in its own transaction; the transaction's time (what its rows are stamped with)."""
    async with db.transaction() as session:
        now = await ledger_store.transaction_time(session)
        return now, await ledger.submit_transfers(session, [r.new() for r in batch])


async def open_accounts(db: Database, model: Model, specs: Sequence[AccountSpec]) -> list[uuid.UUID]:
    async with db.transaction() as session:
        rows = await ledger.ensure_accounts(session, specs)
    for spec in specs:
        model.open(
            spec.id,
            MAccount(
                spec.key,
                spec.currency,
                spec.kind,
                spec.debits_must_not_exceed_credits,
                spec.credits_must_not_exceed_debits,
            ),
        )
        assert rows[spec.key].id == spec.id
    return [spec.id for spec in specs]


async def stored_totals(db: Database, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, tuple[list[int], bool]]:
    async with db.transaction() as session:
        rows = await ledger_store.lock_accounts(session, ids)
    return {
        aid: ([r.debits_posted, r.credits_posted, r.debits_pending, r.credits_pending], r.closed)
        for aid, r in rows.items()
    }


async def assert_totals_match(db: Database, model: Model) -> None:
    stored = await stored_totals(db, list(model.accounts))
    assert set(stored) == set(model.accounts)
    for aid, account in model.accounts.items():
        assert stored[aid] == (account.totals, account.closed), (account.key, stored[aid], account)


async def assert_ledger_sound(db: Database) -> None:
    """Invariants of the whole ledger, whatever order concurrent writers took."""
    async with db.transaction() as session:
        totals = await ledger.ledger_totals(session)
        out_of_balance = await ledger.audit(session)
        accounts = await ledger_store.all_balances(session)
        twice = await session.execute(
            text("SELECT pending_id FROM transfers WHERE pending_id IS NOT NULL GROUP BY 1 HAVING count(*) > 1")
        )
        resolved_twice = list(twice.scalars())
        wrong = await session.execute(
            text(
                "SELECT r.id FROM transfers r JOIN transfers p ON p.id = r.pending_id WHERE p.kind <> 'pending' "
                "OR r.debit_account_id <> p.debit_account_id OR r.credit_account_id <> p.credit_account_id "
                "OR r.currency <> p.currency OR r.amount > p.amount OR (r.kind <> 'post' AND r.amount <> p.amount)"
            )
        )
        bad_resolutions = list(wrong.scalars())
    # Debits equal credits per currency, posted and pending, and equal what the transfers add up to.
    assert all(t.balanced for t in totals), totals
    assert out_of_balance == []
    assert resolved_twice == [] and bad_resolutions == []
    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for a in accounts:
        for index, total in enumerate((a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending)):
            sums[a.currency][index] += total
    assert all(s[DP] == s[CP] and s[DQ] == s[CQ] for s in sums.values()), sums
    for a in accounts:
        if a.debits_must_not_exceed_credits:
            assert a.debits_posted + a.debits_pending <= a.credits_posted, a
        if a.credits_must_not_exceed_debits:
            assert a.credits_posted + a.credits_pending <= a.debits_posted, a
        if a.closed:
            assert a.debits_pending == a.credits_pending == 0, a


# --- building workloads ---------------------------------------------------------------------

CURRENCIES = ["USD", "USD", "USD", "VES"]
FLAGS = [(False, False), (False, False), (True, False), (False, True)]
KINDS = ["commune", "commitment", "source", "project"]
# Counter minor units per base minor unit; 0.5 and 2.5 round halves (to even), the last one is
# sent with a wrong counter amount.
RATES = [Decimal("36.4218"), Decimal("0.5"), Decimal("2.5"), Decimal("36.4218")]
REFERENCES = ["", "a", "b", "cement, 40 bags"]
# Weighted by repetition: mostly money moving, with a steady share of every kind of refusal.
OPS = (
    ["single"] * 6
    + ["pending"] * 4
    + ["post"] * 4
    + ["void"] * 2
    + ["exchange"] * 2
    + ["reuse", "bad", "unknown", "mismatch", "not_pending"]
)

account_specs = st.tuples(st.sampled_from(FLAGS), st.sampled_from(CURRENCIES), st.sampled_from(KINDS))
amounts = st.one_of(*[st.integers(1, 400)] * 7, st.integers(MAX // 3, MAX))
ops = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(OPS),
        "a": st.integers(0, 1000),
        "b": st.integers(0, 1000),
        "amount": amounts,
        "pick": st.integers(0, 10**6),
        "variant": st.integers(0, 3),
        "linked": st.sampled_from([False] * 5 + [True]),
        "timeout": st.sampled_from([None, None, 3600, 1]),
    }
)
batches = st.lists(ops, min_size=1, max_size=5)


def spec_of(tag: str, flags: tuple[bool, bool], currency: str, kind: str) -> AccountSpec:
    return AccountSpec(
        key=f"prop:{tag}:{uuid.uuid4()}",
        currency=currency,
        kind=AccountKind(kind),
        debits_must_not_exceed_credits=flags[0],
        credits_must_not_exceed_debits=flags[1],
    )


def clearing_specs(tag: str) -> list[AccountSpec]:
    return [
        AccountSpec(key=f"clearing:{currency}:{tag}:{uuid.uuid4()}", currency=currency, kind=AccountKind.CLEARING)
        for currency in ("USD", "VES")
    ]


@dataclass
class View:
    """What a workload builds requests from: the accounts it uses and the transfers it knows."""

    accounts: list[uuid.UUID]
    currency: dict[uuid.UUID, str]
    clearing: dict[str, uuid.UUID]
    pendings: list[Req]
    stored: list[uuid.UUID]
    singles: list[uuid.UUID]
    resolved: set[uuid.UUID]

    @staticmethod
    def of(model: Model, accounts: list[uuid.UUID], clearing: dict[str, uuid.UUID]) -> View:
        return View(
            accounts,
            {aid: a.currency for aid, a in model.accounts.items()},
            clearing,
            model.pendings(),
            list(model.transfers),
            [tid for tid, s in model.transfers.items() if s.req.kind != "pending"],
            set(model.resolved),
        )


def build(batch_ops: Sequence[dict[str, Any]], view: View) -> list[Req]:
    """Requests from drawn operations; ids are unique within the batch."""
    batch: list[Req] = []
    fresh_pendings: list[Req] = []
    for op in batch_ops:
        for built in build_op(op, view, fresh_pendings):
            req = replace(built, id=uuid.uuid4(), reference="fresh") if any(built.id == r.id for r in batch) else built
            batch.append(req)
            if req.kind == "pending":
                fresh_pendings.append(req)
    if batch and batch[-1].linked and batch_ops[-1]["pick"] % 4:
        # Mostly chains are closed; now and then one is left open (refused).
        batch[-1] = replace(batch[-1], linked=False)
    return batch


def build_op(op: dict[str, Any], view: View, fresh_pendings: list[Req]) -> list[Req]:
    # Mostly accounts with a partner of the same currency (a mismatch is an operation of its own).
    pairable = [
        a for a in view.accounts if any(b != a and view.currency.get(b) == view.currency.get(a) for b in view.accounts)
    ]
    debit = (pairable or view.accounts)[op["a"] % len(pairable or view.accounts)]
    currency = view.currency.get(debit, "USD")
    others = [a for a in view.accounts if a != debit] or [debit]
    partners = [a for a in others if view.currency.get(a) == currency] or others
    credit = partners[op["b"] % len(partners)]
    kind, variant, amount, linked = op["kind"], op["variant"], op["amount"], op["linked"]
    new = Req(uuid.uuid4(), "single", debit, credit, amount, currency, reference=REFERENCES[variant], linked=linked)
    if kind == "single":
        return [new]
    if kind == "pending":
        return [replace(new, kind="pending", timeout=op["timeout"])]
    if kind in ("post", "void"):
        choices = view.pendings + fresh_pendings
        if not choices:
            return [Req(uuid.uuid4(), kind, pending_id=uuid.uuid4(), linked=linked)]
        unresolved = [p for p in choices if p.id not in view.resolved]
        pool = unresolved if unresolved and op["pick"] % 4 else choices
        p = pool[op["pick"] % len(pool)]
        assert p.amount is not None
        resolution = Req(uuid.uuid4(), kind, pending_id=p.id, linked=linked)
        if variant == 0:  # everything left to the pending transfer
            return [resolution]
        if variant == 1:  # spelled out; a post of part of the amount
            posted = p.amount if kind == "void" else min(amount, p.amount)
            return [replace(resolution, debit=p.debit, credit=p.credit, currency=p.currency, amount=posted)]
        if variant == 2:  # more than reserved, or a void that does not release all of it
            return [replace(resolution, amount=p.amount + 1)]
        other = debit if debit != p.debit else credit
        return [replace(resolution, debit=other)]
    if kind == "exchange":
        usd = [a for a in view.accounts if view.currency.get(a) == "USD"]
        ves = [a for a in view.accounts if view.currency.get(a) == "VES"]
        if not usd or not ves or not view.clearing:
            return [new]
        rate = RATES[variant]
        base_id, counter_id = uuid.uuid4(), uuid.uuid4()
        exchange = (base_id, counter_id, rate)
        counter = counter_amount(amount, rate) + (1 if variant == 3 else 0)  # 3: a wrong counter amount
        payer, payee = usd[op["a"] % len(usd)], ves[op["b"] % len(ves)]
        return [
            Req(
                base_id,
                "single",
                payer,
                view.clearing["USD"],
                amount,
                "USD",
                "exchange",
                "",
                None,
                None,
                exchange,
                True,
            ),
            Req(
                counter_id,
                "single",
                view.clearing["VES"],
                payee,
                counter,
                "VES",
                "exchange",
                "",
                None,
                None,
                exchange,
                linked,
            ),
        ]
    if kind == "reuse":
        if not view.stored:
            return [new]
        return [replace(new, id=view.stored[op["pick"] % len(view.stored)], reference="reused")]
    if kind == "bad":
        malformed = [
            replace(new, amount=-(amount % 3)),
            replace(new, credit=debit),
            replace(new, timeout=60),
            replace(new, code="Not-Snake"),
        ]
        return [malformed[variant]]
    if kind == "unknown":
        return [replace(new, debit=uuid.uuid4()) if variant % 2 else replace(new, credit=uuid.uuid4())]
    if kind == "mismatch":
        return [replace(new, currency="VES" if currency == "USD" else "USD")]
    assert kind == "not_pending"
    target = view.singles[op["pick"] % len(view.singles)] if view.singles else uuid.uuid4()
    return [Req(uuid.uuid4(), "post" if variant % 2 else "void", pending_id=target, linked=linked)]


# --- 1. linked chains keep their bounds (the reproducers of a bug this file found) ----------


def test_a_chain_with_a_refused_member_is_refused_whole(harness: Harness) -> None:
    """A chain fails as a whole even when its refused member is refused before the ledger's
    state is consulted (malformed, or an id reused for another transfer), and a transfer
    already stored does not stitch its neighbours' chains together."""

    async def scenario() -> None:
        model = Model()
        a, b = await open_accounts(
            harness.db,
            model,
            [spec_of("chain", (False, False), "USD", "source"), spec_of("chain", (False, False), "USD", "commune")],
        )

        def move(amount: int, linked: bool = False) -> Req:
            return Req(uuid.uuid4(), "single", a, b, amount, "USD", linked=linked)

        earlier = move(5)
        cases = [
            [earlier],
            # a malformed member in the middle of a chain
            [move(1, True), move(0, True), move(2)],
            # an id reused for another transfer in a chain
            [move(1, True), replace(move(9, True), id=earlier.id), move(2)],
            # a stored transfer ends a chain: the next transfer is not tied to the one before it
            [move(1, True), earlier, replace(move(2), currency="VES")],
            # a chain closed by a stored transfer is not open
            [move(1, True), earlier],
        ]
        for batch in cases:
            now, decisions = await submit(harness.db, batch)
            assert [outcome(d) for d in decisions] == model.submit(batch, now), batch
        await assert_totals_match(harness.db, model)

    harness.run(scenario())


# --- 2. the state machine -------------------------------------------------------------------


class LedgerMachine(RuleBasedStateMachine):
    """Random steps on a few accounts; each decision and every account checked against the model."""

    harness: Harness

    def __init__(self) -> None:
        super().__init__()
        self.model = Model()
        self.tag = uuid.uuid4().hex[:8]
        self.accounts: list[uuid.UUID] = []
        self.clearing: dict[str, uuid.UUID] = {}
        self.sent: list[list[Req]] = []
        self.rows: dict[uuid.UUID, TransferRow] = {}

    def run(self, coro: Awaitable[T]) -> T:
        return self.harness.run(coro)

    @initialize(accounts=st.lists(account_specs, min_size=1, max_size=3))
    def start(self, accounts: list[tuple[tuple[bool, bool], str, str]]) -> None:
        # A funder in each currency, unlimited, so that exchanges and flagged accounts get money.
        funders = [((False, False), "USD", "source"), ((False, False), "VES", "source")]
        specs = [spec_of(self.tag, *a) for a in funders + accounts]
        self.accounts = self.run(open_accounts(self.harness.db, self.model, specs))
        clearing = clearing_specs(self.tag)
        self.run(open_accounts(self.harness.db, self.model, clearing))
        self.clearing = {spec.currency: spec.id for spec in clearing}

    @precondition(lambda self: len(self.accounts) < 7)
    @rule(account=account_specs)
    def open_account(self, account: tuple[tuple[bool, bool], str, str]) -> None:
        self.accounts += self.run(open_accounts(self.harness.db, self.model, [spec_of(self.tag, *account)]))

    def _send(self, batch: list[Req]) -> None:
        now, decisions = self.run(submit(self.harness.db, batch))
        expected = self.model.submit(batch, now)
        assert [outcome(d) for d in decisions] == expected, list(zip(batch, expected, decisions, strict=True))
        for req, decision in zip(batch, decisions, strict=True):
            event(f"{'exchange' if req.exchange else req.kind}: {outcome(decision)}")
            if isinstance(decision, TransferOutcome):
                if decision.status == "created":
                    self.rows[req.id] = decision.transfer
                # A resend answers with the transfer as first stored.
                assert decision.transfer == self.rows[req.id]
                assert from_row(decision.transfer) == self.model.transfers[req.id].req
        self.sent.append(batch)

    @rule(batch_ops=batches)
    def send(self, batch_ops: list[dict[str, Any]]) -> None:
        self._send(build(batch_ops, View.of(self.model, self.accounts, self.clearing)))

    @rule(batch_ops=batches)
    def send_more(self, batch_ops: list[dict[str, Any]]) -> None:
        """(Sending is what most steps do: Hypothesis picks rules uniformly.)"""
        self.send(batch_ops)

    @precondition(lambda self: bool(self.sent))
    @rule(pick=st.integers(0, 10**6), whole=st.booleans())
    def resend(self, pick: int, whole: bool) -> None:
        """A client that did not hear back sends again: a whole batch, or one of its transfers alone."""
        batch = self.sent[pick % len(self.sent)]
        self._send(batch if whole else [replace(batch[pick % len(batch)], linked=False)])

    @rule(pick=st.integers(0, 10**6), unknown=st.sampled_from([False] * 5 + [True]))
    def close(self, pick: int, unknown: bool) -> None:
        """Close an account (refused while it holds a reservation), or close the closed one again
        (idempotent): at most one account closes, so that the others keep moving money."""
        closed = [a for a in self.accounts if self.model.accounts[a].closed]
        candidates = closed or self.accounts
        account_id = uuid.uuid4() if unknown else candidates[pick % len(candidates)]

        async def close() -> str:
            try:
                async with self.harness.db.transaction() as session:
                    await ledger.close_account(session, account_id)
            except ProblemError as exc:
                return exc.code
            return "closed"

        assert self.run(close()) == self.model.close(account_id)

    @rule()
    def expire(self) -> None:
        async def expire() -> tuple[datetime, dict[uuid.UUID, TransferRow]]:
            async with self.harness.db.transaction() as session:
                now = await ledger_store.transaction_time(session)
                while await ledger.expire_due(session):
                    pass
                mine = [p.id for p in self.model.pendings() if p.id not in self.model.resolved]
                return now, await ledger_store.resolutions_of(session, mine)

        now, resolutions = self.run(expire())
        due = self.model.due(now)
        assert set(resolutions) == due
        for pending_id, row in resolutions.items():
            assert row.kind == "expire" and row.created_at == now
            expiry = Req(row.id, "expire", code=row.code, pending_id=pending_id)
            assert self.model.submit([expiry], now, allow_expire=True) == ["created"]
            self.rows[row.id] = row

    @invariant()
    def every_account_holds_the_models_totals(self) -> None:
        self.run(assert_totals_match(self.harness.db, self.model))

    def teardown(self) -> None:
        if not self.model.accounts:
            return

        async def stored() -> tuple[dict[uuid.UUID, TransferRow], list[uuid.UUID]]:
            async with self.harness.db.transaction() as session:
                ids = {r.id for batch in self.sent for r in batch} | set(self.rows)
                return await ledger_store.transfers_by_ids(session, list(ids)), await ledger.audit(session)

        rows, out_of_balance = self.run(stored())
        # Exactly what the model accepted is stored, as it was accepted; refusals wrote nothing.
        assert {tid: from_row(row) for tid, row in rows.items()} == {
            tid: s.req for tid, s in self.model.transfers.items()
        }
        assert out_of_balance == []


def test_random_steps_match_the_model(harness: Harness) -> None:
    machine = type("BoundLedgerMachine", (LedgerMachine,), {"harness": harness})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=40, stateful_step_count=20, deadline=None, suppress_health_check=list(HealthCheck)
        ),
    )


# --- 3. concurrent workloads ----------------------------------------------------------------


@dataclass
class Worker:
    accounts: list[int]  # indices into the workload's accounts
    batches: list[list[dict[str, Any]]]
    close_after: int | None = None  # closes its first account after this batch (others may still use it)


@st.composite
def workloads(draw: st.DrawFn) -> tuple[list[tuple[tuple[bool, bool], str, str]], list[Worker], list[int]]:
    """Accounts, workers on disjoint or overlapping subsets of them, and batches every worker
    resends at the same time at the end."""
    n_workers = draw(st.integers(2, 5))
    overlapping = draw(st.booleans())
    n_accounts = draw(st.integers(4, 8)) if overlapping else 2 * n_workers + draw(st.integers(0, 2))
    accounts = [draw(account_specs) for _ in range(n_accounts)]
    workers = []
    for w in range(n_workers):
        if overlapping:
            subset = draw(st.lists(st.integers(0, n_accounts - 1), min_size=2, max_size=4, unique=True))
        else:
            subset = list(range(w, n_accounts, n_workers))
        work = draw(st.lists(batches, min_size=1, max_size=4))
        closing = draw(st.sampled_from([None] * 4 + [0, 1]))
        workers.append(Worker(subset, work, closing))
    return accounts, workers, draw(st.lists(st.integers(0, 10**6), max_size=3))


@dataclass
class Shared:
    """What workers learn from each other's commits: pending transfers to resolve, ids to reuse."""

    pendings: list[Req] = field(default_factory=list)
    stored: list[uuid.UUID] = field(default_factory=list)
    singles: list[uuid.UUID] = field(default_factory=list)
    resolved: set[uuid.UUID] = field(default_factory=set)
    sent: list[list[Req]] = field(default_factory=list)
    outcomes: dict[uuid.UUID, list[str]] = field(default_factory=lambda: defaultdict(list))

    def learn(self, batch: list[Req], decisions: list[ledger.Decision]) -> None:
        self.sent.append(batch)
        for req, decision in zip(batch, decisions, strict=True):
            self.outcomes[req.id].append(outcome(decision))
            if isinstance(decision, TransferOutcome) and decision.status == "created":
                row = decision.transfer
                self.stored.append(row.id)
                if row.pending_id is not None:
                    self.resolved.add(row.pending_id)
                if row.kind == "pending":
                    self.pendings.append(from_row(row))
                else:
                    self.singles.append(row.id)


async def close_quietly(db: Database, account_id: uuid.UUID) -> str:
    """Close an account if it holds no reservation; the outcome."""
    try:
        async with db.transaction() as session:
            await ledger.close_account(session, account_id)
    except ProblemError as exc:
        assert exc.code == "account_has_pending"
        return exc.code
    return "closed"


async def fund(db: Database, model: Model, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Room for the flagged accounts: credits for those that may not be overdrawn, debits for the mirror flag."""
    sources = clearing_specs("fund")  # any unflagged account of each currency will do
    await open_accounts(db, model, sources)
    by_currency = {spec.currency: spec.id for spec in sources}
    batch = []
    for aid in ids:
        account = model.accounts[aid]
        source = by_currency[account.currency]
        if account.limit_debits:
            batch.append(Req(uuid.uuid4(), "single", source, aid, 2_000, account.currency, "grant_commitment"))
        if account.limit_credits:
            batch.append(Req(uuid.uuid4(), "single", aid, source, 2_000, account.currency, "grant_commitment"))
    if batch:
        now, decisions = await submit(db, batch)
        assert [outcome(d) for d in decisions] == model.submit(batch, now) == ["created"] * len(batch)
    return {r.id for r in batch}


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(workload=workloads())
def test_concurrent_workloads_keep_the_ledger_sound(
    harness: Harness, workload: tuple[list[tuple[tuple[bool, bool], str, str]], list[Worker], list[int]]
) -> None:
    accounts, workers, resent = workload
    db = harness.db

    async def scenario() -> None:
        start = await journal_size(db)
        model = Model()
        tag = uuid.uuid4().hex[:8]
        ids = await open_accounts(db, model, [spec_of(tag, *a) for a in accounts])
        clearing_accounts = clearing_specs(tag)
        await open_accounts(db, model, clearing_accounts)
        clearing = {spec.currency: spec.id for spec in clearing_accounts}
        funding = await fund(db, model, ids)
        currency = {aid: a.currency for aid, a in model.accounts.items()}
        shared = Shared()

        async def work(worker: Worker) -> None:
            mine = [ids[i] for i in worker.accounts]
            for n, batch_ops in enumerate(worker.batches):
                view = View(
                    mine,
                    currency,
                    clearing,
                    list(shared.pendings),
                    list(shared.stored),
                    list(shared.singles),
                    set(shared.resolved),
                )
                batch = build(batch_ops, view)
                _, decisions = await submit(db, batch)
                shared.learn(batch, decisions)
                if n == worker.close_after:
                    await close_quietly(db, mine[0])

        await asyncio.gather(*(work(w) for w in workers))
        # Every worker resends the same batches at once: each transfer is still applied at most once.
        again = [shared.sent[i % len(shared.sent)] for i in resent]

        async def resend() -> None:
            for batch in again:
                _, decisions = await submit(db, batch)
                shared.learn(batch, decisions)

        await asyncio.gather(*(resend() for _ in workers))

        await assert_ledger_sound(db)
        attempted = list(shared.outcomes)
        async with db.transaction() as session:
            stored = await ledger_store.transfers_by_ids(session, attempted)
        created = Counter(tid for tid, results in shared.outcomes.items() for r in results if r == "created")
        # Each committed transfer was created by exactly one attempt; nothing refused was stored.
        assert all(n == 1 for n in created.values()), created.most_common(3)
        assert set(stored) == set(created)
        for results in shared.outcomes.values():
            # A stored transfer answers "exists" (or, to another body, transfer_id_reused) only once created.
            repeats = [i for i, r in enumerate(results) if r in ("exists", "transfer_id_reused")]
            if repeats:
                assert results.index("created") < repeats[0], results
        # The journal is the commit order: replayed through the model from the funded state,
        # every transfer is accepted where it stands, and the model ends with the stored totals.
        replayed = Model()
        replay(await journal_entries(db, start), replayed)
        await assert_totals_match(db, replayed)
        assert set(replayed.transfers) == set(created) | funding

    harness.run(scenario())


# --- 4. interrupted transactions and retries ------------------------------------------------


async def backend_pid(session: AsyncSession) -> int:
    pid: int = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    return pid


async def terminate(db: Database, pid: int) -> None:
    """Kill a backend from another connection, as a crash or a failover would."""
    async with db.autocommit() as conn:
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


async def submit_retrying(db: Database, batch: Sequence[Req]) -> tuple[datetime, list[ledger.Decision]]:
    """A client's retry loop: a connection that broke (a killed backend left in the pool) is no
    answer, so the batch is sent again."""
    for _ in range(3):
        try:
            return await submit(db, batch)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
    raise AssertionError("the ledger did not answer three times in a row")


async def until(happened: asyncio.Event, task: asyncio.Task[Any]) -> None:
    """Wait for `happened`, or for `task` to end first."""
    waiter = asyncio.ensure_future(happened.wait())
    await asyncio.wait([waiter, task], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()


@settings(max_examples=24, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    batch_ops=batches,
    how=st.sampled_from(["cancel", "timeout", "terminate"]),
    holding=st.booleans(),
    delay_ms=st.sampled_from([0, 2, 5, 15, 40, 120, 400]),
)
def test_an_interrupted_batch_commits_all_or_nothing_and_its_retry_applies_it_once(
    harness: Harness, batch_ops: list[dict[str, Any]], how: str, holding: bool, delay_ms: int
) -> None:
    """`holding`: the batch is interrupted after its writes, before commit, while it holds its
    account locks (another writer queues on them); otherwise at a random moment, perhaps after
    it committed."""
    db = harness.db

    async def scenario() -> None:
        start = await journal_size(db)
        model = Model()
        tag = uuid.uuid4().hex[:8]
        ids = await open_accounts(
            db,
            model,
            [
                spec_of(tag, (False, False), "USD", "source"),
                spec_of(tag, (True, False), "USD", "commitment"),
                spec_of(tag, (False, False), "USD", "commune"),
                spec_of(tag, (True, False), "VES", "commune"),
            ],
        )
        clearing_accounts = clearing_specs(tag)
        await open_accounts(db, model, clearing_accounts)
        await fund(db, model, ids)
        view = View.of(model, ids, {spec.currency: spec.id for spec in clearing_accounts})
        # The batch begins with a movement a second writer needs the same locks for.
        head = Req(uuid.uuid4(), "single", ids[0], ids[2], 1, "USD", reference="head")
        batch = [head, *build(batch_ops, view)]
        queued = Req(uuid.uuid4(), "single", ids[0], ids[2], 7, "USD", reference="queued")

        started, paused, release = asyncio.Event(), asyncio.Event(), asyncio.Event()
        seen: dict[str, Any] = {}

        async def victim() -> None:
            async with db.transaction() as session:
                seen["pid"] = await backend_pid(session)
                seen["now"] = await ledger_store.transaction_time(session)
                started.set()
                await ledger.submit_transfers(session, [r.new() for r in batch])
                if holding:
                    paused.set()
                    if how == "timeout":
                        async with asyncio.timeout(delay_ms / 1000):
                            await release.wait()
                    else:
                        await release.wait()

        async def timed_victim() -> None:
            async with asyncio.timeout(delay_ms / 1000):
                await victim()

        task = asyncio.create_task(timed_victim() if how == "timeout" and not holding else victim())
        second: asyncio.Task[tuple[datetime, list[ledger.Decision]]] | None = None
        if holding:
            await until(paused, task)
            assert paused.is_set(), task
            second = asyncio.create_task(submit_retrying(db, [queued]))
        else:
            await until(started, task)
            await asyncio.sleep(delay_ms / 1000)  # a random moment of the batch's life
        if how == "cancel":
            task.cancel()
        elif how == "terminate" and not task.done():
            await terminate(db, seen["pid"])
            release.set()
        [result] = await asyncio.gather(task, return_exceptions=True)
        if how == "terminate":
            # The batch may have ended just before the kill and left the dead connection in the pool.
            await db.engine.dispose()
        if holding:
            assert isinstance(result, BaseException), "an interrupted transaction does not commit"

        # All or nothing: either every transfer the batch would have created is stored, or none.
        before = copy.deepcopy(model)
        if "now" not in seen:  # interrupted before it began: any time will do
            async with db.transaction() as session:
                seen["now"] = await ledger_store.transaction_time(session)
        expected = model.submit(batch, seen["now"])
        would = [r.id for r, o in zip(batch, expected, strict=True) if o == "created"]
        assert head.id in would
        async with db.transaction() as session:
            found = set(await ledger_store.transfers_by_ids(session, would))
        committed = bool(found)
        event(f"{how}, {'holding its locks' if holding else 'at a random moment'}, committed: {committed}")
        assert found == (set(would) if committed else set()), (how, holding, result)
        if not committed:
            model = before
        if second is not None:
            # The writer queued on the interrupted batch's locks got them.
            now, decisions = await second
            assert [outcome(d) for d in decisions] == model.submit([queued], now) == ["created"]

        # The retry applies the batch exactly once: created if it had not committed, else "exists".
        now, decisions = await submit_retrying(db, batch)
        retried = model.submit(batch, now)
        assert [outcome(d) for d in decisions] == retried
        assert ("exists" if committed else "created") == retried[0]
        now, decisions = await submit_retrying(db, batch)
        again = model.submit(batch, now)
        assert [outcome(d) for d in decisions] == again
        assert all(a == "exists" for a, r in zip(again, retried, strict=True) if r in ("created", "exists"))

        await assert_totals_match(db, model)
        replayed = Model()
        replay(await journal_entries(db, start), replayed)
        assert {aid: a.totals for aid, a in replayed.accounts.items()} == {
            aid: a.totals for aid, a in model.accounts.items()
        }
        assert set(replayed.transfers) == set(model.transfers)

    harness.run(scenario())


# --- 5. the journal verifies ----------------------------------------------------------------


async def expiring_history(db: Database) -> None:
    """Every kind of entry once, an expiry included: a grant, a reservation posted in part,
    one voided, one expired after its timeout, an exchange, a closed account."""
    model = Model()
    tag = uuid.uuid4().hex[:8]
    source, commitment, commune, commune_ves, spare = await open_accounts(
        db,
        model,
        [
            spec_of(tag, (False, False), "USD", "source"),
            spec_of(tag, (True, False), "USD", "commitment"),
            spec_of(tag, (True, False), "USD", "commune"),
            spec_of(tag, (True, False), "VES", "commune"),
            spec_of(tag, (True, False), "USD", "commitment"),
        ],
    )
    clearing_usd, clearing_ves = await open_accounts(db, model, clearing_specs(tag))

    async def send(batch: list[Req]) -> None:
        now, decisions = await submit(db, batch)
        assert [outcome(d) for d in decisions] == model.submit(batch, now) == ["created"] * len(batch)

    await send([Req(uuid.uuid4(), "single", source, commitment, 10_000, "USD", "grant_commitment")])
    held, voided, short = (
        Req(uuid.uuid4(), "pending", commitment, commune, amount, "USD", "tranche", timeout=timeout)
        for amount, timeout in ((3_000, 3600), (1_000, None), (500, 1))
    )
    await send([held, voided, short])
    await send(
        [Req(uuid.uuid4(), "post", pending_id=held.id, amount=2_500), Req(uuid.uuid4(), "void", pending_id=voided.id)]
    )
    rate = Decimal("36.4218")
    base, counter = uuid.uuid4(), uuid.uuid4()
    pair = (base, counter, rate)
    await send(
        [
            Req(base, "single", commune, clearing_usd, 1_234, "USD", "exchange", exchange=pair, linked=True),
            Req(
                counter,
                "single",
                clearing_ves,
                commune_ves,
                counter_amount(1_234, rate),
                "VES",
                "exchange",
                exchange=pair,
            ),
        ]
    )
    async with db.transaction() as session:
        await ledger.close_account(session, spare)
    # The short reservation's timeout is real time: wait out what is left of it (once, computed).
    async with db.transaction() as session:
        now = await ledger_store.transaction_time(session)
    due = model.transfers[short.id].at + timedelta(seconds=1)
    await asyncio.sleep(max(0.0, (due - now).total_seconds()) + 0.01)
    async with db.transaction() as session:
        while await ledger.expire_due(session):
            pass
        [expiry] = (await ledger_store.resolutions_of(session, [short.id])).values()
    assert expiry.kind == "expire" and expiry.amount == 500 and expiry.created_at >= due


async def publish_journal(db: Database, signer: note.Signer, root: Path) -> tuple[str, int]:
    """Checkpoint the journal, then write what funding serves under /v1/ledger (the signed
    checkpoint, every tile and entry bundle read back from the database, the keys and the
    balances) as files under `root`. The signed checkpoint and its size."""
    log = journal.journal().log
    origin = journal.journal().origin
    async with db.transaction() as session:
        signed = await log.checkpoint(await session.connection(), [signer], datetime.now(UTC))
    size = parse_checkpoint(note.split_note(signed)[0]).size
    files: dict[str, bytes | str] = {
        "record/checkpoint": signed,
        "record/keys": json.dumps({"origin": origin, "verifier_keys": [signer.verifier.vkey]}),
    }
    async with db.transaction() as session:
        balances_size, accounts = await ledger_store.balances_snapshot(session, origin)
        assert balances_size == size
        files["balances"] = entries_format.balances_document(origin, balances_size, accounts)
        conn = await session.connection()
        for tile in tiles.tiles_for_size(size):
            files[f"record/{tile.path}"] = await public_log.read_tile(conn, log, tile.path)
            if tile.level == 0:
                bundle = tiles.Tile(None, tile.index, tile.width)
                files[f"record/{bundle.path}"] = await public_log.read_tile(conn, log, bundle.path)
    for path, content in files.items():
        target = root / "v1" / "ledger" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)
    return signed, size


def test_the_journal_rebuilds_every_balance_and_comuna_verify_accepts_it(
    harness: Harness, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Over everything this module's tests wrote: the journal replayed by the model gives every
    stored account; the signed checkpoint's root is the RFC 6962 root of the entries; and the
    outsider's verifier, served the journal as funding serves it, finds nothing wrong."""
    db = harness.db
    origin = journal.journal().origin
    signer = note.Signer.generate(origin)
    harness.run(expiring_history(db))
    signed, size = harness.run(publish_journal(db, signer, tmp_path / "www"))
    logged = harness.run(journal_entries(db))
    assert len(logged) == size

    model = Model()
    counts = replay(logged, model)

    async def stored() -> list[ledger_store.AccountRow]:
        async with db.transaction() as session:
            return await ledger_store.all_balances(session)

    accounts = harness.run(stored())
    assert {
        a.id: ([a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending], a.closed) for a in accounts
    } == {aid: (a.totals, a.closed) for aid, a in model.accounts.items()}
    text_, verified_by = note.open_note(signed, [signer.verifier])
    checkpoint = parse_checkpoint(text_)
    assert verified_by == [signer.verifier] and checkpoint.origin == origin
    assert checkpoint.root == rfc6962_root(logged)

    with serving(tmp_path / "www") as server:
        report = verifier.verify(
            verifier.Options(server.base, None, [signer.verifier.vkey], [], wait=0.0), progress=False
        )
        assert report.mismatches == []
        assert report.data["entries"] == {
            "total": size,
            "account": counts["account"],
            "closed": counts["closed"],
            "malformed": 0,
        }
        assert report.data["transfers"] == {
            k: counts[k] for k in ("single", "pending", "post", "void", "expire") if counts[k]
        }
        assert report.data["balances"] == {"size": size, "accounts": len(accounts), "compared": True}
        assert report.data["open_pending"] == sum(
            1 for s in model.transfers.values() if s.req.kind == "pending" and s.req.id not in model.resolved
        )
        capsys.readouterr()
        assert cli.main(["ledger", server.base, "--log-key", signer.verifier.vkey, "--wait", "0"]) == 0
        summary = dict(line.split("  ", 1) for line in capsys.readouterr().out.splitlines())
        assert summary["mismatches"].strip() == "0"
