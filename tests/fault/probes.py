"""What the fault scenarios look at from outside the services: their databases, JetStream's
consumer state and `/readyz`, plus the database locks that freeze a service mid-transaction.

Each probe opens its own short connection, so probes keep working across a PostgreSQL or NATS
restart. Database access is by the superuser of the embedded cluster, read-only except for locks.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
import httpx
import nats

from comuna_devstack.stack import Stack

T = TypeVar("T")


class Deadline(AssertionError):
    """A polled condition did not come true in time (the message says what and what was seen)."""


def poll_until(what: str, probe: Callable[[], T | None], *, timeout: float, interval: float = 0.05) -> T:
    """Poll `probe` until it returns something other than None/False; raise `Deadline` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            raise Deadline(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def _asyncpg_dsn(stack: Stack, service: str) -> str:
    return stack.database_url(service).replace("postgresql+asyncpg://", "postgresql://")


def db_value(stack: Stack, service: str, sql: str, *args: Any) -> Any:
    """One value from `service`'s database."""

    async def query() -> Any:
        conn = await asyncpg.connect(_asyncpg_dsn(stack, service), timeout=5)
        try:
            return await conn.fetchval(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(query())


def lock_waiters(stack: Stack, service: str) -> int:
    """How many of `service`'s sessions are waiting for a lock (i.e. frozen by `hold_lock`)."""
    return int(
        db_value(
            stack,
            service,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
        )
    )


class _LoopThread:
    """An event loop in a daemon thread, for a connection that must outlive one call."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="db-lock", daemon=True)
        self._thread.start()

    def run(self, coroutine: Awaitable[T], timeout: float = 30.0) -> T:
        async def wrapped() -> T:
            return await coroutine

        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


@contextmanager
def hold_lock(stack: Stack, service: str, statement: str, *args: Any) -> Iterator[None]:
    """Run `statement` (a LOCK or SELECT ... FOR UPDATE) in an open transaction of `service`'s
    database and keep it until the block ends: whoever needs that lock waits mid-transaction.

    Returns once the lock is held, so at that point every transaction that held a conflicting
    lock has finished.
    """
    runner = _LoopThread()
    conn: Any = None
    try:
        conn = runner.run(asyncpg.connect(_asyncpg_dsn(stack, service), timeout=5))
        runner.run(conn.execute("BEGIN"))
        runner.run(conn.execute(statement, *args))
        yield
    finally:
        if conn is not None:
            try:
                runner.run(conn.close(timeout=5))  # ends the transaction: the lock is released
            except Exception:
                conn.terminate()
        runner.close()


def freeze_consumers(stack: Stack, service: str) -> AbstractContextManager[None]:
    """Every consumer of `service` waits at its next inbox insert, inside its transaction."""
    # SHARE conflicts with the ROW EXCLUSIVE lock that an INSERT takes.
    return hold_lock(stack, service, "LOCK TABLE inbox_events IN SHARE MODE")


@dataclass(frozen=True)
class Backlog:
    """A durable consumer's state as JetStream reports it."""

    stream: str
    consumer: str
    pending: int  # not yet delivered
    ack_pending: int  # delivered, not yet acknowledged
    redelivered: int

    @property
    def drained(self) -> bool:
        return self.pending == 0 and self.ack_pending == 0

    def __str__(self) -> str:
        return (
            f"{self.stream}/{self.consumer}: {self.pending} not delivered, {self.ack_pending} unacknowledged,"
            f" {self.redelivered} redelivered"
        )


def consumer_backlogs(stack: Stack) -> list[Backlog]:
    """State of every durable consumer on every stream (from NATS directly, not the proxy)."""

    async def query() -> list[Backlog]:
        nc = await nats.connect(
            stack.nats_url,
            connect_timeout=2,
            max_reconnect_attempts=0,
            allow_reconnect=False,
            **stack.nats_options(),  # the read-only user: stream and consumer info, nothing else
        )
        try:
            js = nc.jetstream()
            found = []
            for info in await js.streams_info():
                stream = str(info.config.name)
                for consumer in await js.consumers_info(stream):
                    found.append(
                        Backlog(
                            stream,
                            consumer.name,
                            consumer.num_pending or 0,
                            consumer.num_ack_pending or 0,
                            consumer.num_redelivered or 0,
                        )
                    )
            return found
        finally:
            await nc.close()

    return asyncio.run(query())


def stream_last_seq(stack: Stack, stream: str) -> int:
    async def query() -> int:
        nc = await nats.connect(
            stack.nats_url,
            connect_timeout=2,
            max_reconnect_attempts=0,
            allow_reconnect=False,
            **stack.nats_options(),  # the read-only user: stream and consumer info, nothing else
        )
        try:
            return int((await nc.jetstream().stream_info(stream)).state.last_seq)
        finally:
            await nc.close()

    return asyncio.run(query())


def readyz(stack: Stack, service: str) -> tuple[int, str]:
    """(status, body) of the service's /readyz; status 0 if it does not answer."""
    try:
        response = httpx.get(f"{stack.config.http_url(service)}/readyz", timeout=2.0)
    except httpx.HTTPError as exc:
        return 0, type(exc).__name__
    return response.status_code, response.text[:300]
