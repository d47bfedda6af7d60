"""The ledger's public journal entries and published balances, in the formats of docs/ledger.md.

Pure text: what the funding service appends to its transparency log for every account and
transfer, and what `comuna-verify ledger` parses back on the other side.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal

from comuna_funding.storage.ledger_store import AccountRow, TransferRow

ACCOUNT_V1 = "comuna-account/v1"
ACCOUNT_CLOSED_V1 = "comuna-account-closed/v1"
TRANSFER_V1 = "comuna-transfer/v1"
BALANCES_V1 = "comuna-balances/v1"


def timestamp(at: datetime) -> str:
    """UTC, RFC 3339 with microseconds: `2026-12-03T06:40:00.123456Z`."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _text(lines: Iterable[str]) -> bytes:
    return "".join(f"{line}\n" for line in lines).encode()


def account_flags(account: AccountRow) -> list[str]:
    flags = []
    if account.credits_must_not_exceed_debits:
        flags.append("credits_must_not_exceed_debits")
    if account.debits_must_not_exceed_credits:
        flags.append("debits_must_not_exceed_credits")
    return flags


def account_entry(account: AccountRow) -> bytes:
    return _text(
        [
            ACCOUNT_V1,
            f"account {account.id}",
            f"key {account.key}",
            f"currency {account.currency}",
            f"kind {account.kind}",
            f"flags {','.join(account_flags(account)) or '-'}",
            f"at {timestamp(account.created_at)}",
        ]
    )


def account_closed_entry(account_id: uuid.UUID, at: datetime) -> bytes:
    return _text([ACCOUNT_CLOSED_V1, f"account {account_id}", f"at {timestamp(at)}"])


def _or_dash(value: object | None) -> str:
    return "-" if value is None else str(value)


def transfer_entry(transfer: TransferRow) -> bytes:
    exchange = "-"
    if transfer.exchange_rate is not None:
        exchange = f"{transfer.exchange_base_id} {transfer.exchange_counter_id} {format_rate(transfer.exchange_rate)}"
    return _text(
        [
            TRANSFER_V1,
            f"transfer {transfer.id}",
            f"kind {transfer.kind}",
            f"pending {_or_dash(transfer.pending_id)}",
            f"debit {transfer.debit_account_id}",
            f"credit {transfer.credit_account_id}",
            f"amount {transfer.amount}",
            f"currency {transfer.currency}",
            f"timeout {_or_dash(transfer.timeout_seconds)}",
            f"code {transfer.code}",
            f"reference {transfer.reference}",
            f"exchange {exchange}",
            f"at {timestamp(transfer.created_at)}",
        ]
    )


def format_rate(rate: Decimal) -> str:
    """A rate without exponent or trailing zeros: `36.4218`, `2`."""
    return format(rate.normalize(), "f")


def balances_document(origin: str, size: int, accounts: Iterable[AccountRow]) -> str:
    lines = [BALANCES_V1, f"origin {origin}", f"size {size}"]
    lines.extend(
        f"account {a.id} {a.debits_posted} {a.credits_posted} {a.debits_pending} {a.credits_pending}"
        for a in sorted(accounts, key=lambda a: a.id)
    )
    return _text(lines).decode()
