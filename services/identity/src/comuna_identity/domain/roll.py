"""The frozen voter roll of a consultation (docs/voter-roll.md).

A consultation asks for its roll with its terms (cut-off, voting day, communes): `request_freeze`
records them, idempotently. From then on the `RollFreezer` worker computes the entry keys of
the residents eligible at the cut-off (`s_c·B`, the slow part: ~100 µs each) in threads, and
keeps doing so for residents who become eligible; once the cut-off has come it freezes the roll
in one REPEATABLE READ transaction: the few keys still missing, then entries, counts and digest
set-based. A consultation that asks days ahead therefore pays only for the last changes at the
cut-off; one that asks at the cut-off pays the whole computation then.

Reads: `summary`, `counts`, `chunk` (the stream), and `my_roll` ("can I vote?").
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from comuna_identity.domain.roll_keys import ConsultationKeys, RollSecret, born_by, entry_keys, login_entry
from comuna_identity.storage import rolls as storage
from comuna_identity.storage.models import VoterRoll, VoterRollCount, VoterRollEntry
from comuna_identity.vocabulary import RollStatus
from comuna_platform.db import Database
from comuna_platform.errors import Conflict, FailedPrecondition, InvalidInput, NotFound
from comuna_platform.uow import UnitOfWork
from comuna_platform.voter_keys import multiply
from comuna_platform.voter_roll import stored_digest

log = logging.getLogger(__name__)

MAX_CHUNK = 40_000
DEFAULT_CHUNK = 20_000


def roll_not_found(consultation_id: uuid.UUID) -> NotFound:
    return NotFound(f"no voter roll for consultation {consultation_id}", code="roll_not_found")


@dataclass(frozen=True, slots=True)
class RollTerms:
    consultation_id: uuid.UUID
    cutoff: date
    voting_day: date
    commune_ids: tuple[uuid.UUID, ...]

    @classmethod
    def of(cls, consultation_id: uuid.UUID, cutoff: date, voting_day: date, communes: Sequence[uuid.UUID]) -> RollTerms:
        if cutoff > voting_day:
            raise InvalidInput("the cut-off must not be after the voting day", code="roll_dates_invalid")
        if not communes:
            raise InvalidInput("a roll needs at least one commune", code="communes_required", field="commune_ids")
        if len(set(communes)) != len(communes):
            raise InvalidInput("a commune is listed twice", code="commune_duplicate", field="commune_ids")
        return cls(consultation_id, cutoff, voting_day, tuple(sorted(communes)))

    def check_same(self, roll: VoterRoll) -> None:
        """A second request must repeat the terms of the first: the roll is never frozen twice."""
        if roll.cutoff != self.cutoff:
            raise Conflict(
                f"the roll of this consultation has the cut-off {roll.cutoff.isoformat()}", code="roll_cutoff_conflict"
            )
        if roll.voting_day != self.voting_day or tuple(sorted(roll.commune_ids)) != self.commune_ids:
            raise Conflict("the roll of this consultation was requested with other terms", code="roll_terms_conflict")


async def request_freeze(uow: UnitOfWork, terms: RollTerms) -> VoterRoll:
    """Record the roll's terms (the freezer does the rest); the same terms again: the same roll."""
    session = uow.session
    existing = await storage.roll_of(session, terms.consultation_id)
    if existing is None:
        known = await storage.existing_communes(session, terms.commune_ids, terms.cutoff)
        unknown = [c for c in terms.commune_ids if c not in known]
        if unknown:
            raise NotFound(f"commune {unknown[0]} does not exist at the cut-off", code="commune_not_found")
        await storage.insert_roll(
            session,
            {
                "consultation_id": terms.consultation_id,
                "cutoff": terms.cutoff,
                "voting_day": terms.voting_day,
                "commune_ids": list(terms.commune_ids),
                "status": RollStatus.PREPARING,
            },
        )
        # Either ours or the one a concurrent request recorded first: compared below all the same.
        existing = await storage.roll_of(session, terms.consultation_id)
        assert existing is not None
    terms.check_same(existing)
    return existing


async def summary(uow: UnitOfWork, consultation_id: uuid.UUID) -> VoterRoll:
    roll = await storage.roll_of(uow.session, consultation_id)
    if roll is None:
        raise roll_not_found(consultation_id)
    return roll


async def frozen(uow: UnitOfWork, consultation_id: uuid.UUID) -> VoterRoll:
    roll = await summary(uow, consultation_id)
    if roll.status != RollStatus.FROZEN:
        raise FailedPrecondition("the roll is not frozen yet", code="roll_not_frozen")
    return roll


async def counts(uow: UnitOfWork, consultation_id: uuid.UUID) -> list[VoterRollCount]:
    return await storage.counts_of(uow.session, consultation_id)


