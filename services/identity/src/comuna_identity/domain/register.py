"""Use cases of the territory register: create, change from a day on, read as of a day.

Every unit keeps its id and code forever; a change effective on day d (a move, a rename, a
promotion of a circuit to a commune, a dissolution) closes the version in force and opens a
new one from d, so history is kept and reads answer as of any day. Writers lock the unit's row
first (one change of a unit at a time); the exclusion constraint refuses any overlap anyway.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from comuna_identity.domain import audit
from comuna_identity.domain.events import TerritoryChanged, TerritoryCreated
from comuna_identity.domain.territories import (
    SINCE_EVER,
    check_day,
    check_parent_open,
    check_placement,
    kind_of,
    lineage_of,
    placement_error,
)
from comuna_identity.storage import territory_history
from comuna_identity.storage.models import Territory, TerritoryVersion
from comuna_identity.storage.territory_history import TerritoryAt
from comuna_identity.vocabulary import TerritoryKind, TerritoryStatus
from comuna_platform.auth.access import Caller
from comuna_platform.auth.roles import Role
from comuna_platform.errors import Conflict, InvalidInput, NotFound
from comuna_platform.ids import new_id
from comuna_platform.uow import UnitOfWork

# Who may register and change territories: registrars, and operators (the root: operators only).
TERRITORY_KEEPERS = (Role.REGISTRAR, Role.OPERATOR)
OBJECT_KIND = "territory"


def territory_not_found(code: str) -> NotFound:
    return NotFound(f"territory {code} does not exist", code="territory_not_found")


def today() -> date:
    return datetime.now(UTC).date()


def snapshot(unit: TerritoryAt, parent_code: str | None) -> dict[str, Any]:
    """What the audit log keeps of a unit's version (hashed there): codes, names, dates, status."""
    return {
        "code": unit.code,
        "name": unit.name,
        "kind": unit.kind,
        "parent_code": parent_code,
        "status": unit.status,
        "valid_from": unit.valid_from.isoformat(),
    }


async def _require_keeper(uow: UnitOfWork, caller: Caller, parent: TerritoryAt | None, day: date) -> None:
    """Creating or changing a unit is an act in its parent. A root (no parent): an operator; the
    very first root cannot be covered by any assignment yet, so holding the role is enough."""
    if parent is None:
        caller.require_role(Role.OPERATOR)
    else:
        caller.require(TERRITORY_KEEPERS, await lineage_of(uow.session, parent, day))


async def _parent_at(uow: UnitOfWork, parent_code: str | None, day: date) -> TerritoryAt | None:
    if parent_code is None:
        return None
    parent = await territory_history.by_code(uow.session, parent_code, day)
    if parent is None:
        raise NotFound(f"parent territory {parent_code} does not exist on {day}", code="territory_not_found")
    return parent


async def create_territory(
    uow: UnitOfWork,
    caller: Caller,
    *,
    code: str,
    name: str,
    kind: TerritoryKind,
    parent_code: str | None,
    valid_from: date | None = None,
) -> TerritoryAt:
    """Register a unit from `valid_from` (today by default) under a parent the caller covers."""
    day = valid_from or today()
    check_day(day)
    parent = await _parent_at(uow, parent_code, day)
    check_placement(kind=kind, parent_kind=parent.kind if parent else None)
    check_parent_open(parent)
    await _require_keeper(uow, caller, parent, day)
    return await insert_territory(uow, code=code, name=name, kind=kind, parent=parent, day=day, actor=caller.subject)


async def ensure_territory(
    uow: UnitOfWork, *, code: str, name: str, kind: str, parent_code: str | None, actor: str = "bootstrap"
) -> bool:
    """Seed a unit unless one with `code` exists (then nothing changes); True if it created it.
    Seeded units exist "since ever", so reads as of any past day see the seed."""
    if await territory_history.identity_of(uow.session, code) is not None:
        return False
    parent = await _parent_at(uow, parent_code, SINCE_EVER)
    check_placement(kind=kind, parent_kind=parent.kind if parent else None)
    await insert_territory(uow, code=code, name=name, kind=kind_of(kind), parent=parent, day=SINCE_EVER, actor=actor)
    return True


