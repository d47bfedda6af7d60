"""JetStream connection and the one-stream-per-service layout."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from comuna_platform.events.registry import stream_name
from comuna_platform.settings import ServiceSettings

log = logging.getLogger(__name__)

# Publishing with the same Nats-Msg-Id inside this window is de-duplicated by the server.
DUPLICATE_WINDOW_SECONDS = 600.0


def service_inbox_prefix(service: str) -> str:
    """Where a service's replies arrive. Each service has its own, so NATS permissions can let
    it read its replies (publish acks, fetched messages) and nobody else's."""
    return f"_INBOX_{service}"


def auth_options(
    *, user: str | None = None, password: str | None = None, credentials_file: str | None = None
) -> dict[str, str]:
    """nats-py options for a user and password, a credentials file (JWT + NKey seed, `.creds`)
    or a bare NKey seed file; none for an anonymous connection."""
    if credentials_file is not None:
        # A creds file starts with the user's JWT; a seed file holds only the seed.
        is_creds = "BEGIN NATS USER JWT" in Path(credentials_file).read_text()
        return {"user_credentials": credentials_file} if is_creds else {"nkeys_seed": credentials_file}
    if user is not None:
        return {"user": user, "password": password or ""}
    return {}


ReconnectedCallback = Callable[[], Awaitable[None]]


async def connect(
    url: str,
    *,
    name: str,
    inbox_prefix: str = "_INBOX",
    reconnected_cb: ReconnectedCallback | None = None,
    **auth: str,
) -> NATS:
    """A connection that reconnects for ever; `auth` from `auth_options`."""
    options: dict[str, Any] = {} if reconnected_cb is None else {"reconnected_cb": reconnected_cb}
    return await nats.connect(
        url,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        connect_timeout=5,
        inbox_prefix=inbox_prefix,
        **options,
        **auth,
    )


async def connect_service(
    service: str, settings: ServiceSettings, *, reconnected_cb: ReconnectedCallback | None = None
) -> NATS:
    """The service's own connection: its NATS identity from its settings, its own inbox prefix
    (`reconnected_cb` runs after each reconnect)."""
    auth = auth_options(
        user=settings.nats_user,
        password=settings.nats_password.get_secret_value() if settings.nats_password else None,
        credentials_file=settings.nats_credentials_file,
    )
    return await connect(
        settings.nats_url,
        name=f"comuna-{service}",
        inbox_prefix=service_inbox_prefix(service),
        reconnected_cb=reconnected_cb,
        **auth,
    )


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
