"""One sync: read identity's register (and the seed), reconcile Keycloak, record assignments.

Order matters for "nothing half-applied": every input is checked (seed, secrets, passwords
file, Keycloak reachable with these admin credentials) before anything is written; identity's
writes (seed territories, staff assignments) are one transaction, committed only when
Keycloak has been reconciled, and rolled back in a dry run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from keycloak import KeycloakAdmin, KeycloakAuthenticationError, KeycloakConnectionError, KeycloakError
from sqlalchemy import select
from sqlalchemy.orm import aliased

import comuna_identity.messages  # noqa: F401  (registers the translations of the events ensure_* stage)
from comuna_identity.domain.access import ensure_assignment, ensure_territory
from comuna_identity.keycloak.changes import Action, Change
from comuna_identity.keycloak.client_secrets import ConfigurationError, load_client_secrets
from comuna_identity.keycloak.passwords import PasswordBook
from comuna_identity.keycloak.reconcile import Reconciler, groups_from_register
from comuna_identity.keycloak.seed import Seed, SeedStaff, check_seed_against, load_seed
from comuna_identity.keycloak.settings import LOOPBACK_REDIRECTS, KeycloakSettings
from comuna_identity.keycloak.spec import GroupSpec, UserSpec, realm_spec
from comuna_identity.storage.models import Territory, TerritoryVersion
from comuna_identity.storage.territory_history import in_force
from comuna_identity.vocabulary import TerritoryKind
from comuna_platform.db import Database
from comuna_platform.uow import UnitOfWork

# Territories that become groups: the governments and communes, not the councils.
GROUP_KINDS = frozenset(TerritoryKind) - {TerritoryKind.COMMUNAL_COUNCIL}


class KeycloakUnavailable(Exception):
    """Keycloak cannot be reached or refuses the admin credentials; the message says what to do."""


@dataclass(frozen=True)
class SyncOptions:
    seed: Path | None = None
    passwords_file: Path | None = None
    dry_run: bool = False


@dataclass
class SyncReport:
    realm: str
    dry_run: bool
    changes: list[Change] = field(default_factory=list)

    def summary(self) -> str:
        count = len(self.changes)
        noun = "change" if count == 1 else "changes"
        return f"{count} {noun}" + (" (dry run, nothing applied)" if self.dry_run else "")

    def as_json(self) -> dict[str, Any]:
        return {
            "realm": self.realm,
            "dry_run": self.dry_run,
            "count": len(self.changes),
            "changes": [change.as_json() for change in self.changes],
        }


class _RollBack(Exception):
    """Raised at the end of a dry run so identity's transaction is rolled back."""


def connect(settings: KeycloakSettings) -> KeycloakAdmin:
    """An admin client whose credentials were checked: one token request, before any change."""
    where = f"Keycloak at {settings.keycloak_url}"
    if not settings.keycloak_admin_password.get_secret_value():
        raise KeycloakUnavailable("no admin password: set COMUNA_IDENTITY_KEYCLOAK_ADMIN_PASSWORD")
    admin = KeycloakAdmin(
        server_url=settings.keycloak_url,
        username=settings.keycloak_admin_username,
        password=settings.keycloak_admin_password.get_secret_value(),
        realm_name=settings.keycloak_realm,
        user_realm_name=settings.keycloak_admin_realm,
        timeout=max(1, round(settings.keycloak_timeout_seconds)),
    )
    try:
        admin.connection.get_token()
    except KeycloakConnectionError:
        raise KeycloakUnavailable(
            f"cannot reach {where}: check COMUNA_IDENTITY_KEYCLOAK_URL and that Keycloak is running"
        ) from None
    except KeycloakError as exc:
        # Keycloak answers a wrong password with 400 invalid_grant (401 for a refused client).
        if isinstance(exc, KeycloakAuthenticationError) or exc.response_code in (400, 401):
            raise KeycloakUnavailable(
                f"{where} refused admin user {settings.keycloak_admin_username!r} of realm "
                f"{settings.keycloak_admin_realm!r}: check COMUNA_IDENTITY_KEYCLOAK_ADMIN_USERNAME and _ADMIN_PASSWORD"
            ) from None
        if exc.response_code == 404:
            raise KeycloakUnavailable(
                f"{where} has no realm {settings.keycloak_admin_realm!r} for the admin login (or is not Keycloak): "
                "check COMUNA_IDENTITY_KEYCLOAK_ADMIN_REALM and COMUNA_IDENTITY_KEYCLOAK_URL"
            ) from None
        raise KeycloakUnavailable(
            f"{where} answered {exc.response_code or 'an error'} to the admin login in realm "
            f"{settings.keycloak_admin_realm!r}: check COMUNA_IDENTITY_KEYCLOAK_URL and _ADMIN_REALM"
        ) from None
    return admin


