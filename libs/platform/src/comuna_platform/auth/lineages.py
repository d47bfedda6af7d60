"""Where a territory sits, for scope checks: its `Lineage` (root..itself) on a day.

Identity computes lineages from its own register (a recursive query over the versions in
force). Every other service asks identity's `GetTerritory` (the ancestors by the parent links in
force on `as_of`) through `GrpcTerritoryLineages`, which keeps answers briefly and forgets them
all on any `identity.territory.*` event (a unit created, moved, renamed, promoted, dissolved).

When identity cannot answer, a lineage that expired less than `stale_seconds` ago still serves
(stale-if-error, as the access cache does): a table officer's ballots go on through an identity
restart. An invalidation drops it at once, so a change identity announced still applies.
Identity unreachable with nothing recent to stand in is a 503 for the request, never "allowed".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Protocol

import grpc
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from comuna.identity.v1 import identity_pb2, identity_pb2_grpc
from comuna_platform.errors import NotFound, Unavailable

from .access import Lineage
from .errors import TokenSourceError
from .identity_errors import Invalidatable, identity_unavailable

log = logging.getLogger(__name__)

# Every territory event: `identity.territory.created`, `.changed`, ...
INVALIDATION_SUBJECTS = "identity.territory.>"
DEFAULT_MAX_ENTRIES = 50_000

# How long a stand-in lineage serves before identity is asked again.
_RETRY_SECONDS = 1.0


class TerritoryLineages(Protocol):
    async def of(self, code: str, *, day: date | None = None) -> Lineage:
        """The lineage of the territory `code` on `day` (today when None); NotFound when it
        does not exist then."""
        ...


def territory_not_found(code: str) -> NotFound:
    return NotFound(f"territory {code} does not exist", code="territory_not_found")


def today() -> date:
    return datetime.now(UTC).date()


@dataclass(frozen=True, slots=True)
class _Entry:
    lineage: Lineage
    # Fresh until `expires_at`; may stand in for an unreachable identity until `stale_until`.
    expires_at: float
    stale_until: float


class GrpcTerritoryLineages:
    """`TerritoryLineages` through identity's `GetTerritory`, cached per (code, day), over
    `channel` (which its owner closes: a runtime shares one channel to identity)."""

    def __init__(
        self,
        channel: grpc.aio.Channel,
        *,
        tokens: Invalidatable | None = None,
        timeout: float = 5.0,
        cache_seconds: float = 30.0,
        stale_seconds: float = 0.0,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # Not closed here: whoever built the channel closes it (a runtime shares one per process).
        self.channel = channel
        self._stub = identity_pb2_grpc.IdentityServiceStub(channel)  # type: ignore[no-untyped-call]
        self._tokens = tokens
        self._timeout = timeout
        self._ttl = cache_seconds
        self._stale_seconds = stale_seconds
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[tuple[str, date], _Entry] = OrderedDict()
        # Bumped by every invalidation: an answer fetched across one is not stored.
        self._generation = 0
        self.listening = False

    def __len__(self) -> int:
        return len(self._entries)

    async def of(self, code: str, *, day: date | None = None) -> Lineage:
        key = (code, day or today())
        entry = self._entries.get(key)
        if entry is not None and self._clock() < entry.expires_at:
            self._entries.move_to_end(key)
            return entry.lineage
        generation = self._generation
        try:
            lineage = await self._fetch(*key)
        except Unavailable:
            stand_in = self._stand_in(key, entry, generation)
            if stand_in is None:
                raise
            return stand_in
        if generation == self._generation and self._ttl > 0:
            now = self._clock()
            self._entries[key] = _Entry(lineage, now + self._ttl, now + self._ttl + self._stale_seconds)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return lineage

    def _stand_in(self, key: tuple[str, date], stale: _Entry | None, generation: int) -> Lineage | None:
        """The expired lineage of `key` while identity cannot answer; None if there is none, an
        invalidation came meanwhile, or it is past its bound. The next attempt waits a second:
        requests in between are served without a doomed call each."""
        now = self._clock()
        if stale is None or generation != self._generation or now >= stale.stale_until:
            return None
        current = self._entries.get(key)
        if current is stale:
            self._entries[key] = _Entry(stale.lineage, min(now + _RETRY_SECONDS, stale.stale_until), stale.stale_until)
            log.warning(
                "identity unavailable; a recent territory lineage stands in",
                extra={"stale_for_s": round(now - stale.expires_at, 1)},
            )
        return stale.lineage

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()

    async def _fetch(self, code: str, day: date) -> Lineage:
        request = identity_pb2.GetTerritoryRequest(code=code, as_of=day.isoformat())
        try:
            response = await self._stub.GetTerritory(request, timeout=self._timeout)
        except (grpc.aio.AioRpcError, TokenSourceError) as exc:
            if isinstance(exc, grpc.aio.AioRpcError) and exc.code() == grpc.StatusCode.NOT_FOUND:
                raise territory_not_found(code) from exc
            raise identity_unavailable(
                exc,
                method="GetTerritory",
                unable="identity could not say where the territory sits",
                tokens=self._tokens,
            ) from exc
        if response.territory.code != code:
            log.error("identity answered GetTerritory for another territory")
            raise Unavailable("identity answered for another territory", code="identity_bad_answer")
        return Lineage((*(a.code for a in response.ancestors), code))

    # Invalidation -----------------------------------------------------------------------

    async def on_message(self, msg: Msg) -> None:
        # Any change may move a whole subtree: forget every lineage.
        self.clear()
        log.debug("territory lineages dropped", extra={"nats_subject": msg.subject})

    def on_reconnect(self) -> None:
        self.clear()

    async def watch_invalidations(self, nc: NATS, stop: asyncio.Event) -> None:
        subscription = await nc.subscribe(INVALIDATION_SUBJECTS, cb=self.on_message)
        try:
            await nc.flush()
            self.clear()
            self.listening = True
            await stop.wait()
        finally:
            self.listening = False
            try:
                await subscription.unsubscribe()
            except Exception as exc:  # the connection may be closing already
                log.debug("unsubscribe failed: %s", exc)
