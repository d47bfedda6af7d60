"""Enrolment: a Keycloak account (its `sub`) linked to a census record, once.

Either a registrar who has seen the document links them in person, or hands out a one-time
code that the resident redeems with their document number. Identity keeps only the code's
SHA-256 and the keyed hash of the document; no document number is written, answered, logged or
announced. Linking grants the `resident` assignment at the resident's council (its granted
event tells the services at once).

Linking and issuing a code look a person up by document, and their requests name no territory:
a registrar who does not cover the council the person lives in gets exactly the answer a
document not in the census gets (404 `resident_not_found`, `ResidentOutOfReach`), so that they
learn neither where the person lives nor that they are registered at all.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError

from comuna_identity.domain import access, audit
from comuna_identity.domain.census import Census
from comuna_identity.domain.territories import lineage_of
from comuna_identity.storage import census as census_storage
from comuna_identity.storage import repository
from comuna_identity.storage.models import EnrolmentCode, Resident, ResidentAccount
from comuna_identity.storage.territory_history import TerritoryAt
from comuna_platform.auth.access import Caller
from comuna_platform.auth.roles import Role
from comuna_platform.errors import Conflict, Forbidden, NotFound
from comuna_platform.ids import new_id
from comuna_platform.uow import UnitOfWork

# How long a handed-out code stays redeemable, and how many failed tries burn it.
CODE_TTL = timedelta(days=7)
MAX_ATTEMPTS = 5
ENROLLERS = (Role.REGISTRAR,)

# No 0/O, 1/I/L: a code is read aloud and typed by hand. 12 characters of 31: about 59 bits.
_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
_CODE_LENGTH = 12


@dataclass(frozen=True)
class Linked:
    resident_id: uuid.UUID
    subject: str


@dataclass(frozen=True)
class IssuedCode:
    resident_id: uuid.UUID
    # The only time the code exists outside the resident's hands.
    code: str
    expires_at: datetime


# The one answer for "not in the census" and "not in a council the caller covers".
NOT_IN_REACH = "no resident with this document is registered in a council the caller covers"


class ResidentOutOfReach(NotFound):
    """The resident lives in a council the caller does not cover. Rendered exactly as a document
    not in the census; its own class only so that the transport can log why the lookup failed."""

    def __init__(self) -> None:
        super().__init__(NOT_IN_REACH, code="resident_not_found")


def new_code() -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(_CODE_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, _CODE_LENGTH, 4))


def code_hash(code: str) -> bytes:
    """SHA-256 of the code as typed, ignoring case, spaces and dashes."""
    canonical = "".join(code.split()).replace("-", "").upper()
    return hashlib.sha256(b"enrolment-code:" + canonical.encode()).digest()


def refused() -> Forbidden:
    # Never says whether the code or the document was wrong.
    return Forbidden("the enrolment code and the document do not match a live code", code="enrolment_refused")


async def link_in_person(
    uow: UnitOfWork, caller: Caller, census: Census, *, national_id: str, subject: str, now: datetime
) -> Linked:
    """A registrar covering the resident's council links `subject` to the resident."""
    resident, council = await _resident_in_reach(uow, caller, census, national_id, now)
    if subject == caller.subject:
        raise Forbidden("nobody links their own account", code="own_assignment")
    return await _link(uow, resident, council, subject, linked_by=caller.subject, now=now)


async def issue_code(uow: UnitOfWork, caller: Caller, census: Census, *, national_id: str, now: datetime) -> IssuedCode:
    """A one-time code for the resident; a new one replaces (burns) the live one."""
    resident, _ = await _resident_in_reach(uow, caller, census, national_id, now)
    if await repository.account_of_resident(uow.session, resident.id) is not None:
        raise Conflict("the resident already has a linked account", code="resident_already_linked")
    burnt = await repository.burn_live_codes(uow.session, resident.id, now)
    code = new_code()
    expires_at = now + CODE_TTL
    issued = EnrolmentCode(
        id=new_id(),
        resident_id=resident.id,
        code_hash=code_hash(code),
        issued_by=caller.subject,
        expires_at=expires_at,
        attempts=0,
    )
    uow.session.add(issued)
    await uow.session.flush()
    await audit.append(
        uow.session,
        [
            *_burnt_entries(caller.subject, burnt),
            audit.AuditEntry(
                caller.subject, "enrolment_code.issued", "enrolment_code", str(issued.id), None, code_state(issued)
            ),
        ],
    )
    return IssuedCode(resident.id, code, expires_at)


