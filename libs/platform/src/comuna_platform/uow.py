"""The unit of work: one transaction, the events staged in it, and what runs after it commits.

REST handlers, gRPC methods and event consumers get one from the platform and hand it to the
use case; use cases never open transactions themselves. Events staged here are written to the
outbox in the same transaction (so they exist if and only if the change committed); callbacks
registered with `after_commit` (waking the relay, dropping a cache entry) run only once the
commit succeeded, never after a rollback.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from comuna_platform.events.outbox import NewEvent, stage_events

log = logging.getLogger(__name__)


class UnitOfWork:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._after_commit: list[Callable[[], None]] = []
        self.staged: list[NewEvent] = []

    async def stage(self, message: Message, *, aggregate_id: str, event_id: uuid.UUID | None = None) -> uuid.UUID:
        """Stage one event (its subject comes from the contract); returns its id."""
        event = NewEvent(message=message, aggregate_id=aggregate_id, event_id=event_id or uuid.uuid4())
        await self.stage_all([event])
        return event.event_id

    async def stage_all(self, events: Sequence[NewEvent]) -> None:
        await stage_events(self.session, events)
        self.staged.extend(events)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once this unit of work has committed (never if it rolls back)."""
        self._after_commit.append(callback)

    def _committed(self) -> None:
        for callback in self._after_commit:
            try:
                callback()
            except Exception:
                # The transaction is durable; a failed side effect must not turn it into an error.
                log.exception("after-commit callback failed")


@asynccontextmanager
async def unit_of_work(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[UnitOfWork]:
    """Begin a transaction; commit when the block ends normally, roll back if it raises."""
    async with sessions() as session:
        async with session.begin():
            uow = UnitOfWork(session)
            yield uow
        uow._committed()
