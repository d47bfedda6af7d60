"""REST transport of the reconciliation of external statements (docs/ledger.md, "Reconciliation").

National operators import a statement (CSV) of a ledger account; the report it produces is
public, like every read of funding: it is about public money.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from comuna_funding.domain import reconciliation
from comuna_funding.domain.reconciliation import Item, ItemPage, Listed, Report
from comuna_funding.vocabulary import ReconciliationList, StatementDirection
from comuna_platform.auth.access import Caller
from comuna_platform.auth.fastapi import require_assignment
from comuna_platform.auth.roles import Role
from comuna_platform.bulk import UnsupportedFormat
from comuna_platform.http.deps import UnitOfWorkDep
from comuna_platform.paging import decode_page_token, encode_page_token

router = APIRouter(prefix="/v1", tags=["reconciliation"])

Operator = Annotated[Caller, require_assignment(Role.OPERATOR)]
CSV_TYPES = ("text/csv", "application/csv")
# A stored report never changes.
REPORT_CACHE = "public, max-age=3600, immutable"


class ItemOut(BaseModel):
    line: int | None = Field(description="The statement's line (header = 1); null for a ledger transfer.")
    date: dt.date = Field(description="The line's date, or the transfer's day (UTC).")
    reference: str
    amount_minor: int
    direction: StatementDirection = Field(description="From the reconciled account's point of view.")
    transfer_id: uuid.UUID | None = Field(description="The ledger transfer (for a line: the one it matched).")
    seq: int | None = Field(description="The transfer's position in the ledger.")
    at: dt.datetime | None = Field(description="When the transfer was recorded.")
    pending_transfer_id: uuid.UUID | None = Field(
        description="An unmatched line: the open reservation that would match it once posted."
    )


class ListOut(BaseModel):
    count: int
    debits_minor: int = Field(description="Sum of the debit items, in minor units.")
    credits_minor: int = Field(description="Sum of the credit items, in minor units.")
    items: list[ItemOut] = Field(description=f"The first {reconciliation.LISTED}; the rest through `items`.")
    next_page_token: str | None = Field(
        description="Pass to `.../items?list=<this list>&page_token=` for the rest; null when all are here."
    )


class PeriodOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: dt.date = Field(alias="from", description="The file's first date (UTC day, included).")
    to: dt.date = Field(description="The file's last date (UTC day, included).")


class StatementReportOut(BaseModel):
    id: uuid.UUID
    account_id: uuid.UUID
    currency: str
    sha256: str = Field(description="Of the file's bytes: the same file again is this statement.")
    period: PeriodOut
    lines: int
    imported_at: dt.datetime
    matched: ListOut = Field(description="Lines paired with a posted transfer of the period.")
    unmatched_in_statement: ListOut = Field(description="Lines with no transfer in the ledger.")
    unmatched_in_ledger: ListOut = Field(description="Posted transfers of the period on no line.")
    pending: ListOut = Field(description="Reservations still open at the period's end: not yet in a statement.")


class ItemPageOut(BaseModel):
    items: list[ItemOut]
    next_page_token: str | None


def _item(item: Item) -> ItemOut:
    return ItemOut(
        line=item.line,
        date=item.date,
        reference=item.reference,
        amount_minor=item.amount_minor,
        direction=item.direction,
        transfer_id=item.transfer_id,
        seq=item.seq,
        at=item.at,
        pending_transfer_id=item.pending_transfer_id,
    )


def _token(after: int | None) -> str | None:
    return None if after is None else encode_page_token(after)


def _list(listed: Listed) -> ListOut:
    return ListOut(
        count=listed.count,
        debits_minor=listed.debits_minor,
        credits_minor=listed.credits_minor,
        items=[_item(i) for i in listed.items],
        next_page_token=_token(listed.next_after),
    )


def _report(report: Report) -> StatementReportOut:
    s, lists = report.statement, report.lists
    return StatementReportOut(
        id=s.id,
        account_id=s.account_id,
        currency=s.currency,
        sha256=s.sha256,
        period=PeriodOut(from_=s.period_from, to=s.period_to),
        lines=s.lines,
        imported_at=s.imported_at,
        matched=_list(lists[ReconciliationList.MATCHED]),
        unmatched_in_statement=_list(lists[ReconciliationList.UNMATCHED_IN_STATEMENT]),
        unmatched_in_ledger=_list(lists[ReconciliationList.UNMATCHED_IN_LEDGER]),
        pending=_list(lists[ReconciliationList.PENDING]),
    )


def _location(account_id: uuid.UUID, statement_id: uuid.UUID) -> str:
    return f"/v1/accounts/{account_id}/statements/{statement_id}"


@router.post(
    "/accounts/{account_id}/statements",
    response_model=StatementReportOut,
    status_code=201,
    summary="Import an external statement (CSV) of a ledger account and reconcile it: 201 with the report, "
    "200 with the earlier report when this file was imported before",
    description='Columns `date,reference,amount_minor,currency,direction` (docs/ledger.md, "Reconciliation"). '
    "A bad file is refused whole, nothing stored: 422 `import_invalid` with `errors` = [{line, code, detail, "
    "field}]; 415 for a body that is not text/csv; 404 `account_not_found`; 422 `account_not_reconcilable` for a "
    "commitment or clearing account.",
    openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def import_statement(
    account_id: uuid.UUID, request: Request, response: Response, uow: UnitOfWorkDep, caller: Operator
) -> StatementReportOut:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media not in CSV_TYPES:
        raise UnsupportedFormat("send the statement as text/csv")
    # The edge already bounded the body (MAX_BODY_BYTES); a statement is read whole.
    imported = await reconciliation.import_statement(uow, account_id, await request.body(), imported_by=caller.subject)
    if not imported.created:
        response.status_code = 200
    response.headers["Location"] = _location(account_id, imported.report.statement.id)
    return _report(imported.report)


@router.get(
    "/accounts/{account_id}/statements/{statement_id}",
    response_model=StatementReportOut,
    summary="A stored reconciliation report: counts, sums and the first items of each list",
)
async def get_statement(
    account_id: uuid.UUID, statement_id: uuid.UUID, uow: UnitOfWorkDep, response: Response
) -> StatementReportOut:
    found = _report(await reconciliation.report(uow, account_id, statement_id))
    response.headers["Cache-Control"] = REPORT_CACHE
    return found


@router.get(
    "/accounts/{account_id}/statements/{statement_id}/items",
    response_model=ItemPageOut,
    summary="One list of a reconciliation report, page by page (lines by line number, transfers in ledger order)",
)
async def list_statement_items(
    account_id: uuid.UUID,
    statement_id: uuid.UUID,
    *,
    uow: UnitOfWorkDep,
    response: Response,
    which: Annotated[ReconciliationList, Query(alias="list")],
    page_token: Annotated[str, Query(max_length=512, description="`next_page_token` of the previous page")] = "",
    limit: Annotated[int, Query(ge=1, le=reconciliation.MAX_PAGE)] = 100,
) -> ItemPageOut:
    after = decode_page_token(page_token, [int])
    page: ItemPage = await reconciliation.items(
        uow, account_id, statement_id, which, after=after[0] if after else 0, limit=limit
    )
    response.headers["Cache-Control"] = REPORT_CACHE
    return ItemPageOut(items=[_item(i) for i in page.items], next_page_token=_token(page.next_after))
