"""Reconciliation of an external statement with the ledger (docs/ledger.md, "Reconciliation").

A funder's treasury or a bank sends the statement of an account the ledger mirrors (a source,
a commune's or a project's account) as CSV: `date,reference,amount_minor,currency,direction`.
The file is checked whole (any bad line refuses it, nothing written), then each line is paired
with a posted transfer of that account (single or post) in the statement's period with the same
reference, amount and direction; each side is used at most once, earliest first (lines by date
then line number, transfers in ledger order), so the same file and ledger always pair the same
way. What is left over is reported on both sides, and the reservations still open at the
period's end are listed apart: the ledger holds them, no statement can show them yet.

The matching itself (`Matcher`, `match`) is pure; `import_statement` feeds it the ledger page
by page, so memory grows with the file (at most the request body's size), not the ledger.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from comuna_funding.domain.ids import FUNDING_NAMESPACE
from comuna_funding.domain.postings import MAX_AMOUNT, MAX_REFERENCE
from comuna_funding.storage import ledger_store
from comuna_funding.storage import statements as store
from comuna_funding.storage.ledger_store import AccountRow
from comuna_funding.storage.models import Statement
from comuna_funding.storage.statements import LedgerMovement, Sums
from comuna_funding.vocabulary import AccountKind, LedgerItemStatus, ReconciliationList, StatementDirection
from comuna_platform.bulk import BulkFormat, BulkInputError, BulkRow, RowError, RowErrors, read_rows
from comuna_platform.errors import InvalidInput, NotFound
from comuna_platform.ids import DeterministicIds
from comuna_platform.uow import UnitOfWork

COLUMNS = ("date", "reference", "amount_minor", "currency", "direction")
# Accounts with a counterpart outside the ledger: a funder's money, a commune's or a project's
# bank account. Commitment and clearing accounts exist only inside the ledger.
RECONCILABLE = frozenset({AccountKind.SOURCE, AccountKind.COMMUNE, AccountKind.PROJECT})
# Items of each list a report carries; the rest are paged (`items`).
LISTED = 100
MAX_PAGE = 500
# Ledger transfers read per query while matching.
LEDGER_PAGE = 2000

_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_INTEGER = re.compile(r"^[0-9]{1,19}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_IDS = DeterministicIds(FUNDING_NAMESPACE)


@dataclass(frozen=True, slots=True)
class StatementLine:
    line: int
    date: date
    reference: str
    amount_minor: int
    direction: StatementDirection


@dataclass(frozen=True, slots=True)
class Movement:
    """A ledger transfer of the reconciled account, seen from that account."""

    transfer_id: uuid.UUID
    seq: int
    at: datetime
    reference: str
    amount_minor: int
    direction: StatementDirection


Key = tuple[str, int, StatementDirection]


def _key(item: StatementLine | Movement) -> Key:
    return (item.reference, item.amount_minor, item.direction)


class Matcher:
    """Pairs ledger movements, offered in ledger order, with the statement's lines.

    Lines wait in one queue per (reference, amount, direction), earliest first; a movement
    takes the head of its queue, or none. So the n-th movement of a key pairs with the n-th
    line of that key: each side once, the same pairs for the same inputs.
    """

    def __init__(self, lines: Iterable[StatementLine]) -> None:
        self._queues: dict[Key, deque[StatementLine]] = {}
        for line in sorted(lines, key=lambda line: (line.date, line.line)):
            self._queues.setdefault(_key(line), deque()).append(line)

    def offer(self, movement: Movement) -> StatementLine | None:
        """The line this movement accounts for (taken), or None: unmatched in the statement."""
        queue = self._queues.get(_key(movement))
        return queue.popleft() if queue else None

    def left(self) -> list[StatementLine]:
        """The lines no movement took, by line number."""
        return sorted((line for queue in self._queues.values() for line in queue), key=lambda line: line.line)


@dataclass(frozen=True)
class Matching:
    # line number -> the transfer it matched
    matched: dict[int, uuid.UUID]
    unmatched_lines: list[StatementLine]
    unmatched_movements: list[Movement]
    # unmatched line number -> the open pending transfer that would match it once posted
    pending_for: dict[int, uuid.UUID] = field(default_factory=dict)


def match(lines: Sequence[StatementLine], posted: Sequence[Movement], pending: Sequence[Movement] = ()) -> Matching:
    """The whole pairing at once (the use case streams the same steps)."""
    matcher = Matcher(lines)
    matched: dict[int, uuid.UUID] = {}
    unmatched: list[Movement] = []
    for movement in sorted(posted, key=lambda m: m.seq):
        line = matcher.offer(movement)
        if line is None:
            unmatched.append(movement)
        else:
            matched[line.line] = movement.transfer_id
    left = matcher.left()
    return Matching(matched, left, unmatched, pending_matches(left, pending))


def pending_matches(lines: Sequence[StatementLine], pending: Iterable[Movement]) -> dict[int, uuid.UUID]:
    """Unmatched lines an open reservation would account for once posted (same rule, earliest first)."""
    matcher = Matcher(lines)
    found: dict[int, uuid.UUID] = {}
    for movement in sorted(pending, key=lambda m: m.seq):
        line = matcher.offer(movement)
        if line is not None:
            found[line.line] = movement.transfer_id
    return found


# --- the file ------------------------------------------------------------------------------


def check_row(row: BulkRow, currency: str, latest: date, errors: RowErrors) -> StatementLine | None:
    """One line of the file, or None with its errors added (every bad field is listed)."""
    fields, line = row.fields, row.line
    before = errors.count
    day: date | None = None
    raw_date = fields["date"]
    if not _DATE.match(raw_date):
        errors.add(line, "date_invalid", "date must be YYYY-MM-DD", "date")
    else:
        try:
            day = date.fromisoformat(raw_date)
        except ValueError:
            errors.add(line, "date_invalid", "date is not a calendar day", "date")
        else:
            if day > latest:
                errors.add(line, "date_in_future", f"date is after {latest.isoformat()}", "date")
    reference = fields["reference"]
    if len(reference) > MAX_REFERENCE:
        errors.add(line, "reference_too_long", f"reference has more than {MAX_REFERENCE} characters", "reference")
    elif not reference.isprintable():
        errors.add(line, "reference_invalid", "reference must be printable text on one line", "reference")
    amount = _amount(fields["amount_minor"], line, errors)
    raw_currency = fields["currency"]
    if not _CURRENCY.match(raw_currency):
        errors.add(line, "currency_invalid", "currency must be an ISO 4217 code (three capital letters)", "currency")
    elif raw_currency != currency:
        errors.add(line, "currency_mismatch", f"the account holds {currency}, not {raw_currency}", "currency")
    direction: StatementDirection | None = None
    try:
        direction = StatementDirection(fields["direction"].lower())
    except ValueError:
        errors.add(line, "direction_invalid", "direction must be debit or credit", "direction")
    if errors.count > before or day is None or amount is None or direction is None:
        return None
    return StatementLine(line, day, reference, amount, direction)


def _amount(raw: str, line: int, errors: RowErrors) -> int | None:
    if "." in raw or "," in raw:
        errors.add(
            line,
            "amount_not_integer",
            "amount_minor is an integer of minor units (cents): no decimal point or separator",
            "amount_minor",
        )
        return None
    if not _INTEGER.match(raw):
        errors.add(
            line, "amount_invalid", "amount_minor must be digits only (the side is the direction)", "amount_minor"
        )
        return None
    amount = int(raw)
    if not 0 < amount <= MAX_AMOUNT:
        errors.add(line, "amount_invalid", f"amount_minor must be between 1 and {MAX_AMOUNT}", "amount_minor")
        return None
    return amount


async def _one_chunk(body: bytes) -> AsyncIterator[bytes]:
    yield body


async def read_statement(body: bytes, currency: str, latest: date) -> list[StatementLine]:
    """Every line of the file, or `BulkInputError` (422 `import_invalid`, every bad line listed)."""
    errors = RowErrors()
    lines: list[StatementLine] = []
    async for row in read_rows(_one_chunk(body), BulkFormat.CSV, columns=COLUMNS, required=COLUMNS):
        checked = check_row(row, currency, latest, errors)
        if checked is not None:
            lines.append(checked)
    errors.raise_if_any()
    if not lines:
        raise BulkInputError([RowError(2, "statement_empty", "the statement has no lines after its header")])
    return lines


# --- the report ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """A line of the statement (matched or not), or a ledger transfer no line accounts for."""

    date: date
    reference: str
    amount_minor: int
    direction: StatementDirection
    line: int | None = None
    transfer_id: uuid.UUID | None = None
    # The ledger's transfer: its position and time (for a matched line, the one it matched).
    seq: int | None = None
    at: datetime | None = None
    pending_transfer_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Listed:
    count: int
    debits_minor: int
    credits_minor: int
    items: list[Item]
    # The sort key of the last item when more follow (`items` continues after it).
    next_after: int | None


@dataclass(frozen=True)
class Report:
    statement: Statement
    lists: dict[ReconciliationList, Listed]


@dataclass(frozen=True)
class ItemPage:
    items: list[Item]
    next_after: int | None


def statement_id_for(account_id: uuid.UUID, sha256: str) -> uuid.UUID:
    """The same file for the same account is the same statement, whoever imports it."""
    return _IDS.derive("statement", account_id, sha256)


def _utc_day(at: datetime) -> date:
    return at.astimezone(UTC).date()


def _movement(row: LedgerMovement, account_id: uuid.UUID) -> Movement:
    side = StatementDirection.DEBIT if row.debit_account_id == account_id else StatementDirection.CREDIT
    return Movement(row.id, row.seq, row.created_at, row.reference.strip(), row.amount, side)


def _ledger_item(statement_id: uuid.UUID, movement: Movement, status: LedgerItemStatus) -> dict[str, object]:
    return {
        "statement_id": statement_id,
        "transfer_id": movement.transfer_id,
        "seq": movement.seq,
        "status": status,
        "direction": movement.direction,
        "amount_minor": movement.amount_minor,
        "reference": movement.reference,
        "at": movement.at,
    }


def _not_found(account_id: uuid.UUID, statement_id: uuid.UUID) -> NotFound:
    return NotFound(f"account {account_id} has no statement {statement_id}", code="statement_not_found")


async def _reconcilable(uow: UnitOfWork, account_id: uuid.UUID) -> AccountRow:
    account = await ledger_store.account_by_id(uow.session, account_id)
    if account is None:
        raise NotFound(f"account {account_id} does not exist", code="account_not_found")
    if account.kind not in RECONCILABLE:
        raise InvalidInput(
            f"a {account.kind} account exists only inside the ledger: no external statement reconciles it",
            code="account_not_reconcilable",
        )
    return account


@dataclass(frozen=True)
class Imported:
    report: Report
    # False: this file was imported for this account before; `report` is that import's.
    created: bool


async def import_statement(
    uow: UnitOfWork, account_id: uuid.UUID, body: bytes, *, imported_by: str, today: date | None = None
) -> Imported:
    """Reconcile `body` (the CSV file) against the account's ledger and store the report."""
    account = await _reconcilable(uow, account_id)
    sha256 = hashlib.sha256(body).hexdigest()
    existing = await store.statement_by_file(uow.session, account_id, sha256)
    if existing is not None:
        return Imported(await _report(uow, existing), created=False)
    # A bank a few hours ahead of UTC may already book tomorrow; later than that is a typo.
    latest = (today or datetime.now(UTC).date()) + timedelta(days=1)
    lines = await read_statement(body, account.currency, latest)
    period_from, period_to = min(line.date for line in lines), max(line.date for line in lines)
    statement_id = statement_id_for(account_id, sha256)
    inserted = await store.insert_statement_if_absent(
        uow.session,
        {
            "id": statement_id,
            "account_id": account_id,
            "sha256": sha256,
            "currency": account.currency,
            "period_from": period_from,
            "period_to": period_to,
            "lines": len(lines),
            "imported_by": imported_by,
        },
    )
    statement = await store.statement_by_id(uow.session, statement_id)
    assert statement is not None
    if not inserted:  # the same file, imported concurrently: that import's report
        return Imported(await _report(uow, statement), created=False)

    start = datetime.combine(period_from, time.min, UTC)
    end = datetime.combine(period_to + timedelta(days=1), time.min, UTC)
    matcher = Matcher(lines)
    matched: dict[int, uuid.UUID] = {}
    after = 0
    while page := await store.posted_movements(
        uow.session, account_id, start=start, end=end, after_seq=after, limit=LEDGER_PAGE
    ):
        unmatched = []
        for row in page:
            movement = _movement(row, account_id)
            line = matcher.offer(movement)
            if line is None:
                unmatched.append(_ledger_item(statement_id, movement, LedgerItemStatus.UNMATCHED))
            else:
                matched[line.line] = movement.transfer_id
        await store.insert_ledger_items(uow.session, unmatched)
        after = page[-1].seq
    left = matcher.left()
    pending_matcher = Matcher(left)
    pending_for: dict[int, uuid.UUID] = {}
    after = 0
    while page := await store.open_pending_movements(
        uow.session, account_id, end=end, after_seq=after, limit=LEDGER_PAGE
    ):
        movements = [_movement(row, account_id) for row in page]
        for movement in movements:
            line = pending_matcher.offer(movement)
            if line is not None:
                pending_for[line.line] = movement.transfer_id
        await store.insert_ledger_items(
            uow.session, [_ledger_item(statement_id, m, LedgerItemStatus.PENDING) for m in movements]
        )
        after = page[-1].seq
    await store.insert_lines(
        uow.session,
        [
            {
                "statement_id": statement_id,
                "line": line.line,
                "booked_on": line.date,
                "reference": line.reference,
                "amount_minor": line.amount_minor,
                "direction": line.direction,
                "transfer_id": matched.get(line.line),
                "pending_transfer_id": pending_for.get(line.line),
            }
            for line in lines
        ],
    )
    return Imported(await _report(uow, statement), created=True)


