"""The roll loader: a supervised worker that pulls each frozen roll from identity into
`roll_entries` and verifies it.

Per roll: wait until identity says it is frozen (GetRoll), keep its size, digest and keys, then
StreamRoll after the last stored seq; every chunk is COPYed in one transaction with the new
`loaded_seq`, so a crash, a restart or a cut stream resumes exactly after the last committed
chunk. At the end the count of stored entries and the digest (hashed as the entries arrived
in an uninterrupted load; recomputed from the table, in voter_key order, after a resumed one)
are compared with identity's: equal -> `verified`; different -> `refused`,
logged at ERROR, and voting can never start on it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime

from comuna_consultations.domain.identity import RollSource
from comuna_consultations.roll import storage
from comuna_consultations.storage import repository
from comuna_consultations.vocabulary import RollLoadStatus
from comuna_platform.db import Database
from comuna_platform.errors import Unavailable
from comuna_platform.read_ahead import read_ahead
from comuna_platform.voter_roll import ENTRY_BYTES, RollDigest, stored_digest

log = logging.getLogger(__name__)

READ_AHEAD_CHUNKS = 2


class RollLoadError(Unavailable):
    """The stream broke the protocol (a gap, a torn chunk, an early end): retried from the last stored seq."""


class RollLoader:
    def __init__(
        self, db: Database, source: RollSource, *, poll_seconds: float = 1.0, chunk_size: int = 20_000
    ) -> None:
        self._db = db
        self._source = source
        self._poll = poll_seconds
        self._chunk_size = chunk_size
        # Digests of loads streamed whole by this process, waiting for their verification.
        self._streamed: dict[uuid.UUID, RollDigest] = {}

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.work_once()
            try:
                await asyncio.wait_for(stop.wait(), timeout=self._poll)
            except TimeoutError:
                pass

    async def work_once(self) -> None:
        async with self._db.transaction() as session:
            pending = await storage.pending_loads(session)
        for consultation_id in pending:
            await self.load(consultation_id)

    async def load(self, consultation_id: uuid.UUID) -> RollLoadStatus | None:
        """Advance one roll as far as possible; its status afterwards (None if another process has it)."""
        async with self._db.engine.connect() as guard:
            if not await storage.try_lock_load(guard, consultation_id):
                return None
            try:
                return await self._load_locked(consultation_id)
            finally:
                await storage.unlock_load(guard, consultation_id)

    async def _load_locked(self, consultation_id: uuid.UUID) -> RollLoadStatus | None:
        async with self._db.transaction() as session:
            load = await repository.roll_load(session, consultation_id)
        if load is None:
            return None
        if load.status == RollLoadStatus.REQUESTED:
            info = await self._source.get_roll(consultation_id)
            if not info.frozen:
                return RollLoadStatus.REQUESTED
            async with self._db.transaction() as session:
                await storage.set_load(
                    session,
                    consultation_id,
                    status=RollLoadStatus.LOADING,
                    expected_count=info.entry_count,
                    expected_digest=info.digest,
                    voter_key=info.voter_key,
                    login_key=info.login_key,
                )
                load = await repository.roll_load(session, consultation_id)
                assert load is not None
        if load.status != RollLoadStatus.LOADING:
            return RollLoadStatus(load.status)
        assert load.expected_count is not None
        loaded = await self.pull(consultation_id, load.loaded_seq, load.expected_count)
        if loaded != load.expected_count:
            raise RollLoadError(
                f"identity's roll stream ended at seq {loaded} of {load.expected_count}", code="roll_stream_short"
            )
        return await self.verify(consultation_id)

    async def pull(self, consultation_id: uuid.UUID, loaded: int, expected: int) -> int:
        if loaded >= expected:
            return loaded
        # A load from the first entry hashes the entries as they arrive (seq order is digest
        # order): verifying it then needs only a count. A resumed one is verified from the table.
        streamed = RollDigest(consultation_id) if loaded == 0 else None
        self._streamed.pop(consultation_id, None)
        stream = self._source.stream_roll(consultation_id, after_seq=loaded, chunk_size=self._chunk_size)
        # Identity reads the next chunks while this one is COPYed (a crash still resumes after
        # the last committed chunk: what was read ahead is simply read again).
        async for chunk in read_ahead(stream, READ_AHEAD_CHUNKS):
            if chunk.first_seq != loaded + 1 or not chunk.packed or len(chunk.packed) % ENTRY_BYTES:
                raise RollLoadError("identity's roll stream skipped or tore entries", code="roll_stream_broken")
            async with self._db.transaction() as session:
                if not await storage.store_chunk(session, consultation_id, chunk.first_seq, chunk.packed):
                    raise RollLoadError("another loader stored this chunk", code="roll_load_raced")
            if streamed is not None:
                streamed.add_encoded(chunk.packed)
            loaded = chunk.first_seq + len(chunk.packed) // ENTRY_BYTES - 1
        if streamed is not None:
            self._streamed[consultation_id] = streamed
        return loaded

    async def verify(self, consultation_id: uuid.UUID) -> RollLoadStatus:
        async with self._db.transaction() as session:
            load = await repository.roll_load(session, consultation_id, lock=True)
            assert load is not None and load.expected_digest is not None
            streamed = self._streamed.pop(consultation_id, None)
            if streamed is not None:
                # Every entry stored was hashed on its way in: the table must hold exactly those.
                digest, count = streamed, await storage.count_entries(session, consultation_id)
            else:
                digest = await stored_digest(session, "roll_entries", consultation_id, order="voter_key")
                count = digest.count
            stored = bytes.fromhex(digest.hexdigest())
            if digest.count == count == load.expected_count and stored == load.expected_digest:
                await storage.set_load(
                    session, consultation_id, status=RollLoadStatus.VERIFIED, verified_at=datetime.now(UTC)
                )
                log.info(
                    "voter roll verified", extra={"consultation_id": str(consultation_id), "entries": digest.count}
                )
                return RollLoadStatus.VERIFIED
            error = (
                f"roll refused: {count} entries stored, {digest.count} with digest {stored.hex()}, identity published "
                f"{load.expected_count} with digest {load.expected_digest.hex()}"
            )
            await storage.set_load(session, consultation_id, status=RollLoadStatus.REFUSED, error=error)
        log.error("VOTER ROLL REFUSED: " + error, extra={"consultation_id": str(consultation_id)})
        return RollLoadStatus.REFUSED
