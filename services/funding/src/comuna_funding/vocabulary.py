"""Funding's vocabulary, the lowest layer of the service: storage's CHECK constraints, the
domain and the REST schemas all use these enums."""

from __future__ import annotations

from enum import StrEnum


class AccountKind(StrEnum):
    # Appropriated money entering the system (no balance limit: its debit balance is the total committed).
    SOURCE = "source"
    # The earmark of one allocation: may not pay out more than it received.
    ALLOCATION = "allocation"
    # Where a commune's tranches are paid.
    COMMUNE = "commune"


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
