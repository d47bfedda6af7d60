"""A voting table by its code, and who may act at it: the contract the ballot path (BALLOTS) and
the offline tables' sync (OFFLINE) call.

Who is an officer of a table is the rule in `domain.tables`, shared with the ballot path.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from comuna_consultations.domain import tables
from comuna_consultations.tables import storage
from comuna_consultations.vocabulary import TableKind
from comuna_platform.auth.access import Caller
from comuna_platform.auth.lineages import TerritoryLineages
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


async def require_table_officer(caller: Caller, table: VotingTable, lineages: TerritoryLineages) -> None:
    """403 unless the caller is an officer of THIS table of this consultation, over its commune
    (`domain.tables`): `forbidden_role` for someone who is no table officer at all,
    `forbidden_table` for an officer of another table (or another consultation)."""
    tables.require_any_table(caller)
    # The commune as this consultation snapshotted it; where it sits today comes from identity.
    lineage = await lineages.of(table.commune_code)
    tables.require_officer_of(caller, table.consultation_id, table.code, lineage)
