"""A short-lived, bounded, single-flight cache of identity's answers, per subject.

Asking identity on every request would put it on the path of every call of every service; the
cache keeps each subject's resolution for `ttl` seconds (never past the earliest `valid_until`
of its assignments, so an assignment never outlives its end date here). Identity's
`identity.role_assignment.*` events drop a subject's entry at once (`invalidate`); a lost
event is bounded by the TTL, and a NATS reconnect (events may have been missed) drops
everything (`clear`).

Concurrent misses for one subject share one call (single flight). An invalidation while that
call is in flight detaches it: its answer may predate the change, so it serves only the
requests already waiting for it and is never stored.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from .access import Resolution

Loader = Callable[[str], Awaitable[Resolution]]

# Enough for every staff member active in a few minutes; beyond it the least recently used go.
DEFAULT_MAX_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class _Entry:
    resolution: Resolution
    expires_at: float


class AccessCache:
    def __init__(
        self,
        load: Loader,
        *,
        ttl: float,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if ttl < 0:
            raise ValueError("ttl must not be negative")
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._load = load
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._now = now
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._in_flight: dict[str, asyncio.Task[Resolution]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, subject: str) -> Resolution:
        entry = self._entries.get(subject)
        if entry is not None:
            if self._clock() < entry.expires_at:
                self._entries.move_to_end(subject)
                return entry.resolution
            del self._entries[subject]
        task = self._in_flight.get(subject)
        if task is None:
            task = asyncio.ensure_future(self._fill(subject))
            self._in_flight[subject] = task
        # Shielded: a caller that goes away (client disconnect) does not cancel the call the
        # other waiters share.
        return await asyncio.shield(task)

    def invalidate(self, subject: str) -> None:
        """Forget `subject`: the next request asks identity again."""
        self._entries.pop(subject, None)
        self._in_flight.pop(subject, None)

    def clear(self) -> None:
        """Forget everyone (after a NATS reconnect, invalidations may have been missed)."""
        self._entries.clear()
        self._in_flight.clear()

    async def _fill(self, subject: str) -> Resolution:
        me = asyncio.current_task()
        try:
            resolution = await self._load(subject)
        finally:
            # Detached by an invalidation meanwhile: someone else's call may be current now.
            current = self._in_flight.get(subject) is me
            if current:
                del self._in_flight[subject]
        if current:
            self._store(subject, resolution)
        return resolution

    def _store(self, subject: str, resolution: Resolution) -> None:
        lifetime = self._ttl
        ends = [a.valid_until for a in resolution.assignments if a.valid_until is not None]
        if ends:
            lifetime = min(lifetime, (min(ends) - self._now()).total_seconds())
        if lifetime <= 0:
            return
        self._entries[subject] = _Entry(resolution, self._clock() + lifetime)
        self._entries.move_to_end(subject)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