@dataclass(frozen=True, slots=True)
class Chunk:
    first_seq: int
    count: int
    packed: bytes
    entry_count: int


async def chunk(uow: UnitOfWork, consultation_id: uuid.UUID, *, after_seq: int, size: int) -> Chunk:
    """The entries after `after_seq`, at most `size`: the same bytes for the same arguments."""
    if after_seq < 0:
        raise InvalidInput("after_seq must not be negative", code="invalid_seq", field="after_seq")
    if size < 0 or size > MAX_CHUNK:
        raise InvalidInput(f"chunk_size is 0 (default) to {MAX_CHUNK}", code="invalid_chunk_size", field="chunk_size")
    roll = await frozen(uow, consultation_id)
    assert roll.entry_count is not None
    first, count, packed = await storage.entries_chunk(
        uow.session, consultation_id, after_seq=after_seq, limit=size or DEFAULT_CHUNK
    )
    return Chunk(first, count, packed, roll.entry_count)


@dataclass(frozen=True, slots=True)
class Place:
    id: uuid.UUID
    code: str
    name: str


@dataclass(frozen=True, slots=True)
class MyRoll:
    roll: VoterRoll
    on_roll: bool
    commune: Place | None
    council: Place | None


async def my_roll(uow: UnitOfWork, secret: RollSecret, subject: str, consultation_id: uuid.UUID) -> MyRoll:
    """The roll status of the resident linked to `subject`, and nobody else's."""
    session = uow.session
    resident = await storage.resident_of_subject(session, subject)
    if resident is None:
        raise NotFound("your account is not linked to a census record", code="resident_not_linked")
    roll = await frozen(uow, consultation_id)
    _, roll_base = resident
    keys = secret.for_consultation(consultation_id)
    entry: VoterRollEntry | None = await storage.entry_by_key(
        session, consultation_id, multiply(keys.entry_scalar, roll_base)
    )
    if entry is None:
        return MyRoll(roll, False, None, None)
    names = await storage.territory_names(session, [entry.commune_id, entry.council_id], roll.cutoff)

    def place(territory_id: uuid.UUID) -> Place:
        code, name = names.get(territory_id, ("", ""))
        return Place(territory_id, code, name)

    return MyRoll(roll, True, place(entry.commune_id), place(entry.council_id))


# --- the freezer (a supervised worker of identity) ------------------------------------------