async def insert_territory(
    uow: UnitOfWork, *, code: str, name: str, kind: TerritoryKind, parent: TerritoryAt | None, day: date, actor: str
) -> TerritoryAt:
    session = uow.session
    territory = Territory(id=new_id(), code=code)
    session.add(territory)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"territory {code} already exists", code="territory_exists") from exc
    version = TerritoryVersion(
        id=new_id(),
        territory_id=territory.id,
        valid_from=day,
        valid_until=None,
        name=name,
        kind=kind,
        parent_id=parent.id if parent else None,
        status=TerritoryStatus.ACTIVE,
    )
    session.add(version)
    await session.flush()
    unit = TerritoryAt(territory.id, code, name, kind, version.parent_id, TerritoryStatus.ACTIVE, day, None)
    await audit.append(
        session,
        [
            audit.AuditEntry(
                actor,
                "territory.created",
                OBJECT_KIND,
                str(unit.id),
                None,
                snapshot(unit, parent.code if parent else None),
            )
        ],
    )
    await uow.stage(TerritoryCreated(unit, unit.parent_id), aggregate_id=str(unit.id))
    return unit


@dataclass(frozen=True)
class Change:
    """What changes from `valid_from` on; None keeps the value in force."""

    valid_from: date
    name: str | None = None
    kind: TerritoryKind | None = None
    parent_code: str | None = None
    status: TerritoryStatus | None = None


@dataclass(frozen=True)
class Changed:
    territory: TerritoryAt
    changed: bool


async def change_territory(uow: UnitOfWork, caller: Caller | None, code: str, change: Change, *, actor: str) -> Changed:
    """Apply `change` from its day on. The day may not precede the unit's latest version (history
    is extended, not rewritten); on the latest version's own first day, that version is amended.
    `caller=None`: a trusted writer (the CLI) that checked its authority itself."""
    session = uow.session
    day = change.valid_from
    check_day(day)
    territory = (
        await session.execute(select(Territory).where(Territory.code == code).with_for_update())
    ).scalar_one_or_none()
    if territory is None:
        raise territory_not_found(code)
    versions = await territory_history.versions_of(session, territory.id)
    latest = versions[-1]
    if day < latest.valid_from or latest.valid_until is not None:
        raise Conflict(
            f"territory {code} has a version from {latest.valid_from}: changes start on or after it",
            code="territory_history_conflict",
        )
    old_parent = await territory_history.by_id(session, latest.parent_id, day) if latest.parent_id else None
    new_parent = old_parent if change.parent_code is None else await _parent_at(uow, change.parent_code, day)
    kind = change.kind or TerritoryKind(latest.kind)
    name = change.name if change.name is not None else latest.name
    status = change.status or TerritoryStatus(latest.status)
    parent_id = new_parent.id if new_parent else None
    if (name, kind, parent_id, status) == (latest.name, latest.kind, latest.parent_id, latest.status):
        return Changed(_unit(territory, latest), False)
    check_placement(kind=kind, parent_kind=new_parent.kind if new_parent else None)
    if status == TerritoryStatus.ACTIVE:
        check_parent_open(new_parent)
    if new_parent is not None and parent_id != latest.parent_id:
        chain = await territory_history.lineage(session, new_parent.id, day)
        if any(t.id == territory.id for t in chain):
            raise InvalidInput(
                f"{change.parent_code} is inside {code}: the move would make a cycle", code="territory_cycle"
            )
    await _check_children(uow, territory.id, kind=kind, status=status, day=day)
    if caller is not None:
        await _require_keeper(uow, caller, old_parent, day)
        if new_parent is not None and parent_id != latest.parent_id:
            await _require_keeper(uow, caller, new_parent, day)
    before = snapshot(_unit(territory, latest), old_parent.code if old_parent else None)
    if day == latest.valid_from:
        latest.name, latest.kind, latest.parent_id, latest.status = name, kind, parent_id, status
        version = latest
    else:
        latest.valid_until = day
        await session.flush()
        version = TerritoryVersion(
            id=new_id(),
            territory_id=territory.id,
            valid_from=day,
            valid_until=None,
            name=name,
            kind=kind,
            parent_id=parent_id,
            status=status,
        )
        session.add(version)
    try:
        await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"territory {code} changed concurrently", code="territory_history_conflict") from exc
    unit = _unit(territory, version)
    parent_code = new_parent.code if new_parent else None
    await audit.append(
        session,
        [audit.AuditEntry(actor, "territory.changed", OBJECT_KIND, str(unit.id), before, snapshot(unit, parent_code))],
    )
    await uow.stage(TerritoryChanged(unit), aggregate_id=str(unit.id))
    return Changed(unit, True)


