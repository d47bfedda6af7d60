"""Who may act where: a caller's identity (from the token) joined with identity's answer.

A token proves who calls (`Principal`: subject, client, the `service` role of service
accounts). Where a person may act comes from identity's role assignments, resolved by an
`AccessResolver` (identity reads its own database; other services call
`IdentityService.ResolvePrincipal` and cache the answer briefly). A `Caller` holds both, and
every territory decision is `caller.require(roles, territory_code)` against the territory of
the object touched, looked up in the service's own data: never a territory claim of the token.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from .errors import PermissionDeniedError
from .principal import Principal, scope_covers
from .roles import SERVICE_ROLE, Role


@dataclass(frozen=True, slots=True)
class Assignment:
    """One role held in one territory (and everything under it), possibly at one table."""

    role: Role
    territory_code: str
    assignment_id: str = ""
    consultation_id: str | None = None
    table_code: str | None = None
    valid_until: datetime | None = None

    def covers(self, territory_code: str) -> bool:
        return scope_covers(self.territory_code, territory_code)


@dataclass(frozen=True, slots=True)
class Resolution:
    """Identity's answer for one subject: the assignments in force, and the linked resident."""

    subject: str
    assignments: tuple[Assignment, ...] = ()
    resident_id: str | None = None


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller and where it may act."""

    principal: Principal
    assignments: tuple[Assignment, ...] = ()
    resident_id: str | None = None
    _roles: frozenset[Role] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_roles", frozenset(a.role for a in self.assignments))

    @property
    def subject(self) -> str:
        return self.principal.subject

    @property
    def is_service(self) -> bool:
        """A service account's token (client credentials): no person, no assignments."""
        return self.principal.has_role(SERVICE_ROLE)

    def holds(self, *roles: Role) -> bool:
        """Whether the caller holds any of `roles` anywhere."""
        return not self._roles.isdisjoint(roles)

    def allows(self, roles: Iterable[Role], territory_code: str, *, consultation_id: str | None = None) -> bool:
        """Whether an assignment of one of `roles` covers `territory_code` (and, for table
        officers, belongs to `consultation_id` when given)."""
        wanted = frozenset(roles)
        for assignment in self.assignments:
            if assignment.role not in wanted or not assignment.covers(territory_code):
                continue
            if (
                assignment.role is Role.TABLE_OFFICER
                and consultation_id is not None
                and assignment.consultation_id != consultation_id
            ):
                continue
            return True
        return False

    def require_role(self, *roles: Role) -> None:
        """403 `forbidden_role` unless the caller holds one of `roles` somewhere."""
        if not self.holds(*roles):
            raise PermissionDeniedError("forbidden_role", f"requires one of the roles: {_names(roles)}")

    def holds_nationally(self, *roles: Role) -> bool:
        """Whether one of `roles` is held at a country root (a territory code without a dot)."""
        wanted = frozenset(roles)
        return any(a.role in wanted and "." not in a.territory_code for a in self.assignments)

    def require_national(self, *roles: Role) -> None:
        """403 unless one of `roles` is held at a country root: for acts that concern no one
        territory (the service's own operations), where the platform knows no country code."""
        if self.holds_nationally(*roles):
            return
        self.require_role(*roles)
        raise PermissionDeniedError("forbidden_territory", "requires the role nationwide")

    def require(self, roles: Iterable[Role], territory_code: str, *, consultation_id: str | None = None) -> None:
        """403 unless one of `roles` is held over `territory_code`: `forbidden_role` when the
        caller holds none of them anywhere, `forbidden_territory` when not there."""
        wanted = tuple(roles)
        if self.allows(wanted, territory_code, consultation_id=consultation_id):
            return
        self.require_role(*wanted)
        raise PermissionDeniedError("forbidden_territory", f"not allowed to act in territory {territory_code}")


class AccessResolver(Protocol):
    """Turns a verified principal into its current resolution (identity's assignments)."""

    async def resolve(self, principal: Principal) -> Resolution: ...


def _names(roles: Iterable[Role]) -> str:
    return ", ".join(sorted(str(role) for role in roles))
