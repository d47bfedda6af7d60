"""A double-entry, two-phase ledger on PostgreSQL, after TigerBeetle's data model (docs/ledger.md).

- An account holds one currency and four running totals (posted and pending debits and
  credits). Flags limit them: `debits_must_not_exceed_credits` (money held for someone: a
  commitment cannot pay out more than it received, reservations included) and the mirror
  flag; a closed account takes no transfer.
- A transfer moves a positive amount from a debit account to a credit account of the same
  currency, at once (`single`) or in two phases (`pending`, then `post` or `void` at most once,
  or `expire` once its timeout passed). Its id is chosen by the caller and is the idempotency
  key: resending the same transfer returns the stored one ("exists"); reusing the id for a
  different transfer is a conflict (`transfer_id_reused`), as in TigerBeetle and Mojaloop.
- Every account and transfer is appended to the public journal (`storage.journal`) in the
  transaction that writes it.

Concurrency: the accounts a batch touches are locked `FOR UPDATE` in ascending id order, so
writers never deadlock and balance checks see the latest committed totals. Every check runs
in memory (`postings.evaluate`) before the first write, and the writes run in a savepoint: a
refused transfer writes nothing and leaves the caller's transaction usable. PostgreSQL backs
every rule up with constraints and triggers (see `storage.models` and the migrations); if the
application's checks were ever wrong, the database refuses the commit rather than storing an
overdraft.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Literal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from comuna_funding.domain import journal as entries
from comuna_funding.domain import postings
from comuna_funding.domain.ids import account_id_for
from comuna_funding.domain.postings import CURRENCY, MAX_AMOUNT, MAX_REFERENCE, Exchange, NewTransfer
from comuna_funding.storage import journal, ledger_store
from comuna_funding.storage.ledger_store import AccountRow, CurrencyTotals, TransferRow
from comuna_funding.vocabulary import RESOLVING_KINDS, AccountKind, TransferKind
from comuna_platform.errors import Conflict, FailedPrecondition, InvalidInput, NotFound, ProblemError

__all__ = ["MAX_AMOUNT", "MAX_REFERENCE", "Exchange", "NewTransfer"]

MAX_KEY = 200
# Printable, no spaces: a key is one word on its journal line.
ACCOUNT_KEY = re.compile(r"^[!-~]{1,200}$")
# A concurrent writer can insert one of our ids between our check and our insert; we then
# re-read and decide again. Twice is enough: after the re-read the id is known to exist.
INSERT_ATTEMPTS = 2
# One request's batch: TigerBeetle's batch size, well under asyncpg's bind-parameter limit.
MAX_BATCH = 8190


@dataclass(frozen=True)
class AccountSpec:
    """What an account must be; `ensure_accounts` creates it or checks the existing one."""

    key: str
    currency: str
    kind: AccountKind
    debits_must_not_exceed_credits: bool = False
    credits_must_not_exceed_debits: bool = False

    @cached_property
    def id(self) -> uuid.UUID:
        return account_id_for(self.key)


@dataclass(frozen=True)
class TransferOutcome:
    transfer: TransferRow
    status: Literal["created", "exists"]


# A transfer's outcome in a batch: stored (now or before), or the reason it was refused.
Decision = TransferOutcome | ProblemError


@dataclass(frozen=True)
class LedgerTotal:
    currency: str
    debits_minor: int
    credits_minor: int
    transfers: int
    transferred_minor: int
    debits_pending_minor: int = 0
    credits_pending_minor: int = 0
    reserved_minor: int = 0

    @property
    def balanced(self) -> bool:
        """Every transfer applied once on each side: posted debits = posted credits = amounts
        posted, and pending debits = pending credits = what is still reserved."""
        return (
            self.debits_minor == self.credits_minor == self.transferred_minor
            and self.debits_pending_minor == self.credits_pending_minor == self.reserved_minor
        )


# --- accounts -------------------------------------------------------------------------------


def _check_spec(spec: AccountSpec) -> None:
    if not ACCOUNT_KEY.match(spec.key):
        raise InvalidInput(
            "account key must have 1 to 200 printable characters and no spaces", code="account_key_invalid"
        )
    if not CURRENCY.match(spec.currency):
        raise InvalidInput(f"{spec.currency!r} is not an ISO 4217 code", code="currency_invalid")
    if spec.kind not in AccountKind._value2member_map_:
        raise InvalidInput(f"unknown account kind {spec.kind!r}", code="account_kind_invalid")
    if spec.debits_must_not_exceed_credits and spec.credits_must_not_exceed_debits:
        raise InvalidInput("balance-limit flags are mutually exclusive", code="account_flags_exclusive")


def _matches(spec: AccountSpec, row: AccountRow) -> bool:
    return (row.currency, row.kind, row.debits_must_not_exceed_credits, row.credits_must_not_exceed_debits) == (
        spec.currency,
        spec.kind,
        spec.debits_must_not_exceed_credits,
        spec.credits_must_not_exceed_debits,
    )


async def ensure_accounts(session: AsyncSession, specs: Sequence[AccountSpec]) -> dict[str, AccountRow]:
    """Create the accounts that do not exist yet; return all of them by key.

    Account ids are derived from keys, so concurrent callers agree on them. An existing
    account with the same key but another currency, kind or flags is a conflict: silently
    reusing it would, for instance, drop an overdraft guard.
    """
    unique = list({spec.key: spec for spec in specs}.values())
    for spec in unique:
        _check_spec(spec)
    opened = await ledger_store.insert_accounts_if_absent(
        session,
        [
            {
                "id": spec.id,
                "key": spec.key,
                "currency": spec.currency,
                "kind": spec.kind,
                "debits_must_not_exceed_credits": spec.debits_must_not_exceed_credits,
                "credits_must_not_exceed_debits": spec.credits_must_not_exceed_debits,
            }
            for spec in unique
        ],
    )
    journal.append(session, "account", [(row.id, entries.account_entry(row)) for row in opened])
    found = await ledger_store.accounts_by_keys(session, [spec.key for spec in unique])
    for spec in unique:
        row = found.get(spec.key)
        if row is None or not _matches(spec, row):
            raise Conflict(f"account {spec.key} exists with other properties", code="account_key_reused", key=spec.key)
    return found


async def ensure_account(session: AsyncSession, spec: AccountSpec) -> AccountRow:
    return (await ensure_accounts(session, [spec]))[spec.key]


# --- transfers ------------------------------------------------------------------------------


def _body(transfer: NewTransfer) -> tuple[object, ...]:
    exchange = transfer.exchange
    return (
        transfer.debit_account_id,
        transfer.credit_account_id,
        transfer.amount,
        transfer.currency,
        transfer.code,
        transfer.reference,
        transfer.kind,
        transfer.pending_id,
        transfer.timeout_seconds,
        None if exchange is None else (exchange.base_id, exchange.counter_id, exchange.rate),
    )


_BODY_NAMES = (
    "debit_account_id",
    "credit_account_id",
    "amount",
    "currency",
    "code",
    "reference",
    "kind",
    "pending_id",
    "timeout_seconds",
    "exchange",
)


def _stored_as_request(row: TransferRow) -> NewTransfer:
    exchange = None
    if row.exchange_base_id is not None and row.exchange_counter_id is not None and row.exchange_rate is not None:
        exchange = Exchange(row.exchange_base_id, row.exchange_counter_id, row.exchange_rate)
    return NewTransfer(
        id=row.id,
        debit_account_id=row.debit_account_id,
        credit_account_id=row.credit_account_id,
        amount=row.amount,
        currency=row.currency,
        code=row.code,
        reference=row.reference,
        kind=TransferKind(row.kind),
        pending_id=row.pending_id,
        timeout_seconds=row.timeout_seconds,
        exchange=exchange,
    )


def _same_transfer(request: NewTransfer, row: TransferRow, pending: TransferRow | None) -> list[str]:
    """The fields in which a resent request differs from the stored transfer of its id. A post's
    or void's omitted accounts, currency and amount are the pending transfer's."""
    stored = _stored_as_request(row)
    if request.kind in RESOLVING_KINDS and request.kind == stored.kind and pending is not None:
        request = replace(
            request,
            debit_account_id=request.debit_account_id or pending.debit_account_id,
            credit_account_id=request.credit_account_id or pending.credit_account_id,
            currency=request.currency or pending.currency,
            amount=request.amount if request.amount is not None else pending.amount,
        )
    return [
        name for name, mine, theirs in zip(_BODY_NAMES, _body(request), _body(stored), strict=True) if mine != theirs
    ]


def _existing(
    batch: Sequence[NewTransfer], stored: dict[uuid.UUID, TransferRow], pendings: dict[uuid.UUID, TransferRow]
) -> dict[int, Decision]:
    """Decisions for the batch's ids already in the ledger: "exists", or a reused id refused."""
    decided: dict[int, Decision] = {}
    for index, transfer in enumerate(batch):
        row = stored.get(transfer.id)
        if row is None:
            continue
        differs = _same_transfer(transfer, row, pendings.get(row.pending_id) if row.pending_id else None)
        if differs:
            decided[index] = Conflict(
                f"transfer {transfer.id} already exists with a different {', '.join(differs)}",
                code="transfer_id_reused",
                transfer_id=str(transfer.id),
                differs=",".join(differs),
            )
        else:
            decided[index] = TransferOutcome(row, "exists")
    return decided


