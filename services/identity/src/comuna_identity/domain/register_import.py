"""Bulk import and export of the whole territory register (CSV or JSON).

Upsert by code: a row equal to the unit's latest version changes nothing; a row that differs is
a change from its `valid_from` (a move, rename, promotion or dissolution, history kept); a new
code is a new unit. The file is checked whole before anything is written: every bad row is
listed with its line (unknown parent, a kind that cannot sit under its parent, a cycle, a code
twice, an impossible date, a bad kind...), and one bad row refuses the file. Importing the same
file twice changes nothing the second time, and the answer says so.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from comuna_identity.domain import audit
from comuna_identity.domain.events import TerritoriesImported
from comuna_identity.domain.territories import LATEST_DAY, SINCE_EVER, placement_error
from comuna_identity.storage import territory_bulk
from comuna_identity.storage.territory_bulk import Registered, StagedVersion
from comuna_identity.vocabulary import TerritoryKind, TerritoryStatus
from comuna_platform.bulk import BulkRow, RowErrors
from comuna_platform.ids import new_id
from comuna_platform.uow import UnitOfWork

COLUMNS = ("code", "name", "kind", "parent_code", "valid_from", "status")
REQUIRED = ("code", "name", "kind", "parent_code", "valid_from")
CODE = re.compile(r"^[A-Z0-9]+([._-][A-Z0-9]+)*$")
MAX_CODE, MAX_NAME = 64, 200
# (code, name, kind, parent_code or "", valid_from, status)
ExportRow = tuple[str, str, str, str, date, str]
_KINDS = frozenset(TerritoryKind)
_STATUSES = frozenset(TerritoryStatus)


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    code: str
    name: str
    kind: str
    parent_code: str | None
    valid_from: date
    status: str


@dataclass(frozen=True)
class ImportResult:
    created: int
    changed: int
    unchanged: int

    @property
    def total(self) -> int:
        return self.created + self.changed + self.unchanged


def parse_row(row: BulkRow, errors: RowErrors) -> Row | None:
    """One row's own checks (no other row or the register needed); None when it is bad."""
    f, line = row.fields, row.line
    bad = False
    code = f.get("code", "")
    if not code or len(code) > MAX_CODE or not CODE.match(code):
        errors.add(line, "code_invalid", "code must be 1-64 capital letters, digits and single . _ -", "code")
        bad = True
    name = f.get("name", "")
    if not name or len(name) > MAX_NAME:
        errors.add(line, "name_invalid", f"name must be 1-{MAX_NAME} characters", "name")
        bad = True
    kind = f.get("kind", "")
    if kind not in _KINDS:
        errors.add(line, "territory_kind_invalid", f"unknown kind; one of {', '.join(TerritoryKind)}", "kind")
        bad = True
    parent = f.get("parent_code", "") or None
    if parent is not None and (len(parent) > MAX_CODE or not CODE.match(parent)):
        errors.add(line, "code_invalid", "parent_code is not a territory code", "parent_code")
        bad = True
    day = _date(f.get("valid_from", ""))
    if day is None:
        errors.add(line, "date_invalid", "valid_from must be a real date, YYYY-MM-DD, from 1900 on", "valid_from")
        bad = True
    status = f.get("status", "") or TerritoryStatus.ACTIVE
    if status not in _STATUSES:
        errors.add(line, "status_invalid", "status must be active or dissolved", "status")
        bad = True
    if bad or day is None:
        return None
    return Row(line, code, name, kind, parent, day, status)


def _date(value: str) -> date | None:
    if len(value) != 10:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        return None
    return day if SINCE_EVER <= day <= LATEST_DAY else None


@dataclass
class _Final:
    """A unit as the register will hold it after the import (for cross-row checks)."""

    kind: str
    parent_code: str | None
    status: str
    since: date
    line: int | None


def plan(rows: list[Row], known: dict[str, Registered], errors: RowErrors) -> list[tuple[Row, StagedVersion | None]]:
    """Check the rows against each other and the register; what to write for each row (None:
    unchanged). Adds every problem to `errors`."""
    by_code: dict[str, Row] = {}
    for row in rows:
        first = by_code.get(row.code)
        if first is not None:
            errors.add(row.line, "code_duplicate", f"the code appears twice in the file (first on line {first.line})")
        else:
            by_code[row.code] = row
    code_of = {r.id: r.code for r in known.values()}
    final: dict[str, _Final] = {
        code: _Final(r.kind, code_of.get(r.parent_id) if r.parent_id else None, r.status, r.since, None)
        for code, r in known.items()
    }
    for row in by_code.values():
        existing = known.get(row.code)
        since = min(existing.since, row.valid_from) if existing else row.valid_from
        final[row.code] = _Final(row.kind, row.parent_code, row.status, since, row.line)

    for row in by_code.values():
        _check_parent(row, final, errors)
    _check_cycles(by_code, final, errors)
    _check_dissolved_have_no_active_children(by_code, final, errors)

    ids = {code: r.id for code, r in known.items()}
    for code in by_code:
        ids.setdefault(code, new_id())
    planned: list[tuple[Row, StagedVersion | None]] = []
    for row in by_code.values():
        existing = known.get(row.code)
        parent_id = ids.get(row.parent_code) if row.parent_code else None
        if existing is not None:
            same = (existing.name, existing.kind, existing.parent_id, existing.status) == (
                row.name,
                row.kind,
                parent_id,
                row.status,
            )
            if same:
                planned.append((row, None))
                continue
            if row.valid_from < existing.valid_from:
                errors.add(
                    row.line,
                    "territory_history_conflict",
                    f"the unit has a version from {existing.valid_from}: a change must start on or after it",
                    "valid_from",
                )
                continue
        staged = StagedVersion(
            territory_id=ids[row.code],
            code=row.code,
            create=existing is None,
            amend=existing is not None and row.valid_from == existing.valid_from,
            valid_from=row.valid_from,
            name=row.name,
            kind=row.kind,
            parent_id=parent_id,
            status=row.status,
        )
        planned.append((row, staged))
    return planned


