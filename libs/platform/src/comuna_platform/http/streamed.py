"""Request bodies a route reads as a stream, unread by the edge (`edges.is_streamed_body`):
bulk imports (`...:import`) and file uploads (`...:upload`). The edge refuses only a declared
length over `max_import_bytes`; the route counts what actually arrives against its own limit."""

from __future__ import annotations

from collections.abc import AsyncIterator

from comuna_platform.errors import ProblemError


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
