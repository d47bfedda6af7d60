"""The worker that keeps every log of a service checkpointed: every `every` seconds, each log
that grew since its last checkpoint is integrated and signed (`TransparencyLog.checkpoint`), in
a transaction of its own. Several replicas may run it: integration is one at a time per log and
a size is signed once, so they only share the work."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import and_, exists, or_, select

from comuna_platform.db import Database
from comuna_platform.tlog.note import Signer
from comuna_platform.tlog.store import LogTables, TransparencyLog

log = logging.getLogger(__name__)


class Checkpointer:
    def __init__(
        self,
        db: Database,
        tables: LogTables,
        signers: Sequence[Signer],
        *,
        every: float,
        now: Callable[[], datetime],
    ) -> None:
        if not signers:
            raise ValueError("a checkpointer needs at least one signing key")
        self._db = db
        self._tables = tables
        self._signers = tuple(signers)
        self._every = every
        self._now = now

    async def grown(self) -> list[str]:
        """Origins of the logs with entries past their latest checkpoint."""
        logs, checkpoints = self._tables.logs, self._tables.checkpoints
        signed = exists().where(
            and_(checkpoints.c.origin == logs.c.origin, checkpoints.c.size == logs.c.integrated_size)
        )
        query = select(logs.c.origin).where(or_(logs.c.size > logs.c.integrated_size, ~signed)).order_by(logs.c.origin)
        async with self._db.engine.connect() as conn:
            return [str(origin) for origin in (await conn.execute(query)).scalars()]

    async def checkpoint_grown(self) -> int:
        """One round: checkpoint every grown log; how many were."""
        origins = await self.grown()
        for origin in origins:
            async with self._db.engine.begin() as conn:
                await TransparencyLog(self._tables, origin).checkpoint(conn, self._signers, self._now())
        return len(origins)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            signed = await self.checkpoint_grown()
            if signed:
                log.debug("transparency logs checkpointed", extra={"logs": signed})
            try:
                await asyncio.wait_for(stop.wait(), timeout=self._every)
            except TimeoutError:
                pass
