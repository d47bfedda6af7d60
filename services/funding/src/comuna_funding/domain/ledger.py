"""A double-entry ledger on PostgreSQL, after TigerBeetle's data model.

- An account holds one currency and two running totals, `debits_posted` and
  `credits_posted`. Flags limit them: `debits_must_not_exceed_credits` (money held for
  someone: an earmark cannot pay out more than it received) and the mirror flag.
- A transfer moves a positive amount from a debit account to a credit account of the same
  currency. Its id is chosen by the caller and is the idempotency key: resending the same
  transfer returns the stored one ("exists"); reusing the id for a different transfer is a
  conflict (`transfer_id_reused`), as in TigerBeetle and Mojaloop.
- Each transfer adds its amount to one account's debits and another's credits in the same
  transaction, so for every currency the sum of all debits equals the sum of all credits.

Concurrency: the accounts a batch touches are locked `FOR UPDATE` in ascending id order, so
writers never deadlock and balance checks see the latest committed totals. Every check runs
before the first write, and the writes run in a savepoint: a refused transfer writes nothing
and leaves the caller's transaction usable (the consumers record a refusal and carry on).
PostgreSQL backs every rule up with constraints (see `storage.models`); if the application's
checks were ever wrong, the database refuses the commit rather than storing an overdraft.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields
from functools import cached_property
from typing import Literal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from comuna_funding.domain.ids import account_id_for
from comuna_funding.storage import ledger_store
from comuna_funding.storage.ledger_store import AccountRow, CurrencyTotals, TransferRow
from comuna_funding.vocabulary import AccountKind
from comuna_platform.errors import Conflict, FailedPrecondition, InvalidInput, NotFound

MAX_AMOUNT = 2**63 - 1  # PostgreSQL bigint
CURRENCY = re.compile(r"^[A-Z]{3}$")
TRANSFER_CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_REFERENCE = 500
MAX_KEY = 200
# A concurrent writer can insert one of our ids between our check and our insert; we then
# re-read and decide again. Twice is enough: after the re-read the id is known to exist.
INSERT_ATTEMPTS = 2


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
class NewTransfer:
    id: uuid.UUID
    debit_account_id: uuid.UUID
    credit_account_id: uuid.UUID
    amount: int
    currency: str
    code: str
    reference: str = ""


@dataclass(frozen=True)
class TransferOutcome:
    transfer: TransferRow
    status: Literal["created", "exists"]


@dataclass(frozen=True)
class LedgerTotal:
    currency: str
    debits_minor: int
    credits_minor: int
    transfers: int
    transferred_minor: int

    @property
    def balanced(self) -> bool:
        """Every transfer posted once on each side: debits = credits = amounts moved."""
        return self.debits_minor == self.credits_minor == self.transferred_minor


# --- accounts -------------------------------------------------------------------------------


def _check_spec(spec: AccountSpec) -> None:
    if not spec.key or len(spec.key) > MAX_KEY:
        raise InvalidInput("account key must have 1 to 200 characters", code="account_key_invalid")
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
    await ledger_store.insert_accounts_if_absent(
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
    found = await ledger_store.accounts_by_keys(session, [spec.key for spec in unique])
    for spec in unique:
        row = found.get(spec.key)
        if row is None or not _matches(spec, row):
            raise Conflict(f"account {spec.key} exists with other properties", code="account_key_reused", key=spec.key)
    return found


async def ensure_account(session: AsyncSession, spec: AccountSpec) -> AccountRow:
    return (await ensure_accounts(session, [spec]))[spec.key]


# --- transfers ------------------------------------------------------------------------------


def _validate(transfer: NewTransfer) -> None:
    if not 0 < transfer.amount <= MAX_AMOUNT:
        raise InvalidInput(
            "amount must be a positive 64-bit integer of minor units",
            code="amount_must_be_positive",
            transfer_id=str(transfer.id),
        )
    if transfer.debit_account_id == transfer.credit_account_id:
        raise InvalidInput(
            "debit and credit accounts must differ", code="accounts_must_be_different", transfer_id=str(transfer.id)
        )
    if not CURRENCY.match(transfer.currency):
        raise InvalidInput(
            f"{transfer.currency!r} is not an ISO 4217 code", code="currency_invalid", transfer_id=str(transfer.id)
        )
    if not TRANSFER_CODE.match(transfer.code):
        raise InvalidInput(
            "code must be a lower_snake_case word", code="transfer_code_invalid", transfer_id=str(transfer.id)
        )
    if len(transfer.reference) > MAX_REFERENCE:
        raise InvalidInput("reference is too long", code="reference_too_long", transfer_id=str(transfer.id))


_BODY_FIELDS = tuple(f.name for f in fields(NewTransfer) if f.name != "id")


def _differences(new: NewTransfer, stored: TransferRow) -> list[str]:
    return [name for name in _BODY_FIELDS if getattr(new, name) != getattr(stored, name)]


def _resolve_existing(
    batch: Sequence[NewTransfer], stored: dict[uuid.UUID, TransferRow]
) -> dict[uuid.UUID, TransferOutcome]:
    """Outcomes of ids already in the ledger; raises if one of them names another transfer."""
    outcomes: dict[uuid.UUID, TransferOutcome] = {}
    for transfer in batch:
        existing = stored.get(transfer.id)
        if existing is None:
            continue
        differs = _differences(transfer, existing)
        if differs:
            raise Conflict(
                f"transfer {transfer.id} already exists with a different {', '.join(differs)}",
                code="transfer_id_reused",
                transfer_id=str(transfer.id),
                differs=",".join(differs),
            )
        outcomes[transfer.id] = TransferOutcome(existing, "exists")
    return outcomes


def _check_accounts(transfer: NewTransfer, accounts: dict[uuid.UUID, AccountRow]) -> None:
    for side, account_id in (("debit", transfer.debit_account_id), ("credit", transfer.credit_account_id)):
        account = accounts.get(account_id)
        if account is None:
            raise NotFound(
                f"{side} account {account_id} does not exist",
                code=f"{side}_account_not_found",
                transfer_id=str(transfer.id),
            )
        if account.currency != transfer.currency:
            raise InvalidInput(
                f"{side} account holds {account.currency}, the transfer is in {transfer.currency}",
                code="currency_mismatch",
                transfer_id=str(transfer.id),
            )


def apply_limits(
    transfers: Sequence[NewTransfer], accounts: dict[uuid.UUID, AccountRow]
) -> dict[uuid.UUID, tuple[int, int]]:
    """Apply the transfers in order to the accounts' totals, enforcing the flags.

    Returns the (debits, credits) to add to each account. Pure: raises FailedPrecondition on
    the first transfer that would overdraw a flagged account or overflow a total.
    """
    totals = {aid: [a.debits_posted, a.credits_posted] for aid, a in accounts.items()}
    for transfer in transfers:
        debit, credit = accounts[transfer.debit_account_id], accounts[transfer.credit_account_id]
        debit_totals, credit_totals = totals[debit.id], totals[credit.id]
        new_debits = debit_totals[0] + transfer.amount
        new_credits = credit_totals[1] + transfer.amount
        if new_debits > MAX_AMOUNT:
            raise FailedPrecondition(
                "the debit account's total would overflow", code="overflows_debits_posted", transfer_id=str(transfer.id)
            )
        if new_credits > MAX_AMOUNT:
            raise FailedPrecondition(
                "the credit account's total would overflow",
                code="overflows_credits_posted",
                transfer_id=str(transfer.id),
            )
        if debit.debits_must_not_exceed_credits and new_debits > debit_totals[1]:
            raise FailedPrecondition(
                f"account {debit.key} holds {debit_totals[1] - debit_totals[0]}, less than {transfer.amount}",
                code="exceeds_credits",
                transfer_id=str(transfer.id),
                account_id=str(debit.id),
            )
        if credit.credits_must_not_exceed_debits and new_credits > credit_totals[0]:
            raise FailedPrecondition(
                f"account {credit.key} cannot be credited beyond its debits",
                code="exceeds_debits",
                transfer_id=str(transfer.id),
                account_id=str(credit.id),
            )
        debit_totals[0] = new_debits
        credit_totals[1] = new_credits
    return {
        aid: (totals[aid][0] - a.debits_posted, totals[aid][1] - a.credits_posted)
        for aid, a in accounts.items()
        if (totals[aid][0], totals[aid][1]) != (a.debits_posted, a.credits_posted)
    }


async def create_transfers(session: AsyncSession, batch: Sequence[NewTransfer]) -> list[TransferOutcome]:
    """Create a batch of transfers, all or nothing, in the caller's transaction.

    Transfers whose id already holds the same transfer come back as "exists" and are not
    posted again. If any transfer is refused, the error is raised and nothing is written.
    """
    seen: set[uuid.UUID] = set()
    for transfer in batch:
        _validate(transfer)
        if transfer.id in seen:
            raise InvalidInput(f"transfer {transfer.id} appears twice in the batch", code="transfer_id_repeated")
        seen.add(transfer.id)
    ids = [t.id for t in batch]
    for _ in range(INSERT_ATTEMPTS):
        outcomes = _resolve_existing(batch, await ledger_store.transfers_by_ids(session, ids))
        pending = [t for t in batch if t.id not in outcomes]
        if not pending:
            break
        accounts = await ledger_store.lock_accounts(
            session, [aid for t in pending for aid in (t.debit_account_id, t.credit_account_id)]
        )
        # A writer that held the locks may have committed one of our ids meanwhile.
        outcomes = _resolve_existing(batch, await ledger_store.transfers_by_ids(session, ids))
        pending = [t for t in batch if t.id not in outcomes]
        for transfer in pending:
            _check_accounts(transfer, accounts)
        deltas = apply_limits(pending, accounts)
        created = await _write(session, pending, deltas)
        if created is not None:
            stored = await ledger_store.transfers_by_ids(session, [t.id for t in pending])
            outcomes.update({tid: TransferOutcome(stored[tid], "created") for tid in created})
            break
    else:
        raise Conflict("transfer ids were taken concurrently by other transfers", code="transfer_id_reused")
    return [outcomes[t.id] for t in batch]


async def _write(
    session: AsyncSession, pending: Sequence[NewTransfer], deltas: dict[uuid.UUID, tuple[int, int]]
) -> set[uuid.UUID] | None:
    """Insert and post in a savepoint; None if a concurrent writer took one of the ids."""
    savepoint = await session.begin_nested()
    try:
        inserted = await ledger_store.insert_transfers(
            session,
            [
                {
                    "id": t.id,
                    "debit_account_id": t.debit_account_id,
                    "credit_account_id": t.credit_account_id,
                    "amount": t.amount,
                    "currency": t.currency,
                    "code": t.code,
                    "reference": t.reference,
                }
                for t in pending
            ],
        )
        if len(inserted) != len(pending):
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


async def create_transfer(session: AsyncSession, transfer: NewTransfer) -> TransferOutcome:
    return (await create_transfers(session, [transfer]))[0]


# --- totals ---------------------------------------------------------------------------------


def _total(row: CurrencyTotals) -> LedgerTotal:
    return LedgerTotal(
        currency=row.currency,
        debits_minor=row.debits_posted,
        credits_minor=row.credits_posted,
        transfers=row.transfers,
        transferred_minor=row.transferred,
    )


async def ledger_totals(session: AsyncSession) -> list[LedgerTotal]:
    """Per currency: sum of debits, sum of credits, number of transfers (and their sum)."""
    return [_total(row) for row in await ledger_store.totals_by_currency(session)]


async def audit(session: AsyncSession) -> list[uuid.UUID]:
    """Accounts whose running totals disagree with their transfers; empty when the ledger is sound."""
    return await ledger_store.accounts_out_of_balance(session)
