"""Who may act where: a caller's identity (from the token) joined with identity's answer.

A token proves who calls (`Principal`: subject, client, the `service` role of service
accounts). Where a person may act comes from identity's role assignments, resolved by an
`AccessResolver` (identity reads its own database; other services call
`IdentityService.ResolvePrincipal` and cache the answer briefly). A `Caller` holds both, and
every territory decision is `caller.require(roles, lineage)` against the territory of the
object touched, looked up in the service's own data: never a territory claim of the token.

Scope follows the register's parent links, not codes: an assignment at territory T covers X
when T is in X's `Lineage` (the codes from the country root down to X, by the links in force on
the relevant day; `comuna_platform.auth.lineages` resolves them). A unit that moved is in its
new parent's scope from the move on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from .errors import PermissionDeniedError
from .principal import Principal
from .roles import SERVICE_ROLE, Role


@dataclass(frozen=True, slots=True)
class Lineage:
    """Where a territory sits: the codes from the country root down to it (itself last), by
    the parent links in force on one day."""

    codes: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.codes or not all(isinstance(code, str) and code for code in self.codes):
            raise ValueError("a lineage is a non-empty tuple of territory codes")

    @property
    def code(self) -> str:
        """The territory itself."""
        return self.codes[-1]

    @property
    def root(self) -> str:
        return self.codes[0]

    def __contains__(self, code: object) -> bool:
        return code in self.codes


@dataclass(frozen=True, slots=True)
class Assignment:
    """One role held in one territory (and everything under it), possibly at one table.
    `national`: held at the country root (a territory of kind country)."""

    role: Role
    territory_code: str
    assignment_id: str = ""
    consultation_id: str | None = None
    table_code: str | None = None
    valid_until: datetime | None = None
    national: bool = False

    def covers(self, lineage: Lineage) -> bool:
        """Whether the territory held is `lineage`'s territory or one of its ancestors."""
        if not isinstance(lineage, Lineage):
            # A bare code would be a substring test: refuse rather than decide wrongly.
            raise TypeError("covers() takes a Lineage, not a territory code")
        return self.territory_code in lineage.codes


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

    def allows(self, roles: Iterable[Role], lineage: Lineage, *, consultation_id: str | None = None) -> bool:
        """Whether an assignment of one of `roles` covers the territory of `lineage` (and, for
        table officers, belongs to `consultation_id` when given)."""
        wanted = frozenset(roles)
        for assignment in self.assignments:
            if assignment.role not in wanted or not assignment.covers(lineage):
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
        """Whether one of `roles` is held at a country root (a territory of kind country)."""
        wanted = frozenset(roles)
        return any(a.role in wanted and a.national for a in self.assignments)

    def require_national(self, *roles: Role) -> None:
        """403 unless one of `roles` is held at a country root: for acts that concern no one
        territory (the service's own operations), where the platform knows no country code."""
        if self.holds_nationally(*roles):
            return
        self.require_role(*roles)
        raise PermissionDeniedError("forbidden_territory", "requires the role nationwide")

    def require(self, roles: Iterable[Role], lineage: Lineage, *, consultation_id: str | None = None) -> None:
        """403 unless one of `roles` is held over the territory of `lineage`: `forbidden_role`
        when the caller holds none of them anywhere, `forbidden_territory` when not there."""
        wanted = tuple(roles)
        if self.allows(wanted, lineage, consultation_id=consultation_id):
            return
        self.require_role(*wanted)
        raise PermissionDeniedError("forbidden_territory", f"not allowed to act in territory {lineage.code}")


class AccessResolver(Protocol):
    """Turns a verified principal into its current resolution (identity's assignments)."""

    async def resolve(self, principal: Principal) -> Resolution: ...


def _names(roles: Iterable[Role]) -> str:
    return ", ".join(sorted(str(role) for role in roles))