async def report(uow: UnitOfWork, account_id: uuid.UUID, statement_id: uuid.UUID) -> Report:
    statement = await store.statement_by_id(uow.session, statement_id)
    if statement is None or statement.account_id != account_id:
        raise _not_found(account_id, statement_id)
    return await _report(uow, statement)


async def _report(uow: UnitOfWork, statement: Statement) -> Report:
    line_sums = await store.line_sums(uow.session, statement.id)
    ledger_sums = await store.ledger_item_sums(uow.session, statement.id)
    sums = {
        ReconciliationList.MATCHED: line_sums.get(True, Sums()),
        ReconciliationList.UNMATCHED_IN_STATEMENT: line_sums.get(False, Sums()),
        ReconciliationList.UNMATCHED_IN_LEDGER: ledger_sums.get(LedgerItemStatus.UNMATCHED, Sums()),
        ReconciliationList.PENDING: ledger_sums.get(LedgerItemStatus.PENDING, Sums()),
    }
    lists = {}
    for which, total in sums.items():
        page = await _page(uow, statement.id, which, after=0, limit=LISTED)
        lists[which] = Listed(total.count, total.debits_minor, total.credits_minor, page.items, page.next_after)
    return Report(statement, lists)


async def items(
    uow: UnitOfWork,
    account_id: uuid.UUID,
    statement_id: uuid.UUID,
    which: ReconciliationList,
    *,
    after: int,
    limit: int,
) -> ItemPage:
    """One page of one of a report's lists: lines by line number, ledger transfers in ledger order."""
    statement = await store.statement_by_id(uow.session, statement_id)
    if statement is None or statement.account_id != account_id:
        raise _not_found(account_id, statement_id)
    return await _page(uow, statement_id, which, after=after, limit=min(limit, MAX_PAGE))