def _check_parent(row: Row, final: dict[str, _Final], errors: RowErrors) -> None:
    parent = final.get(row.parent_code) if row.parent_code else None
    if row.parent_code is not None and parent is None:
        errors.add(
            row.line, "territory_parent_unknown", "the parent is neither in the file nor in the register", "parent_code"
        )
        return
    problem = placement_error(row.kind, parent.kind if parent else None)
    if problem is not None:
        errors.add(row.line, problem[0], problem[1], "parent_code" if parent else "kind")
        return
    if parent is None:
        return
    if parent.since > row.valid_from:
        errors.add(
            row.line,
            "territory_parent_too_late",
            f"the parent exists only from {parent.since}, after this row's valid_from",
            "valid_from",
        )
    if parent.status == TerritoryStatus.DISSOLVED and row.status == TerritoryStatus.ACTIVE:
        errors.add(row.line, "territory_parent_dissolved", "the parent is dissolved", "parent_code")


def _check_cycles(by_code: dict[str, Row], final: dict[str, _Final], errors: RowErrors) -> None:
    """Units of the file whose chain of parents comes back to them (only the file adds links)."""
    done: set[str] = set()
    for start in by_code:
        path: list[str] = []
        on_path: set[str] = set()
        node: str | None = start
        while node is not None and node not in done and node not in on_path:
            path.append(node)
            on_path.add(node)
            unit = final.get(node)
            node = unit.parent_code if unit else None
        if node is not None and node in on_path:
            cycle = path[path.index(node) :]
            for code in cycle:
                row = by_code.get(code)
                if row is not None:
                    errors.add(row.line, "territory_cycle", f"the parents come back to this unit ({len(cycle)} units)")
        done.update(path)


def _check_dissolved_have_no_active_children(
    by_code: dict[str, Row], final: dict[str, _Final], errors: RowErrors
) -> None:
    dissolved = {code for code, row in by_code.items() if row.status == TerritoryStatus.DISSOLVED}
    if not dissolved:
        return
    for code, unit in final.items():
        if unit.parent_code in dissolved and unit.status == TerritoryStatus.ACTIVE:
            parent = by_code[unit.parent_code]
            errors.add(parent.line, "territory_has_children", f"{code} still sits under this unit: move or dissolve it")


async def import_rows(uow: UnitOfWork, rows: AsyncIterator[BulkRow], *, actor: str) -> ImportResult:
    """Check and write a whole file's rows (the caller checked who may import). Raises
    `BulkInputError` (422 `import_invalid`, every bad line) and then writes nothing."""
    errors = RowErrors()
    parsed: list[Row] = []
    async for bulk_row in rows:
        row = parse_row(bulk_row, errors)
        if row is not None:
            parsed.append(row)
    session = uow.session
    await territory_bulk.lock_register(session)
    known = await territory_bulk.registered(session)
    planned = plan(parsed, known, errors)
    errors.raise_if_any()
    staged = [s for _, s in planned if s is not None]
    await territory_bulk.write(session, staged)
    entries = [_audit_entry(known, s, actor) for s in staged]
    await audit.append(session, entries)
    created = sum(1 for s in staged if s.create)
    result = ImportResult(created=created, changed=len(staged) - created, unchanged=len(planned) - len(staged))
    if staged:
        # One event for the batch: services drop every cached lineage on any territory event.
        await uow.stage(TerritoriesImported(result.created, result.changed), aggregate_id=str(new_id()))
    return result


def _audit_entry(known: dict[str, Registered], staged: StagedVersion, actor: str) -> audit.AuditEntry:
    existing = known.get(staged.code)
    after = {
        "code": staged.code,
        "name": staged.name,
        "kind": staged.kind,
        "parent_id": str(staged.parent_id) if staged.parent_id else None,
        "status": staged.status,
        "valid_from": staged.valid_from.isoformat(),
    }
    before = None
    if existing is not None:
        before = {
            "code": existing.code,
            "name": existing.name,
            "kind": existing.kind,
            "parent_id": str(existing.parent_id) if existing.parent_id else None,
            "status": existing.status,
            "valid_from": existing.valid_from.isoformat(),
        }
    action = "territory.created" if staged.create else "territory.changed"
    return audit.AuditEntry(actor, action, "territory", str(staged.territory_id), before, after)


async def export(session: AsyncSession, day: date) -> AsyncIterator[ExportRow]:
    """The register in force on `day`, parents first (a read: no unit of work needed)."""
    async for row in territory_bulk.export_rows(session, day):
        yield row