def _code(unit: TerritoryAt | None) -> str | None:
    return unit.code if unit else None


def _unit(territory: Territory, version: TerritoryVersion) -> TerritoryAt:
    return TerritoryAt(
        territory.id,
        territory.code,
        version.name,
        version.kind,
        version.parent_id,
        version.status,
        version.valid_from,
        version.valid_until,
    )


async def _check_children(
    uow: UnitOfWork, territory_id: uuid.UUID, *, kind: TerritoryKind, status: TerritoryStatus, day: date
) -> None:
    """The units under this one on `day` must still fit it: a kind change keeps them placeable,
    a dissolution leaves none active."""
    children = await territory_history.children(uow.session, territory_id, day, after_code="", limit=1_000_000)
    for child in children:
        if status == TerritoryStatus.DISSOLVED and child.status == TerritoryStatus.ACTIVE:
            raise InvalidInput(
                f"{child.code} still sits under this territory: move or dissolve it first",
                code="territory_has_children",
            )
        error = placement_error(child.kind, kind)
        if error is not None:
            raise InvalidInput(f"{child.code}: {error[1]}", code=error[0])


@dataclass(frozen=True)
class TerritoryPage:
    items: Sequence[TerritoryAt]
    more: bool


async def list_children(
    uow: UnitOfWork, *, parent_code: str | None, day: date, after_code: str, limit: int
) -> TerritoryPage:
    """The children of `parent_code` (the roots when None) on `day`, in code order."""
    parent_id = None
    if parent_code:
        parent = await territory_history.by_code(uow.session, parent_code, day)
        if parent is None:
            raise territory_not_found(parent_code)
        parent_id = parent.id
    rows = await territory_history.children(uow.session, parent_id, day, after_code=after_code, limit=limit + 1)
    return TerritoryPage(rows[:limit], len(rows) > limit)


async def list_communes(uow: UnitOfWork, *, under_code: str, day: date, after_code: str, limit: int) -> TerritoryPage:
    """Communes and communal circuits on `day` under `under_code` (everywhere when empty), in code order."""
    under_id = None
    if under_code:
        under = await territory_history.by_code(uow.session, under_code, day)
        if under is None:
            raise territory_not_found(under_code)
        under_id = under.id
    rows = await territory_history.communes(uow.session, under_id, day, after_code=after_code, limit=limit + 1)
    return TerritoryPage(rows[:limit], len(rows) > limit)


@dataclass(frozen=True)
class TerritoryWithAncestors:
    territory: TerritoryAt
    # From the root down to the parent, by the parent links in force on the day read.
    ancestors: list[TerritoryAt]
    # The unit's versions, oldest first.
    history: Sequence[TerritoryVersion] = ()


async def territory_with_ancestors(
    uow: UnitOfWork,
    *,
    day: date,
    code: str | None = None,
    territory_id: uuid.UUID | None = None,
    with_history: bool = False,
) -> TerritoryWithAncestors:
    if territory_id is not None:
        territory = await territory_history.by_id(uow.session, territory_id, day)
    else:
        territory = await territory_history.by_code(uow.session, code or "", day)
    if territory is None:
        raise NotFound("territory does not exist", code="territory_not_found")
    chain = await territory_history.lineage(uow.session, territory.id, day)
    history = await territory_history.versions_of(uow.session, territory.id) if with_history else ()
    return TerritoryWithAncestors(territory, [t for t in chain if t.id != territory.id], history)
