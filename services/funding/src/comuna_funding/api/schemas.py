"""Request and response bodies of funding's REST API: public reads of open data, and the
ledger's writes (national operators).

Transfers are published in the shape of an Open Contracting (OCDS) implementation
transaction: id, date, value {amount, currency}, payer and payee.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from comuna_funding.vocabulary import AccountKind, AllocationStatus, DisbursementStatus, TransferCode, TransferKind

# Money is an integer of minor units in JSON: `10.0`, `"10"` or `1e3` are refused, not coerced.
MinorUnits = Annotated[StrictInt, Field(gt=0, le=2**63 - 1, description="Integer minor units (cents); never a float.")]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 alphabetic code.", examples=["USD"])]


class Money(BaseModel):
    amount_minor: int = Field(description="Integer minor units (cents for USD); never a float.")
    currency: str = Field(description="ISO 4217 alphabetic code.", examples=["USD"])


class DisbursementOut(BaseModel):
    id: uuid.UUID
    project_id: uuid.UUID
    milestone_id: uuid.UUID
    amount_minor: int
    currency: str
    status: DisbursementStatus = Field(description="`completed` (money moved) or `rejected` (nothing moved).")
    reason: str | None = Field(description="Why a rejected tranche was refused, e.g. `exceeds_allocation`.")
    transfer_id: uuid.UUID | None
    created_at: datetime


class AllocationOut(BaseModel):
    id: uuid.UUID
    consultation_id: uuid.UUID
    commune_id: uuid.UUID
    commune_code: str
    candidate_id: uuid.UUID
    title: str
    funding_source: str
    amount_minor: int = Field(description="Earmarked for the project, in minor units of `currency`.")
    currency: str = Field(examples=["USD"])
    disbursed_minor: int = Field(description="Paid out to the commune so far.")
    remaining_minor: int = Field(description="Still held on the earmark account.")
    account_id: uuid.UUID = Field(description="The commitment account `allocation:<id>`.")
    transfer_id: uuid.UUID = Field(description="The transfer that funded the commitment.")
    status: AllocationStatus = Field(
        description="committed, reserving (a remote source is asked), refused, failed, reversed."
    )
    rank: int | None = Field(description="The candidate's rank in its commune; null for the built-in grant's winners.")
    generation: int = Field(description="1, or n+1 after a recount reversed generation n.")
    created_at: datetime


class AllocationDetail(AllocationOut):
    disbursements: list[DisbursementOut]


class AllocationPage(BaseModel):
    items: list[AllocationOut]
    next_page_token: str | None = Field(description="Pass as `page_token` to get the next page; null on the last.")


class AccountFlags(BaseModel):
    debits_must_not_exceed_credits: bool
    credits_must_not_exceed_debits: bool


class AccountOut(BaseModel):
    id: uuid.UUID
    key: str
    kind: AccountKind
    currency: str
    flags: AccountFlags
    closed: bool = Field(description="A closed account takes no transfer.")
    debits_posted_minor: int
    credits_posted_minor: int
    debits_pending_minor: int = Field(description="Reserved by pending transfers, not yet posted or voided.")
    credits_pending_minor: int
    balance_minor: int = Field(description="credits - debits posted: what the account holds (negative for sources).")
    created_at: datetime


class AccountFlagsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    debits_must_not_exceed_credits: StrictBool = False
    credits_must_not_exceed_debits: StrictBool = False


class AccountIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(
        min_length=1, max_length=200, description="Stable business name, e.g. `source:state-zulia:VES`; no spaces."
    )
    currency: Currency
    kind: AccountKind
    flags: AccountFlagsIn = AccountFlagsIn()


class AccountPage(BaseModel):
    items: list[AccountOut]
    next_page_token: str | None = Field(description="Pass as `page_token` to get the next page; null on the last.")


class AccountRef(BaseModel):
    id: uuid.UUID
    key: str


class ExchangeOut(BaseModel):
    base_id: uuid.UUID = Field(description="The leg in the base currency.")
    counter_id: uuid.UUID = Field(description="The leg in the counter currency.")
    rate: str = Field(description="Counter minor units per base minor unit, a decimal string.", examples=["36.4218"])


class TransferOut(BaseModel):
    id: uuid.UUID
    seq: int = Field(description="Position in the ledger.")
    date: datetime
    value: Money
    payer: AccountRef = Field(description="The debited account.")
    payee: AccountRef = Field(description="The credited account.")
    code: str = Field(examples=list(TransferCode))
    reference: str
    kind: TransferKind = Field(description="single, pending, post, void or expire (docs/ledger.md).")
    pending_id: uuid.UUID | None = Field(description="The pending transfer a post, void or expire resolves.")
    timeout_seconds: int | None = Field(description="A pending transfer expires this long after `date`.")
    exchange: ExchangeOut | None


class ExchangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_id: uuid.UUID
    counter_id: uuid.UUID
    rate: str = Field(
        pattern=r"^[0-9]{1,20}(\.[0-9]{1,18})?$",
        description="Counter minor units per base minor unit, as a decimal string (never a JSON number).",
        examples=["36.4218"],
    )


class TransferIn(BaseModel):
    """A transfer as a client sends it; its `id` is the idempotency key (docs/ledger.md)."""

    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID = Field(description="Chosen by the client; resending the same transfer returns the stored one.")
    kind: Literal[TransferKind.SINGLE, TransferKind.PENDING, TransferKind.POST, TransferKind.VOID] = TransferKind.SINGLE
    debit_account_id: uuid.UUID | None = Field(default=None, description="Required unless post or void.")
    credit_account_id: uuid.UUID | None = Field(default=None, description="Required unless post or void.")
    amount_minor: MinorUnits | None = Field(
        default=None, description="Required unless post (default: the whole reservation) or void."
    )
    currency: Currency | None = Field(default=None, description="Required unless post or void.")
    code: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="What the movement is, e.g. `grant_commitment`.")
    reference: str = Field(default="", max_length=500)
    pending_id: uuid.UUID | None = Field(default=None, description="post and void: the pending transfer.")
    timeout_seconds: StrictInt | None = Field(
        default=None, gt=0, description="pending only: voids itself this many seconds after it is stored."
    )
    exchange: ExchangeIn | None = None
    linked: StrictBool = Field(default=False, description="Tied to the next transfer of the batch: both or neither.")


# What one request may carry: 4,000 transfers of ~250 bytes of JSON stay under the platform's
# 1 MiB body limit (`COMUNA_<SVC>_MAX_BODY_BYTES`); the ledger itself takes batches of 8,190.
API_MAX_BATCH = 4000


class TransferBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    transfers: list[TransferIn] = Field(min_length=1, max_length=API_MAX_BATCH)


class TransferError(BaseModel):
    status: int = Field(description="The HTTP status the transfer alone would have got.")
    code: str = Field(examples=["exceeds_credits", "transfer_id_reused", "linked_transfer_failed"])
    detail: str


class TransferResult(BaseModel):
    id: uuid.UUID
    result: Literal["created", "exists", "refused"]
    transfer: TransferOut | None = Field(description="The stored transfer, unless refused.")
    error: TransferError | None = Field(description="Why it was refused; nothing of it was written.")


class TransferBatchOut(BaseModel):
    results: list[TransferResult] = Field(description="One per transfer, in the order sent.")
    created: int
    exists: int
    refused: int


class TransferPage(BaseModel):
    items: list[TransferOut]
    next_page_token: str | None = Field(description="Pass as `page_token` to get the next page; null on the last.")


class LedgerTotalOut(BaseModel):
    currency: str
    debits_minor: int
    credits_minor: int
    transfers: int
    transferred_minor: int = Field(description="Sum of all posted amounts (single transfers and posts).")
    debits_pending_minor: int
    credits_pending_minor: int
    reserved_minor: int = Field(description="Sum of the pending transfers not yet resolved.")
    balanced: bool = Field(description="debits = credits = transferred, and pending debits = credits = reserved.")


class LedgerTotals(BaseModel):
    items: list[LedgerTotalOut] = Field(description="One entry per currency.")
    balanced: bool = Field(description="Every currency is balanced.")
