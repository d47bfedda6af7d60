"""Ids: parsing them from input with one stable error, minting new ones, deriving fixed ones.

Every transport parses ids the same way (`parse_id`: 422 / INVALID_ARGUMENT `invalid_id`
naming the field), so a malformed id never reaches a query. `DeterministicIds` names things
derived from an upstream fact (a UUIDv5 under a namespace fixed forever), so a replay or a
second copy of an event computes the same ids and the database's unique keys absorb it.
"""

from __future__ import annotations

import uuid

from comuna_platform.errors import InvalidInput


def new_id() -> uuid.UUID:
    """A fresh random id (uuid4: carries no time, so it orders and links nothing)."""
    return uuid.uuid4()


def parse_id(value: str, field: str) -> uuid.UUID:
    """A UUID from a request field, or InvalidInput `invalid_id` naming the field."""
    parsed = try_parse_id(value)
    if parsed is None:
        raise InvalidInput(f"{field} is not a valid id", code="invalid_id", field=field)
    return parsed


def try_parse_id(value: object) -> uuid.UUID | None:
    """The UUID in `value`, or None. Callers pass the parsed value on, so differently
    formatted spellings of one id (upper case, braces) still derive the same ids."""
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


class DeterministicIds:
    """UUIDv5 ids under one namespace: `derive("allocation", a, b)` is `uuid5(ns, "allocation/a/b")`."""

    def __init__(self, namespace: uuid.UUID) -> None:
        self.namespace = namespace

    def derive(self, *parts: object) -> uuid.UUID:
        return uuid.uuid5(self.namespace, "/".join(str(p) for p in parts))
