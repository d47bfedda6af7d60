"""Role assignments: grant, revoke, list, and resolve who may act where.

Identity is the only authority on assignments. Every grant and revoke stages its event
(`RoleAssignmentGranted` / `RoleAssignmentRevoked`) in the same unit of work, so services that
cache resolutions drop them as soon as the change is committed and relayed.
`ensure_territory` and `ensure_assignment` are the idempotent seeding entry points used by
`comuna-identity keycloak sync` (no caller: the seed is trusted, `granted_by="bootstrap"`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from sqlalchemy.exc import IntegrityError

from comuna_identity.domain import audit, register, rules
from comuna_identity.domain.events import RoleAssignmentGranted, RoleAssignmentRevoked
from comuna_identity.domain.territories import lineage_of
from comuna_identity.storage import repository
from comuna_identity.storage.models import RoleAssignment
from comuna_identity.storage.territory_history import TerritoryAt
from comuna_identity.vocabulary import TerritoryKind
from comuna_platform.auth.access import Assignment, Caller, Lineage, Resolution
from comuna_platform.auth.roles import Role
from comuna_platform.errors import Conflict, InvalidInput, NotFound
from comuna_platform.ids import new_id, parse_id
from comuna_platform.uow import UnitOfWork

BOOTSTRAP = "bootstrap"


@dataclass(frozen=True)
class AssignmentView:
    assignment: RoleAssignment
    territory: TerritoryAt


@dataclass(frozen=True)
class Terms:
    """What is granted: a role, where, at which table (table officers), for which period."""

    subject: str
    role: Role
    territory_code: str
    consultation_id: uuid.UUID | None = None
    table_code: str | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None


def assignment_not_found() -> NotFound:
    return NotFound("role assignment does not exist", code="assignment_not_found")


async def ensure_territory(uow: UnitOfWork, *, code: str, name: str, kind: str, parent_code: str | None) -> bool:
    """Seed one territory; True if it created it, False (nothing changed) if `code` exists."""
    return await register.ensure_territory(uow, code=code, name=name, kind=kind, parent_code=parent_code)


async def ensure_assignment(
    uow: UnitOfWork,
    *,
    subject: str,
    role: Role | str,
    territory_code: str,
    consultation_id: uuid.UUID | str | None = None,
    table_code: str | None = None,
    valid_from: datetime | None = None,
    valid_until: datetime | None = None,
    granted_by: str = BOOTSTRAP,
) -> bool:
    """Seed one assignment; True if it created it, False (nothing changed) if the same live one exists.

    No authority check: the caller is the trusted seed (or a test). The role/territory rules
    and the period still apply.
    """
    terms = _terms(
        subject=subject,
        role=role,
        territory_code=territory_code,
        consultation_id=consultation_id,
        table_code=table_code,
        valid_from=valid_from,
        valid_until=valid_until,
    )
    territory = await _territory_for(uow, terms)
    existing = await repository.live_assignment(
        uow.session,
        subject=terms.subject,
        role=terms.role,
        territory_id=territory.id,
        consultation_id=terms.consultation_id,
        table_code=terms.table_code,
    )
    if existing is not None:
        return False
    await _insert(uow, terms, territory, granted_by=granted_by)
    return True


async def grant(uow: UnitOfWork, caller: Caller, terms: Terms) -> AssignmentView:
    """Grant `terms` if the caller may grant that role there; 409 if the same live one exists."""
    terms = _checked(terms)
    territory = await _territory_for(uow, terms)
    where = await lineage_of(uow.session, territory, territory_today())
    rules.check_grant(caller, subject=terms.subject, role=terms.role, lineage=where)
    return await _insert(uow, terms, territory, granted_by=caller.subject)


async def revoke(uow: UnitOfWork, caller: Caller, assignment_id: uuid.UUID, *, reason: str) -> AssignmentView:
    """Revoke an assignment under the same rule as granting it, on the assignment's territory."""
    found = await repository.assignment_with_territory(uow.session, assignment_id, for_update=True)
    if found is None:
        raise assignment_not_found()
    assignment, territory = found
    where = await lineage_of(uow.session, territory, territory_today())
    if not _visible(caller, assignment, where):
        raise assignment_not_found()
    rules.check_grant(caller, subject=assignment.subject, role=Role(assignment.role), lineage=where)
    if assignment.revoked_at is not None:
        raise Conflict("the role assignment is already revoked", code="already_revoked")
    before = assignment_state(assignment, territory)
    assignment.revoked_at = datetime.now(UTC)
    assignment.revoked_by = caller.subject
    assignment.revoke_reason = reason
    await uow.session.flush()
    await audit.append(
        uow.session,
        [
            audit.AuditEntry(
                caller.subject,
                "role_assignment.revoked",
                "role_assignment",
                str(assignment.id),
                before,
                assignment_state(assignment, territory),
            )
        ],
    )
    await uow.stage(RoleAssignmentRevoked(assignment.subject, assignment.id, reason), aggregate_id=str(assignment.id))
    return AssignmentView(assignment, territory)


