"""Response bodies of funding's REST API (all read-only, public open data).

Transfers are published in the shape of an Open Contracting (OCDS) implementation
transaction: id, date, value {amount, currency}, payer and payee.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from comuna_funding.vocabulary import AccountKind, DisbursementStatus, TransferCode


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
    account_id: uuid.UUID = Field(description="The earmark account `allocation:<id>`.")
    transfer_id: uuid.UUID = Field(description="The transfer that funded the earmark.")
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
    debits_posted_minor: int
    credits_posted_minor: int
    balance_minor: int = Field(description="credits - debits: what the account holds (negative for sources).")
    created_at: datetime


class AccountPage(BaseModel):
    items: list[AccountOut]
    next_page_token: str | None = Field(description="Pass as `page_token` to get the next page; null on the last.")


class AccountRef(BaseModel):
    id: uuid.UUID
    key: str


class TransferOut(BaseModel):
    id: uuid.UUID
    seq: int = Field(description="Position in the ledger.")
    date: datetime
    value: Money
    payer: AccountRef = Field(description="The debited account.")
    payee: AccountRef = Field(description="The credited account.")
    code: str = Field(examples=list(TransferCode))
    reference: str


class TransferPage(BaseModel):
    items: list[TransferOut]
    next_page_token: str | None = Field(description="Pass as `page_token` to get the next page; null on the last.")


class LedgerTotalOut(BaseModel):
    currency: str
    debits_minor: int
    credits_minor: int
    transfers: int
    transferred_minor: int = Field(description="Sum of all transfer amounts.")
    balanced: bool = Field(description="debits = credits = transferred.")


class LedgerTotals(BaseModel):
    items: list[LedgerTotalOut] = Field(description="One entry per currency.")
    balanced: bool = Field(description="Every currency is balanced.")