async def run_sync(settings: KeycloakSettings, options: SyncOptions, emit: Callable[[Change], None]) -> SyncReport:
    seed = load_seed(options.seed) if options.seed is not None else Seed()
    secrets = load_client_secrets(settings.keycloak_client_secrets_file, settings.keycloak_client_secrets_dir)
    passwords = PasswordBook(options.passwords_file)
    if seed.staff and options.passwords_file is None:
        raise ConfigurationError("a seed with staff needs --passwords-file, where their generated passwords are kept")
    admin = connect(settings)
    report = SyncReport(realm=settings.keycloak_realm, dry_run=options.dry_run)

    def record(change: Change) -> None:
        report.changes.append(change)
        emit(change)

    db = Database(settings.database_url, pool_size=1)
    try:
        async with db.unit_of_work() as uow:
            await _sync_in(
                uow,
                settings=settings,
                seed=seed,
                secrets=secrets,
                passwords=passwords,
                admin=admin,
                options=options,
                record=record,
            )
            if options.dry_run:
                raise _RollBack
    except _RollBack:
        pass
    finally:
        await db.dispose()
    return report


async def _sync_in(
    uow: UnitOfWork,
    *,
    settings: KeycloakSettings,
    seed: Seed,
    secrets: dict[str, str],
    passwords: PasswordBook,
    admin: KeycloakAdmin,
    options: SyncOptions,
    record: Callable[[Change], None],
) -> None:
    known = {code: TerritoryKind(kind) for code, _, kind, _ in await _register_today(uow)}
    check_seed_against(seed, known)
    for territory in seed.territories:
        if await ensure_territory(
            uow, code=territory.code, name=territory.name, kind=territory.kind, parent_code=territory.parent_code
        ):
            record(Change(Action.CREATE, "territory", territory.code, (territory.name,)))
    await _check_assignments(uow, seed)
    register = await _register_today(uow)
    groups = groups_from_register(
        (code, name, kind, parent) for code, name, kind, parent in register if kind in GROUP_KINDS
    )
    parents = {code: parent for code, _, _, parent in register}
    spec = realm_spec(
        realm=settings.keycloak_realm,
        audience=settings.oidc_audience,
        development=settings.keycloak_development,
        redirect_uris=[*LOOPBACK_REDIRECTS, *settings.keycloak_redirect_uris],
        client_secrets=secrets,
        groups=groups,
        users=tuple(_user_spec(staff, groups, parents) for staff in seed.staff),
    )
    subjects = Reconciler(admin, spec, passwords=passwords, dry_run=options.dry_run, record=record).run()
    for staff in seed.staff:
        subject = subjects[staff.username]
        for assignment in staff.assignments:
            label = f"{assignment.role}@{assignment.territory_code}"
            if assignment.table_code:
                label += f"/{assignment.consultation_id}/{assignment.table_code}"
            if subject is None:
                # Dry run for a user Keycloak does not have yet: the assignment would be new.
                record(Change(Action.CREATE, "assignment", f"{label} for {staff.username}"))
            elif await ensure_assignment(
                uow,
                subject=subject,
                role=assignment.role,
                territory_code=assignment.territory_code,
                consultation_id=assignment.consultation_id,
                table_code=assignment.table_code,
            ):
                record(Change(Action.CREATE, "assignment", f"{label} for {staff.username}"))


async def _check_assignments(uow: UnitOfWork, seed: Seed) -> None:
    """Apply identity's rules to every seeded assignment before Keycloak is touched: each is
    recorded for a stand-in subject inside a savepoint that is then rolled back, so a seed that
    identity refuses stops the sync with nothing applied anywhere."""
    if not seed.staff:
        return
    try:
        async with uow.session.begin_nested():
            for staff in seed.staff:
                for assignment in staff.assignments:
                    await ensure_assignment(
                        uow,
                        subject=f"seed-check:{staff.username}",
                        role=assignment.role,
                        territory_code=assignment.territory_code,
                        consultation_id=assignment.consultation_id,
                        table_code=assignment.table_code,
                    )
            raise _RollBack
    except _RollBack:
        pass


async def _register_today(uow: UnitOfWork) -> list[tuple[str, str, str, str | None]]:
    """(code, name, kind, parent_code) of every unit in force today."""
    parent = aliased(Territory)
    query = (
        select(Territory.code, TerritoryVersion.name, TerritoryVersion.kind, parent.code)
        .join(TerritoryVersion, TerritoryVersion.territory_id == Territory.id)
        .outerjoin(parent, parent.id == TerritoryVersion.parent_id)
        .where(in_force(datetime.now(UTC).date()))
    )
    return [
        (code, name, kind, parent_code) for code, name, kind, parent_code in (await uow.session.execute(query)).all()
    ]


def _user_spec(staff: SeedStaff, groups: tuple[GroupSpec, ...], parents: dict[str, str | None]) -> UserSpec:
    """A staff member belongs to the group of each territory they act in (the nearest group at
    or above it: a council's registrar joins the council's commune)."""
    group_codes = {group.code for group in groups}
    member_of: list[str] = []
    for assignment in staff.assignments:
        code = assignment.territory_code
        seen: set[str] = set()
        while code and code not in group_codes and code not in seen:
            seen.add(code)
            code = parents.get(code) or ""
        if code and code not in member_of:
            member_of.append(code)
    return UserSpec(
        username=staff.username,
        email=staff.email,
        first_name=staff.first_name,
        last_name=staff.last_name,
        groups=tuple(member_of),
    )
