"""A short-lived, per-process copy of what the ballot path checks before touching the database.

On voting day every ballot needs the consultation's status and schedule, the communes' holds,
the commune's territory code (for the officer's scope) and which commune each candidate belongs
to. Reading them for every ballot would triple the queries of the hot path; they barely change
(candidates are final once registration closes on the clock), so each process keeps them for
`ttl` seconds.

Staleness is safe by construction: the ballot statement re-checks the instant it was accepted
at against the dates and holds on the locked consultation row, so a stale window can only lead
to a refusal from the database, never to a ballot outside the window. A refusal by the cached
window is re-read before it is final (`fresh=True`), so an amendment made a moment ago in
another process is not missed for up to `ttl` seconds.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from comuna_consultations.domain.phases import Schedule, VotingWindow
from comuna_consultations.domain.schedules import schedule_of, voting_windows
from comuna_consultations.storage import repository
from comuna_consultations.voting import storage
from comuna_platform.db import Database


@dataclass(frozen=True, slots=True)
class VotingSnapshot:
    consultation_id: uuid.UUID
    status: str
    schedule: Schedule
    # Communes whose window is not the national one (`domain.schedules.voting_windows`).
    windows: Mapping[uuid.UUID, VotingWindow | None]
    # Whether voting had opened on the server clock when this was loaded: the candidates
    # (registration closed before) and the tables (laid out only before voting opens) below are
    # then final, and a refresh need not read them again.
    layout_final: bool
    commune_codes: Mapping[uuid.UUID, str]
    candidate_communes: Mapping[uuid.UUID, uuid.UUID]
    tables: Mapping[str, storage.TableRef]  # by code
    # t_c and L_c of the verified roll (None before it is verified): a document's entry key is
    # multiply(t_c, document_point(document)), a signed-in resident's login key HMAC(L_c, subject).
    roll_keys: storage.RollKeys | None

    def window_of(self, commune_id: uuid.UUID) -> VotingWindow | None:
        """When this commune votes: its own window if held (None if excluded), else the national one."""
        return self.windows.get(commune_id, self.schedule.voting)


@dataclass(frozen=True, slots=True)
class _Entry:
    snapshot: VotingSnapshot
    loaded_at: float


class VotingSnapshotCache:
    def __init__(
        self,
        db: Database,
        *,
        ttl: float = 1.0,
        max_entries: int = 64,
        clock: Callable[[], float] = time.monotonic,
        server_now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._server_now = server_now
        self._db = db
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[uuid.UUID, _Entry] = {}
        # One load per consultation at a time: when an entry expires under load, hundreds of
        # concurrent ballots share one reload instead of each running three queries.
        self._loading: dict[uuid.UUID, asyncio.Future[VotingSnapshot | None]] = {}

    async def get(self, consultation_id: uuid.UUID, *, fresh: bool = False) -> VotingSnapshot | None:
        """The snapshot, at most `ttl` seconds old (or loaded now if `fresh`); None if unknown."""
        entry = self._entries.get(consultation_id)
        if entry is not None and not fresh and self._clock() - entry.loaded_at < self._ttl:
            return entry.snapshot
        loading = self._loading.get(consultation_id)
        if loading is None:
            loading = asyncio.ensure_future(self._load(consultation_id))
            self._loading[consultation_id] = loading
            loading.add_done_callback(lambda _: self._loading.pop(consultation_id, None))
        # Shielded: a cancelled request must not cancel the load the others are waiting for.
        return await asyncio.shield(loading)

    def invalidate(self, consultation_id: uuid.UUID) -> None:
        """Forget a consultation, e.g. after this process changed its status."""
        self._entries.pop(consultation_id, None)

    async def _load(self, consultation_id: uuid.UUID) -> VotingSnapshot | None:
        started = self._clock()
        previous = self._entries.get(consultation_id)
        # The one read of this service outside a request's unit of work: a cache shared by every
        # request of the process, loaded once for many of them.
        async with self._db.transaction() as session:
            # Schedule first: once registration closed on the clock, the candidates read next are
            # final (recording one checks the clock under a lock, and past dates never move).
            status = await repository.consultation_status(session, consultation_id)
            schedule = await schedule_of(session, consultation_id)
            if status is None or schedule is None:
                return None
            layout_final = self._server_now() >= schedule.voting.opens_at
            windows = await voting_windows(session, consultation_id)
            if previous is not None and previous.snapshot.layout_final and previous.snapshot.roll_keys is not None:
                # Communes never change after opening, candidates, tables and the roll never change
                # once voting opened: on voting day a refresh is a few small queries, not ~60,000 rows.
                codes, candidate_communes = previous.snapshot.commune_codes, previous.snapshot.candidate_communes
                tables = previous.snapshot.tables
                roll_keys: storage.RollKeys | None = previous.snapshot.roll_keys
            else:
                codes = await storage.commune_codes(session, consultation_id)
                candidate_communes = await storage.candidate_communes(session, consultation_id)
                tables = await storage.tables(session, consultation_id)
                # A verified roll's key never changes once set.
                roll_keys = await storage.verified_roll_keys(session, consultation_id)
        snapshot = VotingSnapshot(
            consultation_id, status, schedule, windows, layout_final, codes, candidate_communes, tables, roll_keys
        )
        self._entries[consultation_id] = _Entry(snapshot, started)
        if len(self._entries) > self._max_entries:
            oldest = min(self._entries, key=lambda key: self._entries[key].loaded_at)
            del self._entries[oldest]
        return snapshot
