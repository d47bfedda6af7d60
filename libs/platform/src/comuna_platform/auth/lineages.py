"""Where a territory sits, for scope checks: its `Lineage` (root..itself) on a day.

Identity computes lineages from its own register (a recursive query over the versions in
force). Every other service asks identity's `GetTerritory` (the ancestors by the parent links in
force on `as_of`) through `GrpcTerritoryLineages`, which keeps answers briefly and forgets them
all on any `identity.territory.*` event (a unit created, moved, renamed, promoted, dissolved).
Identity unreachable is a 503 for the request, never "allowed".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
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


class TerritoryLineages(Protocol):
    async def of(self, code: str, *, day: date | None = None) -> Lineage:
        """The lineage of the territory `code` on `day` (today when None); NotFound when it
        does not exist then."""
        ...


def territory_not_found(code: str) -> NotFound:
    return NotFound(f"territory {code} does not exist", code="territory_not_found")


def today() -> date:
    return datetime.now(UTC).date()


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
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # Not closed here: whoever built the channel closes it (a runtime shares one per process).
        self.channel = channel
        self._stub = identity_pb2_grpc.IdentityServiceStub(channel)  # type: ignore[no-untyped-call]
        self._tokens = tokens
        self._timeout = timeout
        self._ttl = cache_seconds
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[tuple[str, date], tuple[Lineage, float]] = OrderedDict()
        # Bumped by every invalidation: an answer fetched across one is not stored.
        self._generation = 0
        self.listening = False

    def __len__(self) -> int:
        return len(self._entries)

    async def of(self, code: str, *, day: date | None = None) -> Lineage:
        key = (code, day or today())
        entry = self._entries.get(key)
        if entry is not None and self._clock() < entry[1]:
            self._entries.move_to_end(key)
            return entry[0]
        generation = self._generation
        lineage = await self._fetch(*key)
        if generation == self._generation and self._ttl > 0:
            self._entries[key] = (lineage, self._clock() + self._ttl)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return lineage

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