async def get(uow: UnitOfWork, caller: Caller, assignment_id: uuid.UUID) -> AssignmentView:
    """One assignment, if the caller may see it (else 404, which says nothing about its existence)."""
    found = await repository.assignment_with_territory(uow.session, assignment_id)
    if found is None or not _visible(caller, found[0], await lineage_of(uow.session, found[1], territory_today())):
        raise assignment_not_found()
    return AssignmentView(*found)


@dataclass(frozen=True)
class AssignmentPage:
    items: Sequence[AssignmentView]
    more: bool


async def list_visible(
    uow: UnitOfWork,
    caller: Caller,
    *,
    subject: str | None,
    role: Role | None,
    territory_code: str | None,
    after_id: uuid.UUID | None,
    limit: int,
) -> AssignmentPage:
    """Assignments inside the territories where the caller may grant (everywhere for operators
    and auditors), plus the caller's own, filtered, in id order."""
    rows = await repository.assignments_page(
        uow.session,
        visible_under=rules.visibility(caller),
        also_subject=caller.subject,
        subject=subject,
        role=role,
        under_code=territory_code,
        after_id=after_id,
        limit=limit + 1,
    )
    return AssignmentPage([AssignmentView(*row) for row in rows[:limit]], len(rows) > limit)


@dataclass(frozen=True)
class Resolved:
    subject: str
    assignments: Sequence[AssignmentView]
    resident_id: uuid.UUID | None
    resolved_at: datetime

    def resolution(self) -> Resolution:
        """The platform's `Resolution`, as `Caller` consumes it."""
        return Resolution(
            subject=self.subject,
            assignments=tuple(to_access(view) for view in self.assignments),
            resident_id=str(self.resident_id) if self.resident_id else None,
        )


async def resolve(uow: UnitOfWork, subject: str, *, now: datetime | None = None) -> Resolved:
    """The assignments in force for `subject` (valid_from <= now < valid_until, not revoked),
    and the resident linked to it. An unknown subject is an empty answer, not an error."""
    if not subject:
        raise InvalidInput("subject is required", code="subject_required", field="subject")
    moment = now or datetime.now(UTC)
    rows = await repository.assignments_in_force(uow.session, subject, moment)
    account = await repository.account_of(uow.session, subject)
    return Resolved(subject, [AssignmentView(*row) for row in rows], account.resident_id if account else None, moment)


def to_access(view: AssignmentView) -> Assignment:
    """The platform's view of an assignment, as services authorize with it."""
    a = view.assignment
    return Assignment(
        role=Role(a.role),
        territory_code=view.territory.code,
        assignment_id=str(a.id),
        consultation_id=str(a.consultation_id) if a.consultation_id else None,
        table_code=a.table_code,
        valid_until=a.valid_until,
        national=view.territory.kind == TerritoryKind.COUNTRY,
    )


