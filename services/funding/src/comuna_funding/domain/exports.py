"""Open fund-flow data (docs/ledger.md, "Open data"): every movement of the commitment accounts
of the allocations in scope (by funder, commune, project) in the shape of Open Contracting's
`implementation.transactions` (OCDS 1.1: id, source, date, value {amount, currency}, payer,
payee), as JSON or CSV, and what they add up to: committed, disbursed, pending, returned.

Amounts are integers of minor units in the ledger. OCDS wants `value.amount` as a number of
major units; it is written digit by digit from the integer (`1234` USD cents -> `12.34`), never
through a float, and `amount_minor` carries the integer itself.

Documents are produced page by page from one read-only snapshot, so a national year (~100k
transfers) streams in constant memory and its totals describe exactly the rows that follow.
"""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from comuna_funding.domain.journal import timestamp
from comuna_funding.storage import exports as store
from comuna_funding.storage import journal
from comuna_funding.storage.exports import ExportRow, ScopeFilter
from comuna_platform.errors import InvalidInput
from comuna_platform.money import major_units

__all__ = ["ScopeFilter"]

# The names funders are registered under (`funders.name`, the settings' funding source).
FUNDER = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
# Transfers read per query while streaming.
PAGE = 1000

CSV_COLUMNS = (
    "id",
    "date",
    "source",
    "amount",
    "amount_minor",
    "currency",
    "payer_id",
    "payer_name",
    "payee_id",
    "payee_name",
    "kind",
    "code",
    "reference",
    "pending_id",
    "allocation_id",
    "funder",
    "commune_id",
)


def scope_of(
    funder: str | None = None, commune_id: uuid.UUID | None = None, allocation_id: uuid.UUID | None = None
) -> ScopeFilter:
    """The allocations an export covers; a malformed funder name is refused (an unknown one
    simply covers nothing)."""
    if funder is not None and not FUNDER.match(funder):
        raise InvalidInput(
            "funder must be a funder's name: a lowercase letter, then lowercase letters, digits or _ (32 at most)",
            code="funder_invalid",
            field="funder",
        )
    return ScopeFilter(funder=funder, commune_id=commune_id, allocation_id=allocation_id)


@dataclass(frozen=True)
class Totals:
    """Per currency, in minor units, over the allocations in scope:

    - committed: posted into their commitment accounts from a funder (a source account, or the
      clearing account of an exchange);
    - disbursed: posted out of them to commune or project accounts (tranches paid);
    - pending: reserved out of them to commune or project accounts, not yet posted or voided;
    - returned: posted out of them back to a funder (a reversed allocation).
    """

    currency: str
    committed: int
    disbursed: int
    pending: int
    returned: int


async def totals(session: AsyncSession, scope: ScopeFilter) -> list[Totals]:
    return [
        Totals(row.currency, row.committed, row.disbursed, row.pending, row.returned)
        for row in await store.totals(session, scope)
    ]


async def begin_snapshot(session: AsyncSession) -> None:
    await store.begin_snapshot(session)


async def rows(session: AsyncSession, scope: ScopeFilter, *, page: int = PAGE) -> AsyncIterator[list[ExportRow]]:
    """The transfers in scope, in ledger order, one page at a time."""
    after = 0
    while found := await store.rows_page(session, scope, after_seq=after, limit=page):
        yield found
        after = found[-1].seq


def source_uri() -> str:
    """OCDS `source`: where the data comes from, the ledger's public journal (docs/ledger.md),
    in which every one of these transfers is logged, signed and verifiable."""
    return f"https://{journal.journal().origin}"


# --- JSON ----------------------------------------------------------------------------------


def _text(value: object | None) -> str:
    return "null" if value is None else json.dumps(str(value), ensure_ascii=False)


def money_json(amount_minor: int, currency: str) -> str:
    # `amount` is a JSON number written from the integer's digits: exact, whatever the size.
    return (
        f'{{"amount":{major_units(amount_minor, currency)},"amount_minor":{amount_minor},"currency":{_text(currency)}}}'
    )


def totals_json(items: Sequence[Totals]) -> str:
    return (
        "["
        + ",".join(
            f'{{"currency":{_text(t.currency)},"committed":{money_json(t.committed, t.currency)},'
            f'"disbursed":{money_json(t.disbursed, t.currency)},"pending":{money_json(t.pending, t.currency)},'
            f'"returned":{money_json(t.returned, t.currency)}}}'
            for t in items
        )
        + "]"
    )


def filters_json(scope: ScopeFilter) -> str:
    return (
        f'{{"funder":{_text(scope.funder)},"commune_id":{_text(scope.commune_id)},'
        f'"allocation_id":{_text(scope.allocation_id)}}}'
    )


def transaction_json(row: ExportRow, source: str) -> str:
    """One OCDS transaction, with Comuna's own fields after OCDS's."""
    return (
        f'{{"id":{_text(row.id)},"source":{_text(source)},"date":{_text(timestamp(row.created_at))},'
        f'"value":{money_json(row.amount, row.currency)},'
        f'"payer":{{"id":{_text(row.debit_account_id)},"name":{_text(row.debit_key)}}},'
        f'"payee":{{"id":{_text(row.credit_account_id)},"name":{_text(row.credit_key)}}},'
        f'"kind":{_text(row.kind)},"code":{_text(row.code)},"reference":{_text(row.reference)},'
        f'"pending_id":{_text(row.pending_id)},"allocation_id":{_text(row.allocation_id)},'
        f'"funder":{_text(row.funder)},"commune_id":{_text(row.commune_id)}}}'
    )


async def json_document(session: AsyncSession, scope: ScopeFilter) -> AsyncIterator[str]:
    """`{"filters", "totals", "transactions": [...]}`, a page of transactions per chunk."""
    await begin_snapshot(session)
    source = source_uri()
    yield (f'{{"filters":{filters_json(scope)},"totals":{totals_json(await totals(session, scope))},"transactions":[')
    separator = "\n"
    async for page in rows(session, scope):
        chunk = [separator + transaction_json(page[0], source)]
        chunk.extend(",\n" + transaction_json(row, source) for row in page[1:])
        separator = ",\n"
        yield "".join(chunk)
    yield "\n]}\n"


async def totals_document(session: AsyncSession, scope: ScopeFilter) -> str:
    return f'{{"filters":{filters_json(scope)},"totals":{totals_json(await totals(session, scope))}}}\n'


# --- CSV -----------------------------------------------------------------------------------


def csv_values(row: ExportRow, source: str) -> tuple[str, ...]:
    return (
        str(row.id),
        timestamp(row.created_at),
        source,
        major_units(row.amount, row.currency),
        str(row.amount),
        row.currency,
        str(row.debit_account_id),
        row.debit_key,
        str(row.credit_account_id),
        row.credit_key,
        row.kind,
        row.code,
        row.reference,
        "" if row.pending_id is None else str(row.pending_id),
        str(row.allocation_id),
        row.funder,
        str(row.commune_id),
    )


async def csv_document(session: AsyncSession, scope: ScopeFilter) -> AsyncIterator[str]:
    """A header line, then one row per transaction (totals: `totals_document`)."""
    await begin_snapshot(session)
    source = source_uri()
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    yield buffer.getvalue()
    async for page in rows(session, scope):
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(csv_values(row, source) for row in page)
        yield buffer.getvalue()
