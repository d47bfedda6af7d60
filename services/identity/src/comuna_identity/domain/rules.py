"""Who may hold which role where, and who may grant it: pure rules, no storage.

A role is held at one kind of territory (a regional official at a state, a spokesperson at a
commune...). An assignment covers its territory and everything under it, so a granter's
authority reaches every territory below the one they hold.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from comuna_identity.vocabulary import COMMUNE_KINDS, TerritoryKind
from comuna_platform.auth.access import Caller, Lineage
from comuna_platform.auth.roles import Role
from comuna_platform.errors import Forbidden, InvalidInput

ALL_KINDS = frozenset(TerritoryKind)

# The kinds of territory each role is held at.
ROLE_KINDS: dict[Role, frozenset[TerritoryKind]] = {
    Role.OPERATOR: frozenset({TerritoryKind.COUNTRY}),
    Role.AUDITOR: frozenset({TerritoryKind.COUNTRY}),
    Role.REGIONAL_OFFICIAL: frozenset({TerritoryKind.STATE}),
    Role.MUNICIPAL_OFFICIAL: frozenset({TerritoryKind.MUNICIPALITY}),
    Role.REGISTRAR: ALL_KINDS,
    Role.SPOKESPERSON: COMMUNE_KINDS,
    Role.OVERSEER: COMMUNE_KINDS,
    Role.TABLE_OFFICER: COMMUNE_KINDS,
    # Only through enrolment, at the resident's council.
    Role.RESIDENT: frozenset({TerritoryKind.COMMUNAL_COUNCIL}),
}

_LOCAL_ROLES = frozenset({Role.SPOKESPERSON, Role.OVERSEER, Role.TABLE_OFFICER})

# The roles a holder of each role may grant (and revoke), inside the territory they hold.
# Resident is granted by nobody: it follows from enrolment.
GRANTS: dict[Role, frozenset[Role]] = {
    Role.OPERATOR: frozenset(Role) - {Role.RESIDENT},
    Role.REGIONAL_OFFICIAL: frozenset({Role.MUNICIPAL_OFFICIAL, Role.REGISTRAR}) | _LOCAL_ROLES,
    Role.MUNICIPAL_OFFICIAL: frozenset({Role.REGISTRAR}) | _LOCAL_ROLES,
    Role.REGISTRAR: _LOCAL_ROLES,
}

# Roles that see every assignment (read-only for the auditor).
SEE_EVERYTHING = frozenset({Role.OPERATOR, Role.AUDITOR})


def granters_of(role: Role) -> frozenset[Role]:
    """The roles whose holders may grant `role`."""
    return frozenset(granter for granter, grantable in GRANTS.items() if role in grantable)


def check_role_territory(role: Role, kind: str) -> None:
    """InvalidInput unless `role` may be held at a territory of `kind`."""
    if TerritoryKind(kind) not in ROLE_KINDS[role]:
        allowed = ", ".join(sorted(ROLE_KINDS[role]))
        raise InvalidInput(
            f"a {role} is held at a territory of kind: {allowed} (not {kind})", code="role_territory_invalid"
        )


def check_terms(
    role: Role,
    *,
    consultation_id: object | None,
    table_code: str | None,
    valid_from: datetime,
    valid_until: datetime | None,
) -> None:
    """A table officer names a consultation and a table, no other role does; the period is not empty."""
    is_table = role is Role.TABLE_OFFICER
    if is_table != (consultation_id is not None) or is_table != (table_code is not None):
        raise InvalidInput(
            "consultation_id and table_code are given for a table_officer, and only for one", code="table_terms_invalid"
        )
    if valid_until is not None and valid_until <= valid_from:
        raise InvalidInput("valid_until must be after valid_from", code="validity_invalid")


def may_grant(caller: Caller, role: Role, lineage: Lineage) -> bool:
    return caller.allows(granters_of(role), lineage)


def check_grant(caller: Caller, *, subject: str, role: Role, lineage: Lineage) -> None:
    """403 unless `caller` may grant (or revoke) `role` at the territory of `lineage` for `subject`."""
    if role is Role.RESIDENT:
        raise Forbidden("the resident role follows from enrolment only", code="role_not_grantable")
    if subject == caller.subject:
        raise Forbidden("nobody grants or revokes their own assignments", code="own_assignment")
    granters = granters_of(role)
    if caller.allows(granters, lineage):
        return
    if caller.holds(*granters):
        raise Forbidden(f"not allowed to grant {role} in territory {lineage.code}", code="forbidden_territory")
    raise Forbidden(f"not allowed to grant {role}", code="forbidden_role")


def visibility(caller: Caller) -> tuple[str, ...] | None:
    """The territories whose assignments `caller` may list: None for everywhere (operators and
    auditors), else the territories where they may grant something (possibly none)."""
    if caller.holds(*SEE_EVERYTHING):
        return None
    return _codes(a.territory_code for a in caller.assignments if a.role in GRANTS)


def _codes(codes: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(codes))