async def redeem(
    uow: UnitOfWork, census: Census, *, subject: str, code: str, national_id: str, now: datetime
) -> Linked | Forbidden:
    """Link `subject` if `code` is the live code of the resident holding `national_id`.

    A refusal is returned, not raised: the failed attempt it counts must be committed (each
    live code involved gains an attempt; the fifth burns it).
    """
    if await repository.account_of(uow.session, subject) is not None:
        raise Conflict("this account is already linked to a resident", code="subject_already_linked")
    resident = await census.find(uow.session, national_id)
    by_code = await repository.live_code_by_hash(uow.session, code_hash(code))
    if by_code is not None and resident is not None and by_code.resident_id == resident.id and by_code.expires_at > now:
        if await repository.account_of_resident(uow.session, resident.id) is not None:
            raise Conflict("the resident already has a linked account", code="resident_already_linked")
        before = code_state(by_code)
        by_code.redeemed_at = now
        council = await census_storage.council_of_resident(uow.session, resident.id, now.date())
        if council is None:  # the council has no version in force today (dissolved history aside)
            raise NotFound("the resident's council is not in the register today", code="council_not_found")
        linked = await _link(uow, resident, council, subject, linked_by=subject, now=now)
        redeemed = code_state(by_code)
        await audit.append(
            uow.session,
            [audit.AuditEntry(subject, "enrolment_code.redeemed", "enrolment_code", str(by_code.id), before, redeemed)],
        )
        return linked
    involved = {by_code} if by_code is not None else set()
    if resident is not None:
        own = await repository.live_code_of_resident(uow.session, resident.id)
        if own is not None:
            involved.add(own)
    entries = []
    for live in sorted(involved, key=lambda c: c.id):
        before = code_state(live)
        live.attempts += 1
        if live.attempts >= MAX_ATTEMPTS:
            live.burnt_at = now
        entries.append(
            audit.AuditEntry(
                subject, "enrolment_code.attempt_refused", "enrolment_code", str(live.id), before, code_state(live)
            )
        )
    await uow.session.flush()
    await audit.append(uow.session, entries)
    return refused()


def code_state(code: EnrolmentCode) -> dict[str, object]:
    """What the audit log hashes of an enrolment code: never the code (nor its hash)."""
    return {
        "resident_id": code.resident_id,
        "issued_by": code.issued_by,
        "expires_at": code.expires_at,
        "attempts": code.attempts,
        "redeemed_at": code.redeemed_at,
        "burnt_at": code.burnt_at,
    }


def _burnt_entries(actor: str, burnt: Sequence[EnrolmentCode]) -> list[audit.AuditEntry]:
    entries = []
    for code in burnt:
        after = code_state(code)
        before = {**after, "burnt_at": None}
        entries.append(audit.AuditEntry(actor, "enrolment_code.burnt", "enrolment_code", str(code.id), before, after))
    return entries


async def _resident_in_reach(
    uow: UnitOfWork, caller: Caller, census: Census, national_id: str, now: datetime
) -> tuple[Resident, TerritoryAt]:
    # Whether someone is in the census is itself personal: only enrollers may ask.
    caller.require_role(*ENROLLERS)
    resident = await census.find(uow.session, national_id)
    if resident is None:
        raise NotFound(NOT_IN_REACH, code="resident_not_found")
    council = await census_storage.council_of_resident(uow.session, resident.id, now.date())
    if council is None:  # the council has no version in force today (not yet, or no longer)
        raise NotFound(NOT_IN_REACH, code="resident_not_found")
    if not caller.allows(ENROLLERS, await lineage_of(uow.session, council, now.date())):
        raise ResidentOutOfReach()
    return resident, council


async def _link(
    uow: UnitOfWork, resident: Resident, council: TerritoryAt, subject: str, *, linked_by: str, now: datetime
) -> Linked:
    session = uow.session
    if await repository.account_of(session, subject) is not None:
        raise Conflict("this account is already linked to a resident", code="subject_already_linked")
    if await repository.account_of_resident(session, resident.id) is not None:
        raise Conflict("the resident already has a linked account", code="resident_already_linked")
    session.add(ResidentAccount(subject=subject, resident_id=resident.id, linked_by=linked_by))
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent link won the race
        raise Conflict("the account or the resident is already linked", code="already_linked") from exc
    burnt = await repository.burn_live_codes(session, resident.id, now)
    await access.ensure_assignment(
        uow, subject=subject, role=Role.RESIDENT, territory_code=council.code, valid_from=now, granted_by=linked_by
    )
    # Appended once every row is written: the log's lock is then held while nothing else waits.
    linked = {"resident_id": resident.id, "linked_by": linked_by}
    await audit.append(
        session,
        [
            audit.AuditEntry(linked_by, "resident_account.linked", "resident_account", subject, None, linked),
            *_burnt_entries(linked_by, burnt),
        ],
    )
    return Linked(resident.id, subject)
