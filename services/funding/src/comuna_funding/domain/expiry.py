"""The worker that voids pending transfers once their timeout passed (kind `expire`).

Every replica may run it: the expire transfer's id derives from the pending transfer, and a
pending transfer is resolved at most once (a unique key), so racing workers expire it once.
"""

from __future__ import annotations

import asyncio
import logging

from comuna_funding.domain import ledger
from comuna_platform.db import Database

log = logging.getLogger(__name__)

BATCH = 1000


class PendingExpiry:
    def __init__(self, db: Database, every: float) -> None:
        self._db = db
        self._every = every

    async def expire_once(self) -> int:
        """One round: expire every due pending transfer, a batch per transaction; how many."""
        total = 0
        while True:
            async with self._db.unit_of_work() as uow:
                expired = await ledger.expire_due(uow.session, limit=BATCH)
            total += expired
            if expired < BATCH:
                return total

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            expired = await self.expire_once()
            if expired:
                log.info("pending transfers expired", extra={"expired": expired})
            try:
                await asyncio.wait_for(stop.wait(), timeout=self._every)
            except TimeoutError:
                pass
