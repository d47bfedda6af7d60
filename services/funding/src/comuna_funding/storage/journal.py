"""The ledger's public journal: one transparency log in funding's database (docs/ledger.md).

Entries are appended in the transaction that writes what they record, as its last statement
(`UnitOfWork.before_commit`): the append locks the log's row until commit, and taking that
lock only after every account lock keeps writers from deadlocking on it. Entries are buffered
until then; an entry whose row a rolled-back savepoint undid is dropped at the append (its
row is no longer visible), so the journal holds exactly what committed.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from comuna_funding.storage.ledger_store import chunked
from comuna_funding.storage.models import Account, Transfer, journal_tables
from comuna_platform.tlog.store import TransparencyLog
from comuna_platform.uow import UnitOfWork

DEFAULT_ORIGIN = "comuna.localhost/ledger"
_BUFFER = "funding-journal-buffer"
_HOOK = "funding-journal"

EntryKind = Literal["account", "closed", "transfer"]


@dataclass(frozen=True, slots=True)
class Pending:
    kind: EntryKind
    id: uuid.UUID
    data: bytes


class Journal:
    """Where the deployment's ledger journal lives (its origin, from settings)."""

    def __init__(self, origin: str = DEFAULT_ORIGIN) -> None:
        self.origin = origin
        self.log = TransparencyLog(journal_tables, origin)


_journal = Journal()


def configure(origin: str) -> None:
    """Set the deployment's journal origin (at startup; tests keep the default)."""
    global _journal  # noqa: PLW0603 (one journal per process, fixed by configuration)
    _journal = Journal(origin)


def journal() -> Journal:
    return _journal


def append(session: AsyncSession, kind: EntryKind, entries: Sequence[tuple[uuid.UUID, bytes]]) -> None:
    """Buffer entries for the journal; they are appended when the unit of work commits."""
    if not entries:
        return
    buffer: list[Pending] = session.info.setdefault(_BUFFER, [])
    buffer.extend(Pending(kind, row_id, data) for row_id, data in entries)

    async def flush() -> None:
        await _flush(session)

    UnitOfWork.of(session).before_commit(_HOOK, flush)


async def _flush(session: AsyncSession) -> None:
    buffered: list[Pending] = session.info.pop(_BUFFER, [])
    if not buffered:
        return
    # The last copy of an entry wins: a savepoint that was undone and redone writes it twice.
    latest = {(p.kind, p.id): p for p in buffered}
    ordered = [p for p in buffered if latest[(p.kind, p.id)] is p]
    accounts = {p.id for p in ordered if p.kind == "account"}
    closed = {p.id for p in ordered if p.kind == "closed"}
    transfers = {p.id for p in ordered if p.kind == "transfer"}
    alive: set[tuple[EntryKind, uuid.UUID]] = set()
    for part in chunked(sorted(accounts | closed)):
        rows = await session.execute(select(Account.id, Account.closed).where(Account.id.in_(part)))
        for account_id, is_closed in rows:
            alive.add(("account", account_id))
            if is_closed:
                alive.add(("closed", account_id))
    for part in chunked(sorted(transfers)):
        found = await session.execute(select(Transfer.id).where(Transfer.id.in_(part)))
        alive.update(("transfer", transfer_id) for transfer_id in found.scalars())
    entries = [p.data for p in ordered if (p.kind, p.id) in alive]
    if entries:
        await _journal.log.sequence(await session.connection(), entries)
