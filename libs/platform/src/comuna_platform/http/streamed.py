"""Bodies that stream.

- In: request bodies a route reads as a stream, unread by the edge (`edges.is_streamed_body`):
  bulk imports (`...:import`) and file uploads (`...:upload`). The edge refuses only a declared
  length over `max_import_bytes`; the route counts what actually arrives against its own limit.
- Out: streamed downloads (open-data exports), a few at a time per process.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import Request

from comuna_platform.errors import ProblemError, Unavailable


class BodyTooLarge(ProblemError):
    status = 413
    code = "payload_too_large"
    title = "Payload too large"


async def capped(chunks: AsyncIterator[bytes], limit: int, *, what: str = "the request body") -> AsyncIterator[bytes]:
    """`chunks` as they come, until more than `limit` bytes arrived: then 413 `payload_too_large`."""
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"{what} exceeds {limit} bytes")
        yield chunk


async def read_capped(chunks: AsyncIterator[bytes], limit: int, *, what: str = "the request body") -> bytes:
    """The whole body, at most `limit` bytes (413 beyond)."""
    return b"".join([chunk async for chunk in capped(chunks, limit, what=what)])


# Downloads streaming at once from one process (each holds a database connection meanwhile).
MAX_DOWNLOADS = 4
DOWNLOADS_RETRY_AFTER_SECONDS = 5


def download_slots(request: Request, limit: int = MAX_DOWNLOADS) -> asyncio.Semaphore:
    """The process's slots for streamed downloads (exports), or 503 `exports_busy` (with
    Retry-After) when all are taken: slow downloads must not take the connections writes need.
    The caller holds the semaphore while it streams."""
    slots: asyncio.Semaphore | None = getattr(request.app.state, "download_slots", None)
    if slots is None:
        slots = request.app.state.download_slots = asyncio.Semaphore(limit)
    if slots.locked():
        raise Unavailable(
            "too many exports are streaming right now; retry shortly",
            code="exports_busy",
            retry_after=DOWNLOADS_RETRY_AFTER_SECONDS,
        )
    return slots
