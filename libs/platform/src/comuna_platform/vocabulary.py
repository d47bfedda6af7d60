"""One vocabulary: statuses and kinds are `StrEnum`s, and the database's CHECK constraints are
written from the same enum, so the allowed values exist once.

`one_of("status", ConsultationStatus)` gives `status IN ('assembly', 'voting', ...)`, in the
enum's declaration order: the text the migrations already hold, so the schema drift test
compares equal without a new migration.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


def values_of(members: Iterable[StrEnum]) -> tuple[str, ...]:
    return tuple(member.value for member in members)


def one_of(column: str, members: Iterable[StrEnum]) -> str:
    """SQL `column IN ('a', 'b')` for a CHECK constraint."""
    values = values_of(members)
    if not values:
        raise ValueError(f"no values allowed for {column}")
    for value in values:
        # Values are identifiers written by us; refuse anything that would need quoting.
        if not value.replace("_", "").isalnum() or not value.isascii():
            raise ValueError(f"{value!r} is not a plain lower_snake_case word")
    return f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")"
