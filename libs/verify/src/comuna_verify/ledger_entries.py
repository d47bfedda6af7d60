"""The funding ledger's published formats, parsed (docs/ledger.md): the log entries
`comuna-account/v1`, `comuna-account-closed/v1`, `comuna-transfer/v1`, and the published
`comuna-balances/v1`.

Every entry is UTF-8 text, one item per line in a fixed order, each line ending in "\\n". A
malformed entry is an `EntryError` (a mismatch, named with its index by the caller). Times are
kept as integer microseconds since the epoch and rates as `Decimal`: no floating point touches
an amount or a time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from comuna_verify.entries import UUID, EntryError

ACCOUNT = "comuna-account/v1"
CLOSED = "comuna-account-closed/v1"
TRANSFER = "comuna-transfer/v1"
BALANCES = "comuna-balances/v1"

ACCOUNT_KINDS = ("source", "commitment", "commune", "project", "clearing")
CLEARING = "clearing"
SINGLE, PENDING, POST, VOID, EXPIRE = "single", "pending", "post", "void", "expire"
TRANSFER_KINDS = (SINGLE, PENDING, POST, VOID, EXPIRE)
RESOLVING = (POST, VOID, EXPIRE)
DEBITS_LIMITED = "debits_must_not_exceed_credits"
CREDITS_LIMITED = "credits_must_not_exceed_debits"
CLOSED_FLAG = "closed"
FLAGS = (CLOSED_FLAG, CREDITS_LIMITED, DEBITS_LIMITED)

AMOUNT = re.compile(r"0|[1-9][0-9]{0,37}")  # up to a u128 of minor units
CURRENCY = re.compile(r"[A-Z]{3}")
CODE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
TOKEN = re.compile(r"[^\s]+")
RATE = re.compile(r"(?:0|[1-9][0-9]{0,29})(?:\.[0-9]{1,30})?")
TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z")
EPOCH = datetime(1970, 1, 1)  # naive: every time in the ledger is UTC
MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Opened:
    account: str
    key: str
    currency: str
    kind: str
    flags: frozenset[str]
    at: int  # microseconds since the epoch


@dataclass(frozen=True, slots=True)
class Closed:
    account: str
    at: int


@dataclass(frozen=True, slots=True)
class Exchange:
    base: str
    counter: str
    rate: Decimal
    line: str  # exactly as logged: both legs must carry the same one


@dataclass(frozen=True, slots=True)
class Transfer:
    transfer: str
    kind: str
    pending: str | None
    debit: str
    credit: str
    amount: int
    currency: str
    timeout: int | None  # seconds
    code: str
    reference: str
    exchange: Exchange | None
    at: int


Entry = Opened | Closed | Transfer


def amount_of(text: str, what: str) -> int:
    if AMOUNT.fullmatch(text) is None:
        raise EntryError(f"{what} {text[:40]!r} is not a decimal integer of minor units")
    return int(text)


def uuid_of(text: str, what: str) -> str:
    if UUID.fullmatch(text) is None:
        raise EntryError(f"{what} {text[:40]!r} is not a lowercase UUID")
    return text


def time_of(text: str) -> int:
    """Microseconds since the epoch of `2026-12-03T06:40:00.123456Z` (that exact form)."""
    if TIME.fullmatch(text) is None:
        raise EntryError(f"time {text[:40]!r} is not UTC RFC 3339 with microseconds")
    try:
        moment = datetime.fromisoformat(text[:-1])  # naive, and UTC by the Z just checked
    except ValueError as exc:
        raise EntryError(f"time {text!r}: {exc}") from exc
    return (moment - EPOCH) // MICROSECOND


def format_time(micros: int) -> str:
    return (EPOCH + micros * MICROSECOND).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def values(lines: list[str], keywords: tuple[str, ...], may_be_empty: str = "") -> list[str]:
    """The value of each `<keyword> <value>` line: exactly these lines, in this order. Only the
    `may_be_empty` keyword's value may be empty (its line then `<keyword> ` or `<keyword>`)."""
    found: list[str] = []
    for at, keyword in enumerate(keywords):
        if at >= len(lines):
            raise EntryError(f"missing line {keyword!r}")
        word, _, value = lines[at].partition(" ")
        if word != keyword:
            raise EntryError(f"expected {keyword!r}, got {lines[at][:80]!r}")
        if not value and keyword != may_be_empty:
            raise EntryError(f"line {keyword!r} has no value")
        found.append(value)
    if len(lines) > len(keywords):
        raise EntryError(f"unexpected line {lines[len(keywords)][:80]!r}")
    return found


def split_entry(data: bytes) -> tuple[str, list[str]]:
    """(type, the other lines) of an entry; EntryError if it is not UTF-8 text lines."""
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        raise EntryError("not UTF-8") from exc
    if not text.endswith("\n") or "\r" in text:
        raise EntryError("lines must end in a newline")
    lines = text[:-1].split("\n")
    return lines[0], lines[1:]


def _currency(text: str) -> str:
    if CURRENCY.fullmatch(text) is None:
        raise EntryError(f"currency {text[:40]!r} is not an ISO 4217 code")
    return text


def _flags(text: str) -> frozenset[str]:
    if text == "-":
        return frozenset()
    flags = text.split(",")
    unknown = [f for f in flags if f not in FLAGS]
    if unknown:
        raise EntryError(f"unknown flag {unknown[0][:60]!r}")
    if flags != sorted(set(flags)):
        raise EntryError(f"flags {text!r} are not sorted and distinct")
    return frozenset(flags)


