"""Group commit: single writes from concurrent requests, stored in one transaction per batch.

A transaction per request pays a pool checkout, BEGIN, COMMIT (a WAL flush) and, where the
write is appended to a transparency log, that log's row lock, which serializes every writer.
A `GroupCommit` queues the items submitted, hands up to `max_size` of them at once to `write`
(which stores them in one transaction and returns one result each, in order), at most
`writers` batches at a time, and answers each caller only after its batch returned, that is
after the commit. Under light load an item is written at once and alone (no added latency);
under heavy load items queue while the batches in flight run, so each batch takes many: the
batch grows with the load, as in the `Coalescer` of reads.

A failed `write` fails every item of its batch with the same error: the batch was one
transaction, so none of it was stored and each caller may retry.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Write = Callable[[Sequence[T]], Awaitable[Sequence[R]]]


class GroupCommit(Generic[T, R]):
    def __init__(self, write: Write[T, R], *, max_size: int = 500, writers: int = 2) -> None:
        if max_size < 1 or writers < 1:
            raise ValueError("a group commit needs max_size >= 1 and writers >= 1")
        self._write = write
        self._max_size = max_size
        self._writers = writers
        self._queue: deque[tuple[T, asyncio.Future[R]]] = deque()
        self._in_flight: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        """Store `item` with whatever else is waiting; its result once the batch committed."""
        answer: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, answer))
        self._kick()
        # Shielded: a caller that goes away (client disconnect) must not cancel the batch of others.
        return await asyncio.shield(answer)

    def _kick(self) -> None:
        while self._queue and len(self._in_flight) < self._writers:
            batch = [self._queue.popleft() for _ in range(min(self._max_size, len(self._queue)))]
            task = asyncio.ensure_future(self._run(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._kick()

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._write([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a group commit's write answered {len(results)} results for {len(batch)} items")
        except asyncio.CancelledError:  # the process is shutting down: nobody waits for an answer
            for _, answer in batch:
                answer.cancel()
            raise
        except Exception as error:  # every caller of this batch must get an answer
            for _, answer in batch:
                if not answer.done():
                    answer.set_exception(error)
                    # Marked retrieved: a caller that went away must not leave a warning behind.
                    answer.exception()
            return
        for (_, answer), result in zip(batch, results, strict=True):
            if not answer.done():
                answer.set_result(result)