def _check_batch(batch: Sequence[NewTransfer]) -> None:
    if len(batch) > MAX_BATCH:
        raise InvalidInput(f"a batch holds at most {MAX_BATCH} transfers", code="batch_too_large")
    seen: set[uuid.UUID] = set()
    for transfer in batch:
        if transfer.id in seen:
            raise InvalidInput(
                f"transfer {transfer.id} appears twice in the batch",
                code="transfer_id_repeated",
                transfer_id=str(transfer.id),
            )
        seen.add(transfer.id)


async def submit_transfers(
    session: AsyncSession, batch: Sequence[NewTransfer], *, atomic: bool = False, allow_expire: bool = False
) -> list[Decision]:
    """Decide and store a batch of transfers in the caller's transaction; one decision each.

    Transfers are independent unless linked (a linked chain succeeds or fails as a whole), or
    unless `atomic` (the whole batch is one chain). A transfer whose id already holds the same
    transfer comes back as "exists" and is not applied again. A refused one writes nothing.
    Shape errors of one transfer (an invalid amount, code, ...) refuse that transfer; a batch
    that is too large or repeats an id is refused whole (InvalidInput).
    """
    _check_batch(batch)
    decisions: dict[int, Decision] = {}
    for index, transfer in enumerate(batch):
        try:
            postings.validate(transfer)
        except ProblemError as exc:
            decisions[index] = exc
    if atomic and decisions:
        return [decisions.get(i) or _linked_failure(t) for i, t in enumerate(batch)]
    for _ in range(INSERT_ATTEMPTS):
        result = await _attempt(session, batch, dict(decisions), atomic=atomic, allow_expire=allow_expire)
        if result is not None:
            return result
    raise Conflict("transfer ids were taken concurrently by other transfers", code="transfer_id_reused")