class RollFreezer:
    """Prepares entry keys for every roll requested and freezes each once its cut-off has come."""

    def __init__(
        self,
        db: Database,
        secret: RollSecret,
        *,
        voting_age: int,
        threads: int = 2,
        poll_seconds: float = 1.0,
        batch: int = 20_000,
        today: Callable[[], date] = lambda: datetime.now(UTC).date(),
    ) -> None:
        self._db = db
        self._secret = secret
        self._voting_age = voting_age
        self._threads = max(1, threads)
        self._poll = poll_seconds
        self._batch = batch
        self._today = today
        self.wake = asyncio.Event()
        # Seconds spent in each step of the last prepare and freeze (logged; the benchmark reports them).
        self.last_split: dict[str, float] = {}

    async def run(self, stop: asyncio.Event) -> None:
        with ThreadPoolExecutor(self._threads, thread_name_prefix="roll-keys") as pool:
            while not stop.is_set():
                await self.work_once(pool)
                self.wake.clear()
                waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.wake.wait())]
                await asyncio.wait(waits, timeout=self._poll, return_when=asyncio.FIRST_COMPLETED)
                for waiting in waits:
                    waiting.cancel()

    async def work_once(self, pool: ThreadPoolExecutor | None = None) -> None:
        async with self._db.transaction() as session:
            pending = await storage.pending_rolls(session)
        for consultation_id in pending:
            if pool is None:
                with ThreadPoolExecutor(self._threads, thread_name_prefix="roll-keys") as own:
                    await self.process(consultation_id, own)
            else:
                await self.process(consultation_id, pool)

    async def process(self, consultation_id: uuid.UUID, pool: ThreadPoolExecutor) -> RollStatus:
        # One identity process at a time works on a roll (replicas skip it): a session advisory
        # lock, released with the connection if this process dies.
        async with self._db.engine.connect() as guard:
            if not await storage.try_lock_roll(guard, consultation_id):
                return RollStatus.PREPARING
            try:
                return await self._process_locked(consultation_id, pool)
            finally:
                await storage.unlock_roll(guard, consultation_id)

    async def _process_locked(self, consultation_id: uuid.UUID, pool: ThreadPoolExecutor) -> RollStatus:
        async with self._db.transaction() as session:
            roll = await storage.roll_of(session, consultation_id)
        if roll is None or roll.status == RollStatus.FROZEN:
            return RollStatus.FROZEN
        keys = self._secret.for_consultation(consultation_id)
        params = storage.eligibility_params(
            roll.cutoff, born_by(roll.voting_day, self._voting_age), list(roll.commune_ids)
        )
        started = time.perf_counter()
        prepared = await self._prepare(consultation_id, keys, params, pool)
        prepare_seconds = time.perf_counter() - started
        if roll.cutoff > self._today():
            if prepared:
                async with self._db.transaction() as session:
                    await storage.add_prepare_seconds(session, consultation_id, prepare_seconds)
            return RollStatus.PREPARING
        await self._freeze(consultation_id, keys, params, pool, prepare_seconds)
        return RollStatus.FROZEN

    async def _prepare(
        self, consultation_id: uuid.UUID, keys: ConsultationKeys, params: dict[str, Any], pool: ThreadPoolExecutor
    ) -> int:
        """Compute and store the missing entry keys, committing each batch (a crash keeps them)."""
        done = 0
        split = {"read": 0.0, "compute": 0.0, "write": 0.0}
        async with self._db.engine.connect() as reader:
            mark = time.perf_counter()
            async for batch in storage.missing_keys(reader, consultation_id, params, batch=self._batch):
                split["read"] += time.perf_counter() - mark
                mark = time.perf_counter()
                computed = await self._compute(keys, [c.roll_base for c in batch], pool)
                split["compute"] += time.perf_counter() - mark
                mark = time.perf_counter()
                async with self._db.engine.begin() as writer:
                    await storage.copy_keys(
                        writer, consultation_id, list(zip((c.resident_id for c in batch), computed, strict=True))
                    )
                split["write"] += time.perf_counter() - mark
                done += len(batch)
                mark = time.perf_counter()
        if done:
            async with self._db.engine.begin() as conn:
                await storage.analyze_keys(conn)
        self.last_split = {f"prepare_{k}_seconds": round(v, 3) for k, v in split.items()}
        if done:
            log.info(
                "voter roll keys prepared",
                extra={"consultation_id": str(consultation_id), "keys": done, **self.last_split},
            )
        return done

    async def _compute(self, keys: ConsultationKeys, bases: list[bytes], pool: ThreadPoolExecutor) -> list[bytes]:
        loop = asyncio.get_running_loop()
        step = -(-len(bases) // self._threads)
        parts = [bases[i : i + step] for i in range(0, len(bases), step)]
        results = await asyncio.gather(*(loop.run_in_executor(pool, entry_keys, keys.entry_scalar, p) for p in parts))
        return [key for part in results for key in part]

    async def _freeze(
        self,
        consultation_id: uuid.UUID,
        keys: ConsultationKeys,
        params: dict[str, Any],
        pool: ThreadPoolExecutor,
        prepare_seconds: float,
    ) -> None:
        started = time.perf_counter()
        async with self._db.sessions() as session:
            # One snapshot for the missing keys, the entries and the counts: a resident who
            # moves during the freeze is on the roll in one place or not at all, never twice.
            conn = await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            roll = await storage.roll_of(session, consultation_id, lock=True)
            if roll is None or roll.status == RollStatus.FROZEN:
                return
            split: dict[str, float] = {}
            mark = time.perf_counter()

            def lap(name: str) -> None:
                nonlocal mark
                split[f"freeze_{name}_seconds"] = round(time.perf_counter() - mark, 3)
                mark = time.perf_counter()

            late = [
                c
                async for batch in storage.missing_keys(conn, consultation_id, params, batch=self._batch)
                for c in batch
            ]
            if late:
                computed = await self._compute(keys, [c.roll_base for c in late], pool)
                await storage.copy_keys(
                    conn, consultation_id, list(zip((c.resident_id for c in late), computed, strict=True))
                )
            lap("late_keys")
            logins = [
                (resident, login_entry(keys.login_key, subject))
                for resident, subject in await storage.linked_accounts(session)
            ]
            missing_bases = await storage.without_roll_base(session, params)
            if missing_bases:
                log.warning(
                    "eligible residents without a roll base are left off the roll; re-import them",
                    extra={"consultation_id": str(consultation_id), "residents": missing_bases},
                )
            lap("logins")
            await storage.write_entries(session, consultation_id, params, logins)
            lap("entries_and_counts")
            digest = await stored_digest(session, "voter_roll_entries", consultation_id)
            lap("digest")
            await storage.mark_frozen(
                session,
                consultation_id,
                entry_count=digest.count,
                digest=bytes.fromhex(digest.hexdigest()),
                frozen_at=datetime.now(UTC),
                freeze_seconds=time.perf_counter() - started,
                prepare_seconds=prepare_seconds + (roll.prepare_seconds or 0.0),
            )
            await session.commit()
            lap("commit")
        self.last_split = {**self.last_split, **split}
        log.info(
            "voter roll frozen",
            extra={"consultation_id": str(consultation_id), "entries": digest.count, "late_keys": len(late), **split},
        )
