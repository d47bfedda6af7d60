"""Give a test its authority directly in identity's database (the REST API itself requires an
existing authority), and tokens that prove only who calls."""

from __future__ import annotations

from typing import Any

from comuna_identity.domain import access
from comuna_platform.auth.roles import Role
from tests.support.issuer import TestIssuer
from tests.support.service import RunningService

ROOT = "VE"
OPERATOR = "subject-operator"
REGISTRAR = "subject-registrar"


def person(issuer: TestIssuer, subject: str, **claims: Any) -> dict[str, str]:
    """Headers of a person's token: a subject and no roles or territories (identity decides those)."""
    return issuer.headers(subject=subject, roles=[], **claims)


async def ensure_root(service: RunningService) -> None:
    async with service.runtime.db.unit_of_work() as uow:
        await access.ensure_territory(uow, code=ROOT, name="Venezuela", kind="country", parent_code=None)


async def grant(service: RunningService, subject: str, role: Role, code: str, **terms: Any) -> bool:
    """`ensure_assignment` as the seed runs it; True if it created the assignment."""
    async with service.runtime.db.unit_of_work() as uow:
        return await access.ensure_assignment(uow, subject=subject, role=role, territory_code=code, **terms)


async def seed_staff(service: RunningService) -> None:
    """The country root plus a national operator (`OPERATOR`) and registrar (`REGISTRAR`): what a
    suite needs before it registers territories and residents over REST with `person(...)`."""
    await ensure_root(service)
    await grant(service, OPERATOR, Role.OPERATOR, ROOT)
    await grant(service, REGISTRAR, Role.REGISTRAR, ROOT)
