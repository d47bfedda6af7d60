"""Page tokens: one opaque, versioned format for REST (`page_token` / `next_page_token`) and gRPC.

A token is base64url (no padding) of `v1:` followed by the JSON array of the page's last sort
key, e.g. `["2026-Q1"]` or `[1042]`. Callers must treat it as opaque; it is decoded and checked
against the kinds the listing expects before anything reaches the database, so a forged or
damaged token is a 422 / INVALID_ARGUMENT `invalid_page_token`, never a database error.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from typing import Any

from comuna_platform.errors import InvalidInput

VERSION = "v1:"
# Far above any key we emit (a territory code is at most 64 characters); bounds the work.
# Bounds what the decoder reads: room for the longest key the encoder can issue
# (three text parts of MAX_TEXT_LENGTH characters, JSON-escaped, base64-encoded).
MAX_TOKEN_LENGTH = 8192
MAX_TEXT_LENGTH = 200
MAX_INT = 2**63 - 1  # PostgreSQL bigint

KeyPart = str | int | uuid.UUID


def encode_page_token(*key: KeyPart) -> str:
    parts = [str(p) if isinstance(p, uuid.UUID) else p for p in key]
    text = VERSION + json.dumps(parts, separators=(",", ":"), ensure_ascii=True)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _invalid() -> InvalidInput:
    return InvalidInput("page_token is not one this service issued", code="invalid_page_token", field="page_token")


def _part(value: Any, kind: type) -> KeyPart:
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT:
            raise _invalid()
        return value
    if not isinstance(value, str) or len(value) > MAX_TEXT_LENGTH:
        raise _invalid()
    if kind is uuid.UUID:
        try:
            return uuid.UUID(value)
        except ValueError as exc:
            raise _invalid() from exc
    # Printable text only: a NUL or a control character could not be a key we issued.
    if not value.isprintable():
        raise _invalid()
    return value


def decode_page_token(token: str, kinds: Sequence[type]) -> tuple[Any, ...] | None:
    """The key the token continues after (one value per kind: `str`, `int` or `uuid.UUID`),
    or None for the first page (empty token)."""
    if not token:
        return None
    if len(token) > MAX_TOKEN_LENGTH:
        raise _invalid()
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise _invalid() from exc
    if not text.startswith(VERSION):
        raise _invalid()
    try:
        parts = json.loads(text[len(VERSION) :])
    except ValueError as exc:
        raise _invalid() from exc
    if not isinstance(parts, list) or len(parts) != len(kinds):
        raise _invalid()
    return tuple(_part(value, kind) for value, kind in zip(parts, kinds, strict=True))


def page_size_of(requested: int, *, default: int, maximum: int) -> int:
    """gRPC page sizes (AIP-158): 0 means the default, above the maximum is capped, negative is refused."""
    if requested < 0:
        raise InvalidInput("page_size must not be negative", code="invalid_page_size", field="page_size")
    return min(requested, maximum) if requested else default
