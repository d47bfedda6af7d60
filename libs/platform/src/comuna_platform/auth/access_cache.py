"""A short-lived, bounded, single-flight cache of identity's answers, per subject.

Asking identity on every request would put it on the path of every call of every service; the
cache keeps each subject's resolution for `ttl` seconds (never past the earliest `valid_until`
of its assignments, so an assignment never outlives its end date here). Identity's
`identity.role_assignment.*` events drop a subject's entry at once (`invalidate`); a lost
event is bounded by the TTL, and a NATS reconnect (events may have been missed) drops
everything (`clear`).

When identity cannot answer (`Unavailable`: down, slow, refusing), an answer that expired less
than `stale_seconds` ago still serves (stale-if-error): on voting day a table officer keeps
voting through an identity restart. It never outlives an assignment's end date or an
invalidation, so a revocation identity announced still applies at once; only a revocation whose
event was lost while identity is also down can lag, by at most the TTL plus `stale_seconds`.

Concurrent misses for one subject share one call (single flight). An invalidation while that
call is in flight detaches it: its answer may predate the change, so it serves only the
requests already waiting for it and is never stored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from comuna_platform.errors import Unavailable

from .access import Resolution

Loader = Callable[[str], Awaitable[Resolution]]

log = logging.getLogger(__name__)

# How long a stand-in answer serves before identity is asked again.
_RETRY_SECONDS = 1.0

# Enough for every staff member active in a few minutes; beyond it the least recently used go.
DEFAULT_MAX_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class _Entry:
    resolution: Resolution
    # Fresh until `expires_at`; may stand in for an unreachable identity until `stale_until`.
    expires_at: float
    stale_until: float


class AccessCache:
    def __init__(
        self,
        load: Loader,
        *,
        ttl: float,
        stale_seconds: float = 0.0,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if ttl < 0:
            raise ValueError("ttl must not be negative")
        if stale_seconds < 0:
            raise ValueError("stale_seconds must not be negative")
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._load = load
        self._ttl = ttl
        self._stale_seconds = stale_seconds
        self._max_entries = max_entries
        self._clock = clock
        self._now = now
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._in_flight: dict[str, asyncio.Task[Resolution]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, subject: str) -> Resolution:
        entry = self._entries.get(subject)
        stale: _Entry | None = None
        if entry is not None:
            now = self._clock()
            if now < entry.expires_at:
                self._entries.move_to_end(subject)
                return entry.resolution
            if now < entry.stale_until:
                stale = entry
            else:
                del self._entries[subject]
        task = self._in_flight.get(subject)
        if task is None:
            task = asyncio.ensure_future(self._fill(subject))
            self._in_flight[subject] = task
        try:
            # Shielded: a caller that goes away (client disconnect) does not cancel the call
            # the other waiters share.
            return await asyncio.shield(task)
        except Unavailable:
            stand_in = self._stand_in(subject, stale)
            if stand_in is None:
                raise
            return stand_in

    def _stand_in(self, subject: str, stale: _Entry | None) -> Resolution | None:
        """The stale answer for `subject` while identity cannot answer; None if there is none,
        an invalidation dropped it meanwhile, or it is past its bound. The next attempt waits a
        second: requests in between are served without a doomed call each."""
        current = self._entries.get(subject)
        now = self._clock()
        if stale is None or current is None or current.resolution is not stale.resolution or now >= stale.stale_until:
            return None
        if current.expires_at <= now:
            self._entries[subject] = _Entry(
                stale.resolution, min(now + _RETRY_SECONDS, stale.stale_until), stale.stale_until
            )
            log.warning(
                "identity unavailable; a recent access answer stands in",
                extra={"stale_for_s": round(now - stale.expires_at, 1)},
            )
        return stale.resolution

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
        lifetime, stale_lifetime = self._ttl, self._ttl + self._stale_seconds
        ends = [a.valid_until for a in resolution.assignments if a.valid_until is not None]
        if ends:
            until_end = (min(ends) - self._now()).total_seconds()
            lifetime, stale_lifetime = min(lifetime, until_end), min(stale_lifetime, until_end)
        if lifetime <= 0:
            # Nothing fresh to keep; an older entry must not stand in for this answer either.
            self._entries.pop(subject, None)
            return
        now = self._clock()
        self._entries[subject] = _Entry(resolution, now + lifetime, now + stale_lifetime)
        self._entries.move_to_end(subject)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
