"""Async SQLAlchemy engine and sessions, one database per service."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

if TYPE_CHECKING:
    from comuna_platform.uow import UnitOfWork

log = logging.getLogger(__name__)


class Database:
    def __init__(self, url: str, *, pool_size: int = 20) -> None:
        # A fixed pool: overflow connections are closed on return, so under steady concurrency
        # above the pool size they were opened (TLS negotiation included) for every request.
        # No pre-ping either: it is a round trip per checkout on the hot path; a connection
        # that broke is invalidated on its first error and `pool_recycle` retires old ones.
        self.engine: AsyncEngine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=0,
            pool_recycle=1800,
            pool_timeout=30,
            # Statement parameters may hold personal data (id numbers, names): never in errors or logs.
            hide_parameters=True,
        )
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._events_committed: list[Callable[[], None]] = []

    def on_events_committed(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` after every commit that staged events (the outbox relay wakes up on
        it); returns the function that removes it again."""
        self._events_committed.append(listener)
        return lambda: self._events_committed.remove(listener)

    def _notify_events_committed(self) -> None:
        for listener in list(self._events_committed):
            try:
                listener()
            except Exception:
                log.exception("events-committed listener failed")

    def unit_of_work(self) -> AbstractAsyncContextManager[UnitOfWork]:
        """One transaction with its staged events and after-commit hooks (see `comuna_platform.uow`)."""
        from comuna_platform.uow import unit_of_work

        return unit_of_work(self.sessions, on_events_committed=self._notify_events_committed)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """The session of a unit of work, for code that needs only the session (tests, the event
        consumer): committed on success, rolled back on error, after-commit hooks included;
        `UnitOfWork.of(session)` finds the unit of work again."""
        async with self.unit_of_work() as uow:
            yield uow.session

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[AsyncConnection]:
        """A connection where each statement commits on its own.

        For hot paths whose write is ONE self-contained statement (atomic by itself): one round
        trip instead of BEGIN, statement, COMMIT. Never use it for several dependent writes.
        """
        async with self.engine.connect() as conn:
            yield await conn.execution_options(isolation_level="AUTOCOMMIT")

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    async def dispose(self) -> None:
        await self.engine.dispose()
