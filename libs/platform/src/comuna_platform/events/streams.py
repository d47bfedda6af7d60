"""JetStream connection and the one-stream-per-service layout."""

from __future__ import annotations

import asyncio
import logging

import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from comuna_platform.events.registry import stream_name

log = logging.getLogger(__name__)

# Publishing with the same Nats-Msg-Id inside this window is de-duplicated by the server.
DUPLICATE_WINDOW_SECONDS = 600.0


async def connect(url: str, *, name: str) -> NATS:
    return await nats.connect(url, name=name, max_reconnect_attempts=-1, reconnect_time_wait=0.5, connect_timeout=5)


async def ensure_stream(js: JetStreamContext, service: str) -> None:
    """Create or update the service's own stream (`<SERVICE>`, subjects `<service>.>`)."""
    name = stream_name(service)
    config = StreamConfig(
        name=name,
        subjects=[f"{service}.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
        max_age=0,
    )
    try:
        await js.stream_info(name)
        await js.update_stream(config)
    except NotFoundError:
        await js.add_stream(config)


async def wait_for_stream(js: JetStreamContext, name: str, *, stop: asyncio.Event) -> bool:
    """Wait until another service has created its stream; False if asked to stop first."""
    while not stop.is_set():
        try:
            await js.stream_info(name)
            return True
        except NotFoundError:
            log.info("waiting for stream", extra={"stream": name})
            try:
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            except TimeoutError:
                pass
    return False
