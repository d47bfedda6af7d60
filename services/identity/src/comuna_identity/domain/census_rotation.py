"""Re-keying the census to the ring's current key, in the background, while it stays in use.

A step either activates the current generation (the database is behind the ring) or moves one
batch of the oldest records forward by one generation (`hash_next = HMAC(k_next, hash)`, see
`census_keys`). Each step is one short transaction; rows a writer holds are skipped and taken
by a later step, so imports, registrations and lookups go on. A record is moved by one UPDATE
(key id and hash together): a lookup, which matches every generation in use, finds it before
and after. Writers write under the newest generation only, and hold the generations FOR SHARE
while they write: the activation (FOR UPDATE on the newest) waits for them, and no writer can
add a person under an older generation once a newer one exists.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass

from comuna_identity.domain.census import Census
from comuna_identity.storage import census as storage
from comuna_platform.db import Database

log = logging.getLogger(__name__)
ACTIVATED = -1


@dataclass(frozen=True)
class RotationProgress:
    target: int
    generations: list[int]
    # Residents per key generation; a rotation is done when all are under the target.
    residents: dict[int, int]

    @property
    def done(self) -> bool:
        return self.generations[-1] >= self.target and set(self.residents) <= {self.generations[-1]}

    def as_json(self) -> dict[str, object]:
        return {
            "target_key_id": self.target,
            "generations": self.generations,
            "residents_per_key_id": {str(k): v for k, v in sorted(self.residents.items())},
            "done": self.done,
        }


async def rotate_step(db: Database, census: Census, batch: int) -> int:
    """Records moved by this step; `ACTIVATED` when it activated the current generation; 0: idle."""
    async with db.transaction() as session:
        generations = await census.generations(session)
        target = census.ring.current
        if target > generations.newest:
            await storage.lock_newest_census_key(session)
            await storage.add_census_key(session, target, census.ring.fingerprint(target))
            log.info("census key generation activated", extra={"key_id": target})
            return ACTIVATED
        ids = list(generations.ids)
        for older, newer in itertools.pairwise(ids):
            claimed = await storage.claim_for_rekey(session, older, batch)
            if claimed:
                wrapped = [(resident_id, census.ring.wrap(digest, newer)) for resident_id, digest in claimed]
                return await storage.rekey(session, newer, wrapped)
        return 0


async def rotate_until_done(db: Database, census: Census, batch: int) -> int:
    """Run steps until nothing is left to do (the CLI, tests); returns the records moved."""
    moved = 0
    while (step := await rotate_step(db, census, batch)) != 0:
        moved += max(step, 0)
    return moved


async def progress(db: Database, census: Census) -> RotationProgress:
    async with db.transaction() as session:
        generations = await census.generations(session)
        counts = await storage.residents_per_generation(session)
    return RotationProgress(census.ring.current, list(generations.ids), counts)


async def run_worker(db: Database, census: Census, batch: int, stop: asyncio.Event, idle_seconds: float) -> None:
    """The supervised worker: steps while there is work, then waits `idle_seconds` (or stop)."""
    while not stop.is_set():
        step = await rotate_step(db, census, batch)
        if step > 0:
            log.info("census records re-keyed", extra={"records": step})
            continue
        if step == ACTIVATED:
            continue
        try:
            await asyncio.wait_for(stop.wait(), timeout=idle_seconds)
        except TimeoutError:
            pass
