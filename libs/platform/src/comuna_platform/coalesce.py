"""Coalesced reads: concurrent requests for single keys answered by one query for all of them.

The hot paths of voting day (a ballot's roll entry) would otherwise pay a database round trip,
a pool checkout and a statement per request; under load most of that is per-call overhead in
this process, not work in PostgreSQL. A `Coalescer` queues the keys asked for, runs `fetch`
for up to `max_keys` of them at once, at most `max_in_flight` fetches at a time, and answers
each caller from the result. Under light load a key is fetched at once and alone (no added
latency); under heavy load keys queue while the fetches in flight run, so each fetch takes
many: the batch grows with the load.

A failed fetch fails every caller of that fetch with the same error, and nothing is cached:
each call reads what the database has when its fetch runs.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

Fetch = Callable[[Sequence[K]], Awaitable[Mapping[K, V]]]


class Coalescer(Generic[K, V]):
    def __init__(self, fetch: Fetch[K, V], *, max_keys: int = 500, max_in_flight: int = 2) -> None:
        if max_keys < 1 or max_in_flight < 1:
            raise ValueError("a coalescer needs max_keys >= 1 and max_in_flight >= 1")
        self._fetch = fetch
        self._max_keys = max_keys
        self._max_in_flight = max_in_flight
        self._waiting: dict[K, asyncio.Future[V | None]] = {}
        self._in_flight: set[asyncio.Task[None]] = set()

    async def get(self, key: K) -> V | None:
        """The value `fetch` gives for `key`, None if it gives none."""
        answer = self._waiting.get(key)
        if answer is None:
            # The same key asked twice before its fetch (a retried request) shares one answer.
            answer = asyncio.get_running_loop().create_future()
            self._waiting[key] = answer
            self._kick()
        # Shielded: a caller that goes away must not cancel the answer others may share.
        return await asyncio.shield(answer)

    def _kick(self) -> None:
        while self._waiting and len(self._in_flight) < self._max_in_flight:
            keys = list(itertools.islice(self._waiting, self._max_keys))
            batch = {key: self._waiting.pop(key) for key in keys}
            task = asyncio.ensure_future(self._run(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._kick()

    async def _run(self, batch: dict[K, asyncio.Future[V | None]]) -> None:
        try:
            found = await self._fetch(list(batch))
        except Exception as error:  # every caller of this fetch must get an answer
            for answer in batch.values():
                if not answer.done():
                    answer.set_exception(error)
                    # Marked retrieved: a caller that went away must not leave a warning behind.
                    answer.exception()
            return
        for key, answer in batch.items():
            if not answer.done():
                answer.set_result(found.get(key))