def _linked_failure(transfer: NewTransfer) -> ProblemError:
    return FailedPrecondition(
        "a transfer linked to this one was refused", code="linked_transfer_failed", transfer_id=str(transfer.id)
    )


def _atomic_refusal(batch: Sequence[NewTransfer], decisions: dict[int, Decision]) -> list[Decision]:
    """An atomic batch with a refusal: that refusal, and every other transfer refused with it."""
    return [d if isinstance(d := decisions.get(i), ProblemError) else _linked_failure(t) for i, t in enumerate(batch)]


def _within_chains(batch: Sequence[NewTransfer], decisions: dict[int, Decision]) -> tuple[list[int], list[NewTransfer]]:
    """The transfers still to decide (their indices, and them linked as the request links them).

    Chains are the request's: a chain with a member refused already (malformed, or its id
    reused) is refused whole, and a member stored before drops out of its chain without tying
    the transfer before it to the next chain (or leaving its own chain open)."""
    indices: list[int] = []
    undecided: list[NewTransfer] = []
    for group in postings.chains(batch, atomic=False):
        if any(isinstance(decisions.get(i), ProblemError) for i in group):
            for i in group:
                decisions.setdefault(i, _linked_failure(batch[i]))
            continue
        members = [i for i in group if i not in decisions]
        for position, i in enumerate(members):
            indices.append(i)
            tied = position < len(members) - 1 or batch[group[-1]].linked
            transfer = batch[i]
            undecided.append(transfer if transfer.linked == tied else replace(transfer, linked=tied))
    return indices, undecided


