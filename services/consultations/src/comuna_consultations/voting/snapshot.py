"""A short-lived, per-process copy of what the ballot path checks before touching the database.

On voting day every ballot needs the consultation's status and voting window, the commune's
territory code (for the officer's scope), which commune each candidate belongs to and the
roll's keys (t_c for documents, L_c for signed-in residents). Reading them for every ballot
would triple the queries of the hot path; they barely change (candidates are frozen once voting
starts, the status changes three times in a consultation's life), so each process keeps them
for `ttl` seconds.

Staleness is safe by construction: the ballot batch re-checks the status on the locked
consultation row, so a stale "voting" can only lead to a refusal from the database, never to a
ballot after a `:close`. The window (dates) is re-read with the status on every refresh, and
each ballot compares its own instant with it (`window_of(commune).accepts_ballots(now)`).
A stale non-"voting" status is re-read before refusing (`fresh=True`),
so a just-started vote is not refused for up to `ttl` seconds.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from comuna_consultations.domain.phases import VotingWindow
from comuna_consultations.vocabulary import ConsultationStatus
from comuna_consultations.voting import storage
from comuna_platform.db import Database


@dataclass(frozen=True, slots=True)
class VotingSnapshot:
    consultation_id: uuid.UUID
    status: str
    commune_codes: Mapping[uuid.UUID, str]
    candidate_communes: Mapping[uuid.UUID, uuid.UUID]
    # t_c and L_c of the verified roll (None before it is verified): a document's entry key is
    # multiply(t_c, document_point(document)), a signed-in resident's login key HMAC(L_c, subject).
    roll_keys: storage.RollKeys | None
    # The national voting window and the communes whose window differs (postponed: their own;
    # excluded: None). PHASES' `lifecycle.phases_storage.voting_windows` fills `commune_windows`
    # once it lands; until then every commune votes in the consultation's published window.
    window: VotingWindow
    commune_windows: Mapping[uuid.UUID, VotingWindow | None] = field(default_factory=dict)

    def window_of(self, commune_id: uuid.UUID) -> VotingWindow | None:
        return self.commune_windows.get(commune_id, self.window) if self.commune_windows else self.window


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
    ) -> None:
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
            # Status first: once it reads "voting", the candidates read next are final, because
            # recording a candidate requires "assembly" under a lock that start-voting waits for.
            state = await storage.voting_state(session, consultation_id)
            if state is None:
                return None
            status = state.status
            if previous is not None and previous.snapshot.status != ConsultationStatus.ASSEMBLY:
                # Communes never change after opening, candidates and the roll never change after
                # assembly: on voting day a refresh is one single-row query, not ~40,000 rows.
                codes, candidate_communes = previous.snapshot.commune_codes, previous.snapshot.candidate_communes
                roll_keys = previous.snapshot.roll_keys
            else:
                codes = await storage.commune_codes(session, consultation_id)
                candidate_communes = await storage.candidate_communes(session, consultation_id)
                # Read after the status: voting starts only once the roll is verified, so a
                # "voting" status read first guarantees the key read next is the final one.
                roll_keys = await storage.verified_roll_keys(session, consultation_id)
        window = VotingWindow(state.voting_opens_at, state.voting_closes_at)
        snapshot = VotingSnapshot(consultation_id, status, codes, candidate_communes, roll_keys, window)
        self._entries[consultation_id] = _Entry(snapshot, started)
        if len(self._entries) > self._max_entries:
            oldest = min(self._entries, key=lambda key: self._entries[key].loaded_at)
            del self._entries[oldest]
        return snapshot
