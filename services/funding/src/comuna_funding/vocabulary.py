"""Funding's vocabulary, the lowest layer of the service: storage's CHECK constraints, the
domain and the REST schemas all use these enums."""

from __future__ import annotations

from enum import StrEnum


class AccountKind(StrEnum):
    """The account codes of docs/ledger.md."""

    # A funder's money entering the system (no balance limit: its debit balance is what it committed).
    SOURCE = "source"
    # What one funder committed to one project (an allocation): may not pay out more than it received.
    COMMITMENT = "commitment"
    # Where a commune's tranches are paid.
    COMMUNE = "commune"
    # A project's own account.
    PROJECT = "project"
    # One currency's leg of an exchange.
    CLEARING = "clearing"


class TransferKind(StrEnum):
    """docs/ledger.md: what a transfer does to its accounts' totals."""

    SINGLE = "single"  # posts at once
    PENDING = "pending"  # reserves (pending totals) until posted, voided or expired
    POST = "post"  # resolves a pending transfer: posts (up to) its amount
    VOID = "void"  # resolves a pending transfer: releases it
    EXPIRE = "expire"  # a void the ledger writes itself once a pending transfer's timeout passed


RESOLVING_KINDS = frozenset({TransferKind.POST, TransferKind.VOID, TransferKind.EXPIRE})


class DisbursementStatus(StrEnum):
    COMPLETED = "completed"  # money moved
    REJECTED = "rejected"  # nothing moved; `reason` says why


class TransferCode(StrEnum):
    GRANT_ALLOCATION = "grant_allocation"
    TRANCHE_DISBURSEMENT = "tranche_disbursement"


class RefusalReason(StrEnum):
    """Why a tranche was refused (stored in `disbursements.reason`; the ledger may add its own codes)."""

    ALLOCATION_UNKNOWN = "allocation_unknown"
    COMMUNE_MISMATCH = "commune_mismatch"
    CURRENCY_MISMATCH = "currency_mismatch"
    INVALID_AMOUNT = "invalid_amount"
    EXCEEDS_ALLOCATION = "exceeds_allocation"


class FunderKind(StrEnum):
    """Where a funder's money comes from (docs/ledger.md, "Funders")."""

    NATIONAL = "national"  # the national fund, built in
    REMOTE = "remote"  # a state's or municipality's own system, over comuna.funding.source.v1
    PLEDGE = "pledge"  # an official records commitments; deposits are recorded against them


class AllocationStatus(StrEnum):
    COMMITTED = "committed"  # the funder's money is on the project's commitment account
    RESERVING = "reserving"  # a remote source is being asked (a pending transfer holds it)
    REFUSED = "refused"  # the source refused; the pending transfer was voided
    FAILED = "failed"  # the source never confirmed in time; voided, flagged for reconciliation
    REVERSED = "reversed"  # a recount moved the money back (a reversing transfer)


LIVE_ALLOCATIONS = frozenset({AllocationStatus.COMMITTED, AllocationStatus.RESERVING})


class TrancheStatus(StrEnum):
    RESERVED = "reserved"  # a pending transfer from the commitment to the commune holds it
    POSTED = "posted"  # the milestone was verified: paid to the commune
    VOIDED = "voided"  # the project was cancelled: released back to the commitment