async def _attempt(
    session: AsyncSession,
    batch: Sequence[NewTransfer],
    decisions: dict[int, Decision],
    *,
    atomic: bool,
    allow_expire: bool,
) -> list[Decision] | None:
    """One try: lock, decide, write. None if a concurrent writer took one of our ids meanwhile."""
    open_indices = [i for i in range(len(batch)) if i not in decisions]
    pending_ids = [p for p in (batch[i].pending_id for i in open_indices) if p is not None]
    pendings = await ledger_store.transfers_by_ids(session, pending_ids)
    account_ids: set[uuid.UUID] = set()
    for index in open_indices:
        transfer = batch[index]
        account_ids.update(a for a in (transfer.debit_account_id, transfer.credit_account_id) if a is not None)
        found = pendings.get(transfer.pending_id) if transfer.pending_id else None
        if found is not None:
            account_ids.update((found.debit_account_id, found.credit_account_id))
    accounts = await ledger_store.lock_accounts(session, list(account_ids))
    # Read after the locks: whatever committed on these accounts before is visible now.
    stored = await ledger_store.transfers_by_ids(session, [batch[i].id for i in open_indices])
    existing = _existing([batch[i] for i in open_indices], stored, pendings)
    decisions.update({open_indices[j]: decision for j, decision in existing.items()})
    if atomic and any(isinstance(d, ProblemError) for d in decisions.values()):
        return _atomic_refusal(batch, decisions)
    if atomic:
        fresh = [i for i in open_indices if i not in decisions]
        undecided = [batch[i] for i in fresh]
    else:
        fresh, undecided = _within_chains(batch, decisions)
    resolved = await ledger_store.resolutions_of(session, list(pendings))
    book = postings.Book(accounts, pendings, set(resolved), await ledger_store.transaction_time(session))
    evaluation = postings.evaluate(undecided, book, atomic=atomic, allow_expire=allow_expire)
    accepted: dict[int, NewTransfer] = {}
    for j, decision in enumerate(evaluation.decisions):
        if isinstance(decision, NewTransfer):
            accepted[fresh[j]] = decision
        else:
            decisions[fresh[j]] = decision
    if atomic and len(accepted) != len(fresh):
        return _atomic_refusal(batch, decisions)
    written = await _write(session, list(accepted.values()), evaluation.deltas)
    if written is None:
        return None
    for index, transfer in accepted.items():
        decisions[index] = TransferOutcome(written[transfer.id], "created")
    journal.append(session, "transfer", [(t.id, entries.transfer_entry(written[t.id])) for t in accepted.values()])
    return [decisions[i] for i in range(len(batch))]


def _row(transfer: NewTransfer) -> dict[str, object]:
    exchange = transfer.exchange
    return {
        "id": transfer.id,
        "debit_account_id": transfer.debit_account_id,
        "credit_account_id": transfer.credit_account_id,
        "amount": transfer.amount,
        "currency": transfer.currency,
        "code": transfer.code,
        "reference": transfer.reference,
        "kind": transfer.kind.value,
        "pending_id": transfer.pending_id,
        "timeout_seconds": transfer.timeout_seconds,
        "exchange_base_id": None if exchange is None else exchange.base_id,
        "exchange_counter_id": None if exchange is None else exchange.counter_id,
        "exchange_rate": None if exchange is None else exchange.rate,
    }


