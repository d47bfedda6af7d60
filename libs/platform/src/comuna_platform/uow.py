"""The unit of work: one transaction, the events staged in it, and what runs after it commits.

REST handlers, gRPC methods and event consumers get one from the platform (`UnitOfWorkDep`,
`grpc_unit_of_work`, the consumer's transaction) and hand it to the use case; use cases never
open transactions themselves. Events staged here are written to the outbox in the same
transaction (so they exist if and only if the change committed); callbacks registered with
`after_commit` (dropping a cache entry, ...) run only once the commit succeeded, never after a
rollback. When the transaction staged events, the database's "events committed" listeners run
first (the outbox relay wakes up instead of waiting for its next poll).

A use case may stage either a protobuf event message or a plain domain event that the service
registered a translation for (`comuna_platform.events.translation`), so domains need no
protobuf types.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from comuna_platform.events.outbox import NewEvent, stage_events, take_staged_flag
from comuna_platform.events.registry import subject_of
from comuna_platform.events.translation import to_message

log = logging.getLogger(__name__)

_SESSION_KEY = "comuna_unit_of_work"

# An explicit event id, or a function of the event's subject (deterministic ids are derived
# from the subject, which the use case does not spell out), or None for a random one.
EventId = uuid.UUID | Callable[[str], uuid.UUID] | None


@dataclass(frozen=True)
class Staged:
    """An event to stage: a protobuf event message or a domain event with a translation."""

    event: object
    aggregate_id: str
    event_id: EventId = field(default=None)

    def to_new_event(self) -> NewEvent:
        message = to_message(self.event)
        event_id = self.event_id(subject_of(message)) if callable(self.event_id) else self.event_id
        return NewEvent(message=message, aggregate_id=self.aggregate_id, event_id=event_id or uuid.uuid4())


class UnitOfWork:
    def __init__(self, session: AsyncSession, *, on_events_committed: Callable[[], None] | None = None) -> None:
        self.session = session
        self._on_events_committed = on_events_committed
        self._after_commit: list[Callable[[], None]] = []
        self._before_commit: dict[str, Callable[[], Awaitable[None]]] = {}
        self.staged: list[NewEvent] = []
        session.info[_SESSION_KEY] = self

    @staticmethod
    def of(session: AsyncSession) -> UnitOfWork:
        """The unit of work a session belongs to (every platform transaction has one)."""
        uow = session.info.get(_SESSION_KEY)
        if not isinstance(uow, UnitOfWork):
            raise LookupError("this session was not opened by Database.unit_of_work() or Database.transaction()")
        return uow

    async def stage(self, event: object, *, aggregate_id: str, event_id: EventId = None) -> uuid.UUID:
        """Stage one event (its subject comes from the contract); returns its id."""
        new = Staged(event, aggregate_id, event_id).to_new_event()
        await self.stage_all([new])
        return new.event_id

    async def stage_all(self, events: Sequence[NewEvent | Staged]) -> None:
        """Stage events in this order (the relay publishes them in it)."""
        new = [e if isinstance(e, NewEvent) else e.to_new_event() for e in events]
        await stage_events(self.session, new)
        self.staged.extend(new)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once this unit of work has committed (never if it rolls back)."""
        self._after_commit.append(callback)

    def before_commit(self, key: str, hook: Callable[[], Awaitable[None]]) -> None:
        """Run `hook` in this transaction just before it commits, once per `key` however often it
        is registered (never if the work raises). For writes that must come last, after every
        row lock the work takes: funding's journal appends there, so the log's row lock (taken
        by the append) is never held while the transaction waits for another lock."""
        self._before_commit.setdefault(key, hook)

    async def _run_before_commit(self) -> None:
        while self._before_commit:
            key = next(iter(self._before_commit))
            hook = self._before_commit.pop(key)
            await hook()

    def _committed(self) -> None:
        # The flag is also set by `stage_event(session, ...)` on this session, not only by `stage`.
        callbacks = list(self._after_commit)
        if take_staged_flag(self.session) and self._on_events_committed is not None:
            callbacks.insert(0, self._on_events_committed)
        for callback in callbacks:
            try:
                callback()
            except Exception:
                # The transaction is durable; a failed side effect must not turn it into an error.
                log.exception("after-commit callback failed")


@asynccontextmanager
async def unit_of_work(
    sessions: async_sessionmaker[AsyncSession], *, on_events_committed: Callable[[], None] | None = None
) -> AsyncIterator[UnitOfWork]:
    """Begin a transaction; commit when the block ends normally, roll back if it raises."""
    async with sessions() as session:
        async with session.begin():
            uow = UnitOfWork(session, on_events_committed=on_events_committed)
            yield uow
            await uow._run_before_commit()
        uow._committed()
