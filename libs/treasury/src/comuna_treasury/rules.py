"""Input rules and refusals of the treasury, shared by the gRPC edge, the store and the
console script (no database or gRPC imports here, so `--help` and usage errors stay fast)."""

from __future__ import annotations

import re
import unicodedata
import uuid

MAX_REFERENCE = 500
MAX_EXTERNAL_ID = 100
MAX_AMOUNT = 2**63 - 1
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_CURSOR = re.compile(r"^[0-9]{1,18}$")


# --- errors: each maps to one gRPC status code (server.py) and to exit status 2 (cli.py) ------


class TreasuryError(Exception):
    """A refusal of the request itself; nothing was written."""


class InvalidArgument(TreasuryError):
    pass


class NotFound(TreasuryError):
    pass


class AlreadyExists(TreasuryError):
    pass


class FailedPrecondition(TreasuryError):
    pass


class NoAccount(TreasuryError):
    """The database was not migrated (no account): an operator's mistake, not the caller's."""


# --- input rules (shared by the gRPC edge and the console script) ----------------------------


def parse_reservation_id(value: str) -> uuid.UUID:
    if not _UUID.match(value):
        raise InvalidArgument(f"reservation_id must be a UUID (8-4-4-4-12 hex digits), got {value[:40]!r}")
    return uuid.UUID(value)


def check_currency(value: str, field: str = "currency") -> str:
    if not _CURRENCY.match(value):
        raise InvalidArgument(f"{field} must be an ISO 4217 code of three capital letters, got {value[:10]!r}")
    return value


def check_amount(value: int, field: str = "amount") -> int:
    if not 0 < value <= MAX_AMOUNT:
        raise InvalidArgument(f"{field} must be a positive number of minor units, got {value}")
    return value


def check_text(value: str, field: str, limit: int) -> str:
    if len(value) > limit:
        raise InvalidArgument(f"{field} is longer than {limit} characters")
    if any(unicodedata.category(c) in {"Cc", "Cs"} for c in value):
        raise InvalidArgument(f"{field} may not contain control characters")
    return value


def optional_id(value: str | None, field: str) -> str | None:
    if not value:
        return None
    return check_text(value, field, MAX_EXTERNAL_ID)


def parse_cursor(value: str) -> int:
    if value == "":
        return 0
    if not _CURSOR.match(value):
        raise InvalidArgument(f"after_cursor {value[:40]!r} is not a cursor this treasury gave")
    return int(value)


def page_limit(value: int) -> int:
    if value < 0:
        raise InvalidArgument(f"limit may not be negative, got {value}")
    return min(value or DEFAULT_LIMIT, MAX_LIMIT)