async def _write(
    session: AsyncSession, accepted: Sequence[NewTransfer], deltas: dict[uuid.UUID, ledger_store.Deltas]
) -> dict[uuid.UUID, TransferRow] | None:
    """Insert and post in a savepoint; None if a concurrent writer took one of the ids."""
    if not accepted:
        return {}
    savepoint = await session.begin_nested()
    try:
        # Pending transfers first: a post of a pending transfer of the same batch references it.
        ordered = sorted(accepted, key=lambda t: t.kind in RESOLVING_KINDS)
        inserted = await ledger_store.insert_transfers(session, [_row(t) for t in ordered])
        if len(inserted) != len(accepted):
            await savepoint.rollback()
            return None
        await ledger_store.post_to_accounts(session, deltas)
    except IntegrityError as exc:
        await savepoint.rollback()
        # Only reachable if the checks above disagree with the database's constraints.
        raise FailedPrecondition(
            "the ledger's constraints refused the transfer", code="ledger_constraint_violated"
        ) from exc
    await savepoint.commit()
    return inserted


async def create_transfers(session: AsyncSession, batch: Sequence[NewTransfer]) -> list[TransferOutcome]:
    """Create a batch of transfers, all or nothing, in the caller's transaction.

    Transfers whose id already holds the same transfer come back as "exists" and are not
    posted again. If any transfer is refused, its error is raised and nothing is written.
    """
    decisions = await submit_transfers(session, batch, atomic=True)
    refused = [d for d in decisions if isinstance(d, ProblemError)]
    if refused:
        raise next((d for d in refused if d.code != "linked_transfer_failed"), refused[0])
    return [d for d in decisions if isinstance(d, TransferOutcome)]


async def create_transfer(session: AsyncSession, transfer: NewTransfer) -> TransferOutcome:
    return (await create_transfers(session, [transfer]))[0]


async def expire_due(session: AsyncSession, *, limit: int = 1000) -> int:
    """Void every pending transfer whose timeout passed (kind `expire`); how many. Ids derive
    from the pending transfer, so workers racing on one expire it once."""
    due = await ledger_store.due_pending_transfers(session, limit)
    if not due:
        return 0
    batch = [
        NewTransfer(
            id=account_id_for(f"expire:{p.id}"),
            debit_account_id=None,
            credit_account_id=None,
            amount=None,
            currency=None,
            code="pending_expired",
            kind=TransferKind.EXPIRE,
            pending_id=p.id,
        )
        for p in due
    ]
    decisions = await submit_transfers(session, batch, allow_expire=True)
    return sum(1 for d in decisions if isinstance(d, TransferOutcome) and d.status == "created")


# --- closing --------------------------------------------------------------------------------


async def close_account(session: AsyncSession, account_id: uuid.UUID) -> AccountRow:
    """Close an account for good (idempotent); refused while it holds a reservation."""
    locked = await ledger_store.lock_accounts(session, [account_id])
    account = locked.get(account_id)
    if account is None:
        raise NotFound(f"account {account_id} does not exist", code="account_not_found")
    if account.closed:
        return account
    if account.debits_pending or account.credits_pending:
        raise FailedPrecondition(
            f"account {account.key} holds pending transfers; post or void them first", code="account_has_pending"
        )
    await ledger_store.close_account(session, account_id)
    at = await ledger_store.transaction_time(session)
    journal.append(session, "closed", [(account_id, entries.account_closed_entry(account_id, at))])
    return replace(account, closed=True)


# --- totals ---------------------------------------------------------------------------------


def _total(row: CurrencyTotals) -> LedgerTotal:
    return LedgerTotal(
        currency=row.currency,
        debits_minor=row.debits_posted,
        credits_minor=row.credits_posted,
        transfers=row.transfers,
        transferred_minor=row.transferred,
        debits_pending_minor=row.debits_pending,
        credits_pending_minor=row.credits_pending,
        reserved_minor=row.reserved,
    )


async def ledger_totals(session: AsyncSession) -> list[LedgerTotal]:
    """Per currency: sum of debits, sum of credits, number of transfers (and their sum)."""
    return [_total(row) for row in await ledger_store.totals_by_currency(session)]


async def audit(session: AsyncSession) -> list[uuid.UUID]:
    """Accounts whose running totals disagree with their transfers; empty when the ledger is sound."""
    return await ledger_store.accounts_out_of_balance(session)