def territory_today() -> date:
    """The day scope is judged on: where units sit today."""
    return datetime.now(UTC).date()


async def _insert(uow: UnitOfWork, terms: Terms, territory: TerritoryAt, *, granted_by: str) -> AssignmentView:
    assignment = RoleAssignment(
        id=new_id(),
        subject=terms.subject,
        role=terms.role,
        territory_id=territory.id,
        consultation_id=terms.consultation_id,
        table_code=terms.table_code,
        valid_from=terms.valid_from or datetime.now(UTC),
        valid_until=terms.valid_until,
        granted_by=granted_by,
    )
    uow.session.add(assignment)
    try:
        await uow.session.flush()
    except IntegrityError as exc:
        raise Conflict("the same role assignment is already in force", code="assignment_exists") from exc
    # granted_at is the database's clock: read it back for the event.
    await uow.session.refresh(assignment, ["granted_at"])
    await audit.append(
        uow.session,
        [
            audit.AuditEntry(
                granted_by,
                "role_assignment.granted",
                "role_assignment",
                str(assignment.id),
                None,
                assignment_state(assignment, territory),
            )
        ],
    )
    await uow.stage(RoleAssignmentGranted(assignment, territory), aggregate_id=str(assignment.id))
    return AssignmentView(assignment, territory)


def assignment_state(assignment: RoleAssignment, territory: TerritoryAt) -> dict[str, object]:
    """What the audit log hashes of an assignment (docs/audit.md)."""
    return {
        "subject": assignment.subject,
        "role": assignment.role,
        "territory_id": assignment.territory_id,
        "territory_code": territory.code,
        "consultation_id": assignment.consultation_id,
        "table_code": assignment.table_code,
        "valid_from": assignment.valid_from,
        "valid_until": assignment.valid_until,
        "granted_by": assignment.granted_by,
        "revoked_at": assignment.revoked_at,
        "revoked_by": assignment.revoked_by,
        "revoke_reason": assignment.revoke_reason,
    }


async def _territory_for(uow: UnitOfWork, terms: Terms) -> TerritoryAt:
    territory = await repository.territory_by_code(uow.session, terms.territory_code)
    if territory is None:
        raise register.territory_not_found(terms.territory_code)
    rules.check_role_territory(terms.role, territory.kind)
    return territory


def _terms(
    *,
    subject: str,
    role: Role | str,
    territory_code: str,
    consultation_id: uuid.UUID | str | None,
    table_code: str | None,
    valid_from: datetime | None,
    valid_until: datetime | None,
) -> Terms:
    try:
        parsed_role = Role(role)
    except ValueError as exc:
        raise InvalidInput(f"unknown role {role!r}", code="role_invalid", field="role") from exc
    consultation = parse_id(consultation_id, "consultation_id") if isinstance(consultation_id, str) else consultation_id
    terms = Terms(subject, parsed_role, territory_code, consultation, table_code, valid_from, valid_until)
    return _checked(terms)


def _checked(terms: Terms) -> Terms:
    if not terms.subject:
        raise InvalidInput("subject is required", code="subject_required", field="subject")
    valid_from = terms.valid_from or datetime.now(UTC)
    rules.check_terms(
        terms.role,
        consultation_id=terms.consultation_id,
        table_code=terms.table_code,
        valid_from=valid_from,
        valid_until=terms.valid_until,
    )
    return Terms(
        terms.subject,
        terms.role,
        terms.territory_code,
        terms.consultation_id,
        terms.table_code,
        valid_from,
        terms.valid_until,
    )


def _visible(caller: Caller, assignment: RoleAssignment, where: Lineage) -> bool:
    if assignment.subject == caller.subject:
        return True
    scopes = rules.visibility(caller)
    return scopes is None or any(scope in where for scope in scopes)
