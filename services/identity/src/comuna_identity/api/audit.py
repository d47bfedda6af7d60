"""REST transport of the audit log: national auditors and operators read the entries; anyone
reads the head, so that outsiders can pin it and later catch a rewritten chain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from comuna_identity.api.schemas import AuditEntryOut, AuditHeadOut, AuditPage
from comuna_identity.domain import audit
from comuna_identity.storage.models import AuditLogEntry
from comuna_platform.auth.access import Caller
from comuna_platform.auth.fastapi import current_caller
from comuna_platform.auth.roles import Role
from comuna_platform.http.deps import UnitOfWorkDep

router = APIRouter(prefix="/v1", tags=["audit"])

# Who reads the entries: the log concerns every territory, so the role must be nationwide.
AUDIT_READERS = (Role.AUDITOR, Role.OPERATOR)
MAX_SEQ = 2**63 - 1


async def _reader(caller: Annotated[Caller, Depends(current_caller)]) -> Caller:
    caller.require_national(*AUDIT_READERS)
    return caller


def _hex(value: bytes | None) -> str | None:
    return None if value is None else value.hex()


def _out(entry: AuditLogEntry) -> AuditEntryOut:
    return AuditEntryOut(
        seq=entry.seq,
        at=entry.at,
        actor=entry.actor,
        action=entry.action,
        object_kind=entry.object_kind,
        object_id=entry.object_id,
        before_hash=_hex(entry.before_hash),
        after_hash=_hex(entry.after_hash),
        prev_hash=entry.prev_hash.hex(),
        entry_hash=entry.entry_hash.hex(),
    )


@router.get(
    "/audit",
    response_model=AuditPage,
    summary="Audit log entries after a seq, in seq order (national auditors and operators)",
)
async def list_audit_entries(
    caller: Annotated[Caller, Depends(_reader)],
    uow: UnitOfWorkDep,
    after_seq: Annotated[int, Query(ge=0, le=MAX_SEQ, description="entries after this seq; 0: from the start")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditPage:
    page = await audit.entries_after(uow.session, after_seq=after_seq, limit=limit)
    return AuditPage(
        items=[_out(entry) for entry in page.items],
        next_after_seq=page.items[-1].seq if page.more else None,
    )


@router.get("/audit/head", response_model=AuditHeadOut, summary="The audit log's head: seq and hash (public)")
async def audit_head(uow: UnitOfWorkDep) -> AuditHeadOut:
    head = await audit.current_head(uow.session)
    return AuditHeadOut(seq=head.seq, entry_hash=head.entry_hash.hex(), at=head.at)