ACCOUNT_LINES = ("account", "key", "currency", "kind", "flags", "at")
CLOSED_LINES = ("account", "at")
TRANSFER_LINES: tuple[str, ...] = ("transfer", "kind", "pending", "debit", "credit", "amount", "currency")
TRANSFER_LINES += ("timeout", "code", "reference", "exchange", "at")


def parse_account(lines: list[str]) -> Opened:
    account, key, currency, kind, flags, at = values(lines, ACCOUNT_LINES)
    if TOKEN.fullmatch(key) is None:
        raise EntryError(f"key {key[:40]!r} is not one word")
    if kind not in ACCOUNT_KINDS:
        raise EntryError(f"unknown account kind {kind[:40]!r}")
    return Opened(uuid_of(account, "account"), key, _currency(currency), kind, _flags(flags), time_of(at))


def parse_closed(lines: list[str]) -> Closed:
    account, at = values(lines, CLOSED_LINES)
    return Closed(uuid_of(account, "account"), time_of(at))


def _exchange(text: str) -> Exchange | None:
    if text == "-":
        return None
    parts = text.split(" ")
    if len(parts) != 3:
        raise EntryError(f"exchange {text[:80]!r} is not '<base leg> <counter leg> <rate>' or '-'")
    base, counter = uuid_of(parts[0], "exchange base leg"), uuid_of(parts[1], "exchange counter leg")
    if base == counter:
        raise EntryError("exchange: the base and counter legs are the same transfer")
    if RATE.fullmatch(parts[2]) is None or not Decimal(parts[2]):
        raise EntryError(f"exchange rate {parts[2][:40]!r} is not a positive decimal")
    return Exchange(base, counter, Decimal(parts[2]), text)


def parse_transfer(lines: list[str]) -> Transfer:
    transfer, kind, pending_text, debit, credit, amount_text, currency, timeout_text, code, reference, exchange, at = (
        values(lines, TRANSFER_LINES, may_be_empty="reference")
    )
    uuid_of(transfer, "transfer")
    if kind not in TRANSFER_KINDS:
        raise EntryError(f"unknown transfer kind {kind[:40]!r}")
    pending = None
    if kind in RESOLVING:
        pending = uuid_of(pending_text, "pending")
    elif pending_text != "-":
        raise EntryError(f"a {kind} transfer has pending '-', not {pending_text[:40]!r}")
    uuid_of(debit, "debit account")
    uuid_of(credit, "credit account")
    amount = amount_of(amount_text, "amount")
    if amount == 0:
        raise EntryError("amount 0: a transfer moves a positive amount")
    timeout = None
    if kind == PENDING and timeout_text != "-":
        timeout = amount_of(timeout_text, "timeout")
    elif kind != PENDING and timeout_text != "-":
        raise EntryError(f"a {kind} transfer has timeout '-', not {timeout_text[:40]!r}")
    if CODE.fullmatch(code) is None:
        raise EntryError(f"code {code[:40]!r} is not a lower_snake_case word")
    return Transfer(
        transfer,
        kind,
        pending,
        debit,
        credit,
        amount,
        _currency(currency),
        timeout,
        code,
        reference,
        _exchange(exchange),
        time_of(at),
    )


_PARSERS: dict[str, Callable[[list[str]], Entry]] = {
    ACCOUNT: parse_account,
    CLOSED: parse_closed,
    TRANSFER: parse_transfer,
}


def parse_entry(data: bytes) -> Entry:
    """The entry; EntryError naming what is wrong (an unknown type included)."""
    kind, lines = split_entry(data)
    parser = _PARSERS.get(kind)
    if parser is None:
        raise EntryError(f"unknown entry type {kind[:60]!r}")
    try:
        return parser(lines)
    except EntryError as exc:
        raise EntryError(f"malformed {kind} entry: {exc}") from exc


Totals = tuple[int, int, int, int]  # debits_posted, credits_posted, debits_pending, credits_pending
TOTALS = ("debits_posted", "credits_posted", "debits_pending", "credits_pending")


@dataclass(slots=True)
class Balances:
    """A published `comuna-balances/v1`: as of log size `size`, every account's totals."""

    origin: str
    size: int
    accounts: dict[str, Totals]
    problems: list[str]  # malformed account lines (they are left out of `accounts`)


def parse_balances(text: str, shown: int = 20) -> Balances:
    """The published balances; EntryError if the head (type, origin, size) is malformed, and
    a problem for each bad account line (at most `shown` listed, the rest counted)."""
    if not text.endswith("\n") or "\r" in text:
        raise EntryError("lines must end in a newline")
    lines = text[:-1].split("\n")
    if lines[0] != BALANCES:
        raise EntryError(f"the first line is {lines[0][:40]!r}, not {BALANCES!r}")
    origin, size_text = values(lines[1:3], ("origin", "size"))
    size = amount_of(size_text, "size")
    accounts: dict[str, Totals] = {}
    problems: list[str] = []
    bad = 0
    previous = ""
    for number, line in enumerate(lines[3:], start=4):
        parts = line.split(" ")
        try:
            if len(parts) != 6 or parts[0] != "account":
                raise EntryError(f"not 'account <id> {' '.join(f'<{name}>' for name in TOTALS)}'")
            account = uuid_of(parts[1], "account")
            totals = tuple(amount_of(p, name) for p, name in zip(parts[2:], TOTALS, strict=True))
            if account <= previous:
                raise EntryError(f"account {account} is not after {previous}: not sorted by id, or listed twice")
        except EntryError as exc:
            bad += 1
            if bad <= shown:
                problems.append(f"balances: line {number}: {exc}")
            continue
        previous = account
        accounts[account] = totals  # type: ignore[assignment]
    if bad > shown:
        problems.append(f"balances: and {bad - shown} more malformed lines")
    return Balances(origin, size, accounts, problems)
