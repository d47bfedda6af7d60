"""Read an async stream ahead of its consumer, so that producing and consuming overlap.

A roll load reads a gRPC stream whose every chunk costs identity a query, and stores each
chunk with a COPY into consultations' database: one after the other, each side waits for the
other. With a few chunks read ahead the next query runs while the current COPY does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator
from typing import TypeVar

T = TypeVar("T")

_END = object()


async def read_ahead(source: AsyncIterable[T], depth: int = 2) -> AsyncIterator[T]:
    """The items of `source` in order, with up to `depth` read before they are asked for. An
    error of `source` is raised where its item would have been; leaving early cancels the reader."""
    if depth < 1:
        raise ValueError("depth must be at least 1")
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=depth)

    async def pump() -> None:
        try:
            async for item in source:
                await queue.put(item)
        except Exception as exc:  # handed to the consumer, raised there
            await queue.put(_Failed(exc))
            return
        await queue.put(_END)

    reader = asyncio.create_task(pump())
    try:
        while True:
            item = await queue.get()
            if item is _END:
                break
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]
        await reader
    finally:
        if not reader.done():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error
