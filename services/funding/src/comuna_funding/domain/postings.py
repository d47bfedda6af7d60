"""What a batch of transfers does to the ledger, decided in memory before anything is written.

Pure: given the accounts (read under their row locks), the pending transfers the batch
resolves, and the transaction's time, `evaluate` applies the batch in order and returns, per
transfer, either its resolved form (accepted) or the reason it is refused, plus the totals to
add to each account. Linked transfers (`linked=True` ties a transfer to the next one) form a
chain that is accepted or refused as a whole; in an atomic evaluation the whole batch is one
chain. The database's constraints check the same rules again when the result is written.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation, localcontext

from comuna_funding.storage.ledger_store import AccountRow, Deltas, TransferRow
from comuna_funding.vocabulary import RESOLVING_KINDS, AccountKind, TransferKind
from comuna_platform.errors import FailedPrecondition, InvalidInput, NotFound, ProblemError

MAX_AMOUNT = 2**63 - 1  # PostgreSQL bigint
CURRENCY = re.compile(r"^[A-Z]{3}$")
TRANSFER_CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_REFERENCE = 500
# Five years: longer reservations are commitments, not reservations.
MAX_TIMEOUT_SECONDS = 5 * 366 * 24 * 3600
# numeric(38, 18): 20 integer digits, 18 decimals.
MAX_RATE_DECIMALS = 18
MAX_RATE = Decimal(10) ** 20


@dataclass(frozen=True)
class Exchange:
    """The two legs of an exchange name each other and the rate (counter minor units per base minor unit)."""

    base_id: uuid.UUID
    counter_id: uuid.UUID
    rate: Decimal


@dataclass(frozen=True)
class NewTransfer:
    """A transfer as a client asks for it. A post, void or expire names `pending_id` and may leave
    the accounts, currency and (for a post: the full pending amount; for a void: always) the
    amount to the pending transfer."""

    id: uuid.UUID
    debit_account_id: uuid.UUID | None
    credit_account_id: uuid.UUID | None
    amount: int | None
    currency: str | None
    code: str
    reference: str = ""
    kind: TransferKind = TransferKind.SINGLE
    pending_id: uuid.UUID | None = None
    timeout_seconds: int | None = None
    exchange: Exchange | None = None
    # Tied to the next transfer of the batch: both succeed or fail together.
    linked: bool = False


def _refuse(transfer: NewTransfer, error: type[ProblemError], detail: str, code: str) -> ProblemError:
    return error(detail, code=code, transfer_id=str(transfer.id))


def validate(transfer: NewTransfer) -> None:
    """The checks that need no ledger state; raises InvalidInput."""
    resolving = transfer.kind in RESOLVING_KINDS
    if transfer.kind not in TransferKind._value2member_map_:
        raise _refuse(transfer, InvalidInput, f"unknown transfer kind {transfer.kind!r}", "transfer_kind_invalid")
    if resolving != (transfer.pending_id is not None):
        raise _refuse(
            transfer,
            InvalidInput,
            "post, void and expire name the pending transfer they resolve (pending_id); other kinds do not",
            "pending_id_must_match_kind",
        )
    if transfer.amount is not None and not 0 < transfer.amount <= MAX_AMOUNT:
        raise _refuse(
            transfer, InvalidInput, "amount must be a positive 64-bit integer of minor units", "amount_must_be_positive"
        )
    if not resolving:
        if transfer.amount is None or transfer.debit_account_id is None or transfer.credit_account_id is None:
            raise _refuse(
                transfer, InvalidInput, "debit and credit accounts and an amount are required", "transfer_incomplete"
            )
        if transfer.currency is None:
            raise _refuse(transfer, InvalidInput, "currency is required", "transfer_incomplete")
    if transfer.debit_account_id is not None and transfer.debit_account_id == transfer.credit_account_id:
        raise _refuse(transfer, InvalidInput, "debit and credit accounts must differ", "accounts_must_be_different")
    if transfer.currency is not None and not CURRENCY.match(transfer.currency):
        raise _refuse(transfer, InvalidInput, f"{transfer.currency!r} is not an ISO 4217 code", "currency_invalid")
    if not TRANSFER_CODE.match(transfer.code):
        raise _refuse(transfer, InvalidInput, "code must be a lower_snake_case word", "transfer_code_invalid")
    if len(transfer.reference) > MAX_REFERENCE:
        raise _refuse(transfer, InvalidInput, "reference is too long (500 characters at most)", "reference_too_long")
    if transfer.reference and not transfer.reference.isprintable():
        raise _refuse(transfer, InvalidInput, "reference must be printable text on one line", "reference_invalid")
    if transfer.timeout_seconds is not None:
        if transfer.kind != TransferKind.PENDING:
            raise _refuse(
                transfer, InvalidInput, "only a pending transfer has a timeout", "timeout_reserved_for_pending"
            )
        if not 0 < transfer.timeout_seconds <= MAX_TIMEOUT_SECONDS:
            raise _refuse(transfer, InvalidInput, "timeout must be 1 second to 5 years", "timeout_invalid")
    if transfer.exchange is not None:
        _validate_exchange(transfer, transfer.exchange)


def _validate_exchange(transfer: NewTransfer, exchange: Exchange) -> None:
    if transfer.kind != TransferKind.SINGLE:
        raise _refuse(transfer, InvalidInput, "an exchange leg is a single transfer", "exchange_invalid")
    if transfer.id not in (exchange.base_id, exchange.counter_id) or exchange.base_id == exchange.counter_id:
        raise _refuse(transfer, InvalidInput, "an exchange names its own two legs", "exchange_invalid")
    try:
        exponent = exchange.rate.as_tuple().exponent
        finite = exchange.rate.is_finite()
    except (AttributeError, InvalidOperation):
        finite, exponent = False, 0
    if not finite or not 0 < exchange.rate < MAX_RATE or (isinstance(exponent, int) and -exponent > MAX_RATE_DECIMALS):
        raise _refuse(
            transfer,
            InvalidInput,
            "the rate must be a positive decimal with at most 18 decimals",
            "exchange_rate_invalid",
        )


def counter_amount(base_amount: int, rate: Decimal) -> int:
    """The counter leg's amount: base × rate, rounded half to even (docs/ledger.md). Exact: 19
    digits of amount times 38 of rate fit in 60, so the product is never rounded first."""
    with localcontext() as exact:
        exact.prec = 60
        return int((Decimal(base_amount) * rate).to_integral_value(rounding=ROUND_HALF_EVEN))


@dataclass
class Book:
    """The ledger state a batch is decided against, read under the accounts' row locks."""

    accounts: dict[uuid.UUID, AccountRow]
    # Pending transfers named by the batch's resolutions (those that exist).
    pendings: dict[uuid.UUID, TransferRow]
    # Pending transfers already resolved in the database.
    resolved: set[uuid.UUID]
    now: datetime
    totals: dict[uuid.UUID, list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.totals = {
            aid: [a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending]
            for aid, a in self.accounts.items()
        }


@dataclass(frozen=True)
class Evaluation:
    # Per transfer of the batch, in order: its resolved form if accepted, else why it is refused.
    decisions: list[NewTransfer | ProblemError]
    deltas: dict[uuid.UUID, Deltas]

    @property
    def accepted(self) -> list[NewTransfer]:
        return [d for d in self.decisions if isinstance(d, NewTransfer)]

    @property
    def refusals(self) -> list[ProblemError]:
        return [d for d in self.decisions if isinstance(d, ProblemError)]


class _Chain:
    """Mutations of one chain, undone if any of its transfers is refused."""

    def __init__(self, book: Book, created: dict[uuid.UUID, TransferRow | NewTransfer]) -> None:
        self.book = book
        self.created = created
        self.undo_totals: dict[uuid.UUID, list[int]] = {}
        self.resolved: list[uuid.UUID] = []
        self.new_pendings: list[uuid.UUID] = []

    def add(self, account_id: uuid.UUID, index: int, amount: int) -> None:
        totals = self.book.totals[account_id]
        self.undo_totals.setdefault(account_id, list(totals))
        totals[index] += amount

    def rollback(self) -> None:
        for account_id, totals in self.undo_totals.items():
            self.book.totals[account_id] = totals
        for pending_id in self.resolved:
            self.book.resolved.discard(pending_id)
        for pending_id in self.new_pendings:
            self.created.pop(pending_id, None)


DP, CP, DQ, CQ = 0, 1, 2, 3


def _apply(transfer: NewTransfer, chain: _Chain, allow_expire: bool) -> NewTransfer:
    """Apply one transfer to the chain's state; its resolved form, or raises why it is refused."""
    book = chain.book
    if transfer.kind == TransferKind.EXPIRE and not allow_expire:
        raise _refuse(transfer, InvalidInput, "only the ledger expires pending transfers", "transfer_kind_reserved")
    pending: TransferRow | NewTransfer | None = None
    if transfer.pending_id is not None:
        pending = book.pendings.get(transfer.pending_id) or chain.created.get(transfer.pending_id)
        transfer = _resolution(transfer, pending, book, allow_expire)
    assert transfer.debit_account_id is not None and transfer.credit_account_id is not None
    assert transfer.amount is not None
    debit, credit = _account(transfer, "debit", book), _account(transfer, "credit", book)
    for account in (debit, credit):
        if account.closed:
            side = "debit" if account is debit else "credit"
            raise _refuse(transfer, FailedPrecondition, f"account {account.key} is closed", f"{side}_account_closed")
        if account.currency != transfer.currency:
            side = "debit" if account is debit else "credit"
            raise _refuse(
                transfer,
                InvalidInput,
                f"{side} account holds {account.currency}, the transfer is in {transfer.currency}",
                "currency_mismatch",
            )
    amount = transfer.amount
    if transfer.kind == TransferKind.SINGLE:
        chain.add(debit.id, DP, amount)
        chain.add(credit.id, CP, amount)
    elif transfer.kind == TransferKind.PENDING:
        chain.add(debit.id, DQ, amount)
        chain.add(credit.id, CQ, amount)
        chain.created[transfer.id] = transfer
        chain.new_pendings.append(transfer.id)
    else:
        assert pending is not None and transfer.pending_id is not None and pending.amount is not None
        chain.add(debit.id, DQ, -pending.amount)
        chain.add(credit.id, CQ, -pending.amount)
        if transfer.kind == TransferKind.POST:
            chain.add(debit.id, DP, amount)
            chain.add(credit.id, CP, amount)
        book.resolved.add(transfer.pending_id)
        chain.resolved.append(transfer.pending_id)
    _check_limits(transfer, debit, credit, book)
    return transfer


def _resolution(
    transfer: NewTransfer, pending: TransferRow | NewTransfer | None, book: Book, allow_expire: bool
) -> NewTransfer:
    assert transfer.pending_id is not None
    if pending is None:
        raise _refuse(
            transfer, NotFound, f"pending transfer {transfer.pending_id} does not exist", "pending_transfer_not_found"
        )
    if pending.kind != TransferKind.PENDING:
        raise _refuse(
            transfer,
            FailedPrecondition,
            f"transfer {transfer.pending_id} is not pending",
            "pending_transfer_not_pending",
        )
    if transfer.pending_id in book.resolved:
        raise _refuse(
            transfer,
            FailedPrecondition,
            f"pending transfer {transfer.pending_id} is already posted, voided or expired",
            "pending_transfer_already_resolved",
        )
    assert pending.amount is not None
    if isinstance(pending, TransferRow) and pending.timeout_seconds is not None:
        due = pending.created_at + timedelta(seconds=pending.timeout_seconds)
        if transfer.kind == TransferKind.EXPIRE and book.now < due:
            raise _refuse(transfer, FailedPrecondition, "the pending transfer has not timed out", "pending_not_due")
        if transfer.kind != TransferKind.EXPIRE and book.now >= due:
            raise _refuse(
                transfer, FailedPrecondition, "the pending transfer has timed out", "pending_transfer_expired"
            )
    elif transfer.kind == TransferKind.EXPIRE and allow_expire:
        raise _refuse(transfer, FailedPrecondition, "the pending transfer has no timeout", "pending_not_due")
    for side, given, expected in (
        ("debit", transfer.debit_account_id, pending.debit_account_id),
        ("credit", transfer.credit_account_id, pending.credit_account_id),
    ):
        if given is not None and given != expected:
            raise _refuse(
                transfer,
                InvalidInput,
                f"the {side} account differs from the pending transfer's",
                f"pending_transfer_has_different_{side}_account",
            )
    if transfer.currency is not None and transfer.currency != pending.currency:
        raise _refuse(transfer, InvalidInput, "the currency differs from the pending transfer's", "currency_mismatch")
    if transfer.amount is not None:
        if transfer.kind == TransferKind.POST and transfer.amount > pending.amount:
            raise _refuse(
                transfer,
                FailedPrecondition,
                f"posts {transfer.amount}, more than the {pending.amount} reserved",
                "exceeds_pending_transfer_amount",
            )
        if transfer.kind != TransferKind.POST and transfer.amount != pending.amount:
            raise _refuse(
                transfer,
                InvalidInput,
                "a void releases the whole pending amount",
                "pending_transfer_has_different_amount",
            )
    amount = transfer.amount if transfer.amount is not None else pending.amount
    return replace(
        transfer,
        debit_account_id=pending.debit_account_id,
        credit_account_id=pending.credit_account_id,
        currency=pending.currency,
        amount=amount,
    )


def _account(transfer: NewTransfer, side: str, book: Book) -> AccountRow:
    account_id = transfer.debit_account_id if side == "debit" else transfer.credit_account_id
    assert account_id is not None
    account = book.accounts.get(account_id)
    if account is None:
        raise _refuse(transfer, NotFound, f"{side} account {account_id} does not exist", f"{side}_account_not_found")
    return account


def _check_limits(transfer: NewTransfer, debit: AccountRow, credit: AccountRow, book: Book) -> None:
    for account in (debit, credit):
        totals = book.totals[account.id]
        for index, name in (
            (DP, "debits_posted"),
            (CP, "credits_posted"),
            (DQ, "debits_pending"),
            (CQ, "credits_pending"),
        ):
            if totals[index] > MAX_AMOUNT:
                raise _refuse(
                    transfer,
                    FailedPrecondition,
                    f"the {name} of account {account.key} would overflow",
                    f"overflows_{name}",
                )
        if account.debits_must_not_exceed_credits and totals[DP] + totals[DQ] > totals[CP]:
            raise FailedPrecondition(
                f"account {account.key} holds {totals[CP] - totals[DP] - totals[DQ] + (transfer.amount or 0)}, "
                f"less than {transfer.amount}",
                code="exceeds_credits",
                transfer_id=str(transfer.id),
                account_id=str(account.id),
            )
        if account.credits_must_not_exceed_debits and totals[CP] + totals[CQ] > totals[DP]:
            raise FailedPrecondition(
                f"account {account.key} cannot be credited beyond its debits",
                code="exceeds_debits",
                transfer_id=str(transfer.id),
                account_id=str(account.id),
            )


def _check_exchanges(chain: Sequence[NewTransfer], book: Book) -> None:
    """Every exchange leg has its partner in the same chain, with the same pair and rate, in
    another currency, through the clearing accounts, for the amount the rate gives."""
    by_id = {t.id: t for t in chain}
    for leg in chain:
        exchange = leg.exchange
        if exchange is None:
            continue
        base, counter = by_id.get(exchange.base_id), by_id.get(exchange.counter_id)
        if base is None or counter is None or base.exchange != counter.exchange:
            raise _refuse(
                leg, InvalidInput, "an exchange's two legs are linked transfers of one batch", "exchange_unpaired"
            )
        if base.currency == counter.currency:
            raise _refuse(leg, InvalidInput, "an exchange's legs are in two currencies", "exchange_same_currency")
        assert base.amount is not None and counter.amount is not None
        if counter.amount != counter_amount(base.amount, exchange.rate):
            raise _refuse(
                leg,
                InvalidInput,
                f"at {exchange.rate}, {base.amount} gives {counter_amount(base.amount, exchange.rate)}, "
                f"not {counter.amount}",
                "exchange_amount_mismatch",
            )
        base_clearing = book.accounts.get(base.credit_account_id) if base.credit_account_id else None
        counter_clearing = book.accounts.get(counter.debit_account_id) if counter.debit_account_id else None
        for clearing in (base_clearing, counter_clearing):
            if clearing is None or clearing.kind != AccountKind.CLEARING:
                raise _refuse(
                    leg,
                    InvalidInput,
                    "an exchange goes through the clearing accounts: the base leg credits one, the counter leg "
                    "debits the other",
                    "exchange_not_through_clearing",
                )


def chains(batch: Sequence[NewTransfer], atomic: bool) -> list[list[int]]:
    """Indices of the batch grouped into chains (a linked transfer joins the next one)."""
    if atomic:
        return [list(range(len(batch)))] if batch else []
    groups: list[list[int]] = []
    current: list[int] = []
    for index, transfer in enumerate(batch):
        current.append(index)
        if not transfer.linked:
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    return groups


def evaluate(batch: Sequence[NewTransfer], book: Book, *, atomic: bool, allow_expire: bool = False) -> Evaluation:
    """Decide every transfer of `batch` (none of which is already stored) against `book`."""
    decided: list[NewTransfer | ProblemError | None] = [None] * len(batch)
    created: dict[uuid.UUID, TransferRow | NewTransfer] = {}
    for group in chains(batch, atomic):
        chain = _Chain(book, created)
        accepted: list[NewTransfer] = []
        failure: tuple[int, ProblemError] | None = None
        if not atomic and batch[group[-1]].linked:
            error = _refuse(
                batch[group[-1]], InvalidInput, "the last linked transfer has no next one", "linked_chain_open"
            )
            failure = (group[-1], error)
        else:
            for index in group:
                try:
                    accepted.append(_apply(batch[index], chain, allow_expire))
                except ProblemError as exc:
                    failure = (index, exc)
                    break
            if failure is None:
                try:
                    _check_exchanges(accepted, book)
                except ProblemError as exc:
                    failure = (next(i for i in group if str(batch[i].id) == exc.extra.get("transfer_id")), exc)
        if failure is None:
            for index, resolved in zip(group, accepted, strict=True):
                decided[index] = resolved
            continue
        chain.rollback()
        failed_at, error = failure
        for index in group:
            decided[index] = (
                error
                if index == failed_at
                else FailedPrecondition(
                    "a transfer linked to this one was refused",
                    code="linked_transfer_failed",
                    transfer_id=str(batch[index].id),
                )
            )
    deltas: dict[uuid.UUID, Deltas] = {}
    for aid, totals in book.totals.items():
        account = book.accounts[aid]
        before = (account.debits_posted, account.credits_posted, account.debits_pending, account.credits_pending)
        if tuple(totals) != before:
            dp, cp, dq, cq = (now - then for now, then in zip(totals, before, strict=True))
            deltas[aid] = (dp, cp, dq, cq)
    decisions = [d for d in decided if d is not None]
    if len(decisions) != len(batch):  # every chain decides each of its members
        raise RuntimeError("a transfer of the batch was left undecided")
    return Evaluation(decisions, deltas)
