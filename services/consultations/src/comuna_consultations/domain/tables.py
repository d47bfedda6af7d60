"""Who may act at a voting table: the one rule the ballot path, paper tables and offline tables share.

An officer acts at ONE table: identity's `table_officer` assignment names the consultation and
the table's code, and is held at the table's commune or above it (`Lineage`, where the commune
sits today by identity's parent links). Holding the role for another table, even of the same
commune, or for another consultation, is `forbidden_table`; holding no table officer role at
all is `forbidden_role`, refused before anything about tables is looked up.
"""

from __future__ import annotations

import uuid

from comuna_platform.auth.access import Caller, Lineage
from comuna_platform.auth.errors import PermissionDeniedError
from comuna_platform.auth.roles import Role


def require_any_table(caller: Caller) -> None:
    """403 `forbidden_role` unless a person holding some table officer assignment: checked
    first, so whoever holds none learns nothing about which tables exist."""
    if caller.is_service:
        raise PermissionDeniedError("forbidden_role", "a table is served by its officers, not by a service")
    caller.require_role(Role.TABLE_OFFICER)


def is_officer_of(caller: Caller, consultation_id: uuid.UUID, table_code: str, lineage: Lineage) -> bool:
    consultation = str(consultation_id)
    return any(
        a.role is Role.TABLE_OFFICER
        and a.consultation_id == consultation
        and a.table_code == table_code
        and a.covers(lineage)
        for a in caller.assignments
    )


def forbidden_table(table_code: str) -> PermissionDeniedError:
    return PermissionDeniedError("forbidden_table", f"not an officer of table {table_code[:64]}")


def require_officer_of(caller: Caller, consultation_id: uuid.UUID, table_code: str, lineage: Lineage) -> None:
    """403 `forbidden_table` unless the caller is an officer of THIS table over `lineage`
    (after `require_any_table`, which callers check first, before any lookup)."""
    if not is_officer_of(caller, consultation_id, table_code, lineage):
        raise forbidden_table(table_code)
