"""Rules of the territory register: which kind may sit under which, and what a change may do.

Codes are human identifiers and say nothing about where a unit sits: placement is checked on
kinds and parent links only. `lineage` and `council_communes` are the reads other parts of
identity (scope checks, the census, the voter roll) build on.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from comuna_identity.storage import territory_history
from comuna_identity.storage.territory_history import TerritoryAt
from comuna_identity.vocabulary import COMMUNE_KINDS, TerritoryKind, TerritoryStatus
from comuna_platform.auth.access import Caller, Lineage
from comuna_platform.auth.roles import Role
from comuna_platform.errors import InvalidInput, NotFound

# Allowed parent kind for each kind. A communal circuit is a commune not yet consolidated:
# it sits where a commune sits and holds councils the same way. A parish is optional: communes
# sit under a parish or directly under the municipality.
PARENT_KIND: dict[TerritoryKind, frozenset[TerritoryKind]] = {
    TerritoryKind.COUNTRY: frozenset(),
    TerritoryKind.STATE: frozenset({TerritoryKind.COUNTRY}),
    TerritoryKind.MUNICIPALITY: frozenset({TerritoryKind.STATE}),
    TerritoryKind.PARISH: frozenset({TerritoryKind.MUNICIPALITY}),
    TerritoryKind.COMMUNE: frozenset({TerritoryKind.MUNICIPALITY, TerritoryKind.PARISH}),
    TerritoryKind.COMMUNAL_CIRCUIT: frozenset({TerritoryKind.MUNICIPALITY, TerritoryKind.PARISH}),
    TerritoryKind.COMMUNAL_COUNCIL: COMMUNE_KINDS,
}

# The earliest date a version may start: the register's "since ever" (migrated rows, the seed).
SINCE_EVER = date(1900, 1, 1)
LATEST_DAY = date(9999, 12, 30)


def kind_of(kind: str) -> TerritoryKind:
    try:
        return TerritoryKind(kind)
    except ValueError:
        raise InvalidInput(
            f"unknown territory kind {kind[:40]!r}", code="territory_kind_invalid", field="kind"
        ) from None


def placement_error(kind: str, parent_kind: str | None) -> tuple[str, str] | None:
    """(code, detail) when a `kind` unit may not sit under a `parent_kind` one (None: the root)."""
    try:
        allowed = PARENT_KIND[TerritoryKind(kind)]
    except ValueError:
        return "territory_kind_invalid", f"unknown territory kind {kind[:40]!r}"
    if parent_kind is None:
        if allowed:
            return "territory_parent_required", f"a {kind} needs a parent territory"
        return None
    if parent_kind not in allowed:
        return "territory_parent_invalid", f"a {kind} cannot sit under a {parent_kind}"
    return None


def check_placement(*, kind: str, parent_kind: str | None) -> None:
    """Raise InvalidInput unless a `kind` territory may sit under a `parent_kind` one."""
    error = placement_error(kind, parent_kind)
    if error is not None:
        raise InvalidInput(error[1], code=error[0])


def check_parent_open(parent: TerritoryAt | None) -> None:
    if parent is not None and parent.status == TerritoryStatus.DISSOLVED:
        raise InvalidInput(f"territory {parent.code} is dissolved", code="territory_parent_dissolved")


def check_day(day: date) -> None:
    if not SINCE_EVER <= day <= LATEST_DAY:
        raise InvalidInput("valid_from is not a plausible date", code="date_invalid", field="valid_from")


async def lineage(session: AsyncSession, territory_id: uuid.UUID, day: date) -> list[TerritoryAt]:
    """The unit and its ancestors on `day`, root first, by the parent links in force then."""
    return await territory_history.lineage(session, territory_id, day)


async def lineage_of(session: AsyncSession, unit: TerritoryAt, day: date) -> Lineage:
    """The scope-check view of `unit`'s lineage on `day` (its codes, root first)."""
    chain = await territory_history.lineage(session, unit.id, day)
    return Lineage(tuple(t.code for t in chain) or (unit.code,))


async def require_over_all(
    session: AsyncSession, caller: Caller, roles: Sequence[Role], codes: Iterable[str], day: date
) -> None:
    """403 unless `caller` holds one of `roles` over every territory of `codes` on `day` (a
    bulk file's councils): at once when held nationally, else lineage by lineage."""
    if caller.holds_nationally(*roles):
        return
    caller.require_role(*roles)
    for code in codes:
        unit = await territory_history.by_code(session, code, day)
        if unit is None:
            raise NotFound(f"territory {code} does not exist", code="territory_not_found")
        caller.require(roles, await lineage_of(session, unit, day))


async def covers_all(
    session: AsyncSession, caller: Caller, roles: Sequence[Role], codes: Iterable[str], day: date
) -> bool:
    """Whether `caller` holds one of `roles` over every territory of `codes` on `day` (a unit with
    no version in force then is covered only nationally). Says nothing of which one is not."""
    if caller.holds_nationally(*roles):
        return True
    for code in codes:
        unit = await territory_history.by_code(session, code, day)
        if unit is None or not caller.allows(roles, await lineage_of(session, unit, day)):
            return False
    return True


def council_communes(day: date) -> Select[*tuple[Any, ...]]:
    """A selectable of (council_id, commune_id) for every council in force on `day`."""
    return territory_history.council_communes(day)