async def _page(
    uow: UnitOfWork, statement_id: uuid.UUID, which: ReconciliationList, *, after: int, limit: int
) -> ItemPage:
    if which in (ReconciliationList.MATCHED, ReconciliationList.UNMATCHED_IN_STATEMENT):
        rows = await store.lines_page(
            uow.session,
            statement_id,
            matched=which is ReconciliationList.MATCHED,
            after_line=after,
            limit=limit + 1,
        )
        more, rows = len(rows) > limit, rows[:limit]
        return ItemPage(
            [
                Item(
                    date=row.booked_on,
                    reference=row.reference,
                    amount_minor=row.amount_minor,
                    direction=StatementDirection(row.direction),
                    line=row.line,
                    transfer_id=row.transfer_id,
                    seq=row.seq,
                    at=row.at,
                    pending_transfer_id=row.pending_transfer_id,
                )
                for row in rows
            ],
            rows[-1].line if more else None,
        )
    status = LedgerItemStatus.UNMATCHED if which is ReconciliationList.UNMATCHED_IN_LEDGER else LedgerItemStatus.PENDING
    found = list(
        await store.ledger_items_page(uow.session, statement_id, status=status, after_seq=after, limit=limit + 1)
    )
    more, found = len(found) > limit, found[:limit]
    return ItemPage(
        [
            Item(
                date=_utc_day(t.at),
                reference=t.reference,
                amount_minor=t.amount_minor,
                direction=StatementDirection(t.direction),
                transfer_id=t.transfer_id,
                seq=t.seq,
                at=t.at,
            )
            for t in found
        ],
        found[-1].seq if more else None,
    )
