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
    # A milestone's tranche held on its commitment (pending) until verified or cancelled.
    TRANCHE_RESERVATION = "tranche_reservation"
    TRANCHE_VOIDED = "tranche_voided"
    # A cancelled project's unspent commitment going back to its funder.
    COMMITMENT_RELEASED = "commitment_released"
    # Co-funding: a funder's commitment to a project, and its reversal by a recount.
    GRANT_COMMITMENT = "grant_commitment"
    COMMITMENT_REVERSED = "commitment_reversed"


# Money that left a commitment back to its funder: not disbursed to the project.
RETURN_CODES = frozenset({TransferCode.COMMITMENT_RELEASED, TransferCode.COMMITMENT_REVERSED})


class RefusalReason(StrEnum):
    """Why a tranche was refused (stored in `disbursements.reason`; the ledger may add its own codes)."""

    ALLOCATION_UNKNOWN = "allocation_unknown"
    COMMUNE_MISMATCH = "commune_mismatch"
    CURRENCY_MISMATCH = "currency_mismatch"
    INVALID_AMOUNT = "invalid_amount"
    EXCEEDS_ALLOCATION = "exceeds_allocation"
    # A milestone with a reserved tranche: more than its reservation, the project was cancelled,
    # or the event names another allocation than the one holding the reservation.
    EXCEEDS_TRANCHE = "exceeds_tranche"
    PROJECT_CANCELLED = "project_cancelled"
    ALLOCATION_MISMATCH = "allocation_mismatch"


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


class StatementDirection(StrEnum):
    """A statement line's side, from the ledger account's point of view (docs/ledger.md, "Reconciliation")."""

    DEBIT = "debit"  # money left the account: it is the transfer's debit account
    CREDIT = "credit"  # money reached the account: it is the transfer's credit account


class LedgerItemStatus(StrEnum):
    """What a reconciliation found of a ledger transfer that no statement line accounts for."""

    UNMATCHED = "unmatched"  # posted in the statement's period, on no line of the statement
    PENDING = "pending"  # a reservation still open at the period's end: not yet in any statement


class ReconciliationList(StrEnum):
    """The four lists of a reconciliation report."""

    MATCHED = "matched"
    UNMATCHED_IN_STATEMENT = "unmatched_in_statement"
    UNMATCHED_IN_LEDGER = "unmatched_in_ledger"
    PENDING = "pending"


class SourceOperation(StrEnum):
    """A call to a remote funding source, as `source_calls.operation` records it."""

    RESERVE = "reserve"
    COMMIT = "commit"
    CANCEL = "cancel"


class SourceCallOutcome(StrEnum):
    """What came of a call to a remote funding source (`source_calls.outcome`)."""

    OK = "ok"  # the source answered as asked (reserved, committed, cancelled, or had nothing to cancel)
    REFUSED = "refused"  # Reserve answered REFUSED: the source holds nothing
    UNAVAILABLE = "unavailable"  # no usable answer (deadline, unreachable, source error, our credentials)
    CONFLICT = "conflict"  # the source's state contradicts the call (already committed, cancelled, other body)
    ERROR = "error"  # the source never heard of it, refused the request as malformed, or broke the contract


class CommitmentReason(StrEnum):
    """Why a remote funder's allocation ended without its money (`allocations.reason`), when it
    is not the source's own refusal reason (`insufficient_funds`, ...)."""

    # No final answer from the source before the ledger expired the pending commitment.
    TIMED_OUT = "source_timed_out"
    # The pending commitment was voided in the ledger by someone else before the source confirmed.
    RELEASED = "ledger_released"
    # The source committed after the ledger had released the pending commitment (reconcile it).
    COMMITTED_LATE = "source_committed_late"
    # The source will not commit a reservation it had held (it cancelled or refused it itself).
    WITHDRAWN = "source_withdrew"
    # The source had refused; its reason was not learnt before the pending commitment expired.
    REFUSED = "source_refused"
