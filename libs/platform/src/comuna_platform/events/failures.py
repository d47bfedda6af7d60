"""How a consumer tells a failure worth waiting out from one that needs a person.

Transient: a dependency is unavailable (PostgreSQL down or restarting, a connection dropped, a
serialization conflict, NATS or a peer service unreachable). Retrying the same message later will
work, so it is retried without limit and never counts towards parking.

Permanent: everything else the handler raises. Redelivering may not help; after a bounded number
of deliveries the message is parked. `UnprocessableEvent` says at once that no retry can help.
"""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg.exceptions
import nats.errors
from sqlalchemy import exc as sa_exc

from comuna_platform.errors import Unavailable


class EventNotYetApplicable(Exception):
    """Raised by a handler for an event that depends on another one not applied yet (e.g. one
    being redelivered after a crash, behind it in time though before it in the stream): the
    message is redelivered later, again and again, and never parked for it. The consumer is
    not held meanwhile, so the event it waits for can arrive."""


class UnprocessableEvent(ValueError):
    """Raised by a handler for an event that can never be applied (e.g. ids that are not ids):
    the message is parked at once instead of being retried."""


_TRANSIENT: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    # Pool exhausted for `pool_timeout` seconds: the database is slow or unreachable.
    sa_exc.TimeoutError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    # ConnectionRefusedError, ConnectionResetError, socket timeouts, DNS failures...
    OSError,
    TimeoutError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.NoServersError,
    nats.errors.StaleConnectionError,
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    # A peer service (gRPC) that could not be reached, as the domain reports it.
    Unavailable,
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        # Explicit causes and SQLAlchemy's wrapped DBAPI error; not the implicit __context__,
        # which may be an unrelated error the handler had already dealt with.
        orig = getattr(current, "orig", None)
        pending += [current.__cause__, orig if isinstance(orig, BaseException) else None]


def is_transient(exc: BaseException) -> bool:
    """True when `exc`, or anything that caused it, says a dependency is unavailable."""
    for link in _chain(exc):
        if isinstance(link, UnprocessableEvent):
            return False
        if isinstance(link, _TRANSIENT):
            return True
        if isinstance(link, sa_exc.DBAPIError) and link.connection_invalidated:
            return True
    return False
