"""A voting table by its code, and who may act at it: the contract the ballot path (BALLOTS) and
the offline tables' sync (OFFLINE) call.

An officer acts at ONE table: identity's `table_officer` assignment names the consultation and
the table's code, and is held at the table's commune (or above it). Holding the role for another
table, even of the same commune, is `not_officer_of_table`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from comuna_consultations.tables import storage
from comuna_consultations.vocabulary import TableKind
from comuna_platform.auth.access import Caller
from comuna_platform.auth.errors import PermissionDeniedError
from comuna_platform.auth.lineages import TerritoryLineages
from comuna_platform.auth.roles import Role
from comuna_platform.errors import NotFound


@dataclass(frozen=True, slots=True)
class VotingTable:
    """A table as the paths that act at it need it: with its commune's code (as snapshotted
    when the consultation opened), whose lineage an officer's assignment must cover."""

    id: uuid.UUID
    consultation_id: uuid.UUID
    code: str
    kind: TableKind
    centre_id: uuid.UUID
    centre_code: str
    commune_id: uuid.UUID
    commune_code: str


def table_not_found(code: str) -> NotFound:
    return NotFound(f"no table {code[:64]!r} in this consultation", code="table_not_found")


def _view(row: storage.TableRow) -> VotingTable:
    return VotingTable(
        id=row.id,
        consultation_id=row.consultation_id,
        code=row.code,
        kind=TableKind(row.kind),
        centre_id=row.centre_id,
        centre_code=row.centre_code,
        commune_id=row.commune_id,
        commune_code=row.commune_code,
    )


async def table_by_code(session: storage.Executor, consultation_id: uuid.UUID, code: str) -> VotingTable | None:
    row = await storage.table_by_code(session, consultation_id, code)
    return _view(row) if row is not None else None


async def existing_table(session: storage.Executor, consultation_id: uuid.UUID, code: str) -> VotingTable:
    table = await table_by_code(session, consultation_id, code)
    if table is None:
        raise table_not_found(code)
    return table


def is_officer_of(caller: Caller, table: VotingTable, lineage_codes: tuple[str, ...]) -> bool:
    consultation_id = str(table.consultation_id)
    return any(
        a.role is Role.TABLE_OFFICER
        and a.consultation_id == consultation_id
        and a.table_code == table.code
        and a.territory_code in lineage_codes
        for a in caller.assignments
    )


async def require_table_officer(caller: Caller, table: VotingTable, lineages: TerritoryLineages) -> None:
    """403 unless the caller is an officer of THIS table of this consultation, over its commune:
    `forbidden_role` for someone who is no table officer at all, `not_officer_of_table` for an
    officer of another table (or another consultation)."""
    if caller.is_service:
        raise PermissionDeniedError("forbidden_role", "a table is served by its officers, not by a service")
    caller.require_role(Role.TABLE_OFFICER)
    # The commune as this consultation snapshotted it; where it sits today comes from identity.
    lineage = await lineages.of(table.commune_code)
    if not is_officer_of(caller, table, lineage.codes):
        raise PermissionDeniedError("not_officer_of_table", f"not an officer of table {table.code}")
