"""Durable pull consumers with an inbox: each event takes effect at most once.

For every message the consumer opens one transaction, inserts (consumer, event id) into the
inbox and, only if that row is new, runs the handler in the same transaction. A redelivery
(after a crash before the ack, or a republish) finds the row and is acknowledged without a
second effect. Handler failures roll everything back and the message is redelivered later.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from google.protobuf.message import DecodeError, Message
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind
from prometheus_client import Counter
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from comuna_platform.db import Database
from comuna_platform.events.envelope import Envelope
from comuna_platform.events.registry import contract_of
from comuna_platform.events.streams import wait_for_stream
from comuna_platform.events.tables import inbox_table

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

EVENTS_HANDLED = Counter("comuna_events_handled_total", "Events consumed", ["consumer", "event_type", "outcome"])

M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class ReceivedEvent(Generic[M]):
    envelope: Envelope
    message: M
    subject: str


@dataclass(frozen=True)
class EventHandler(Generic[M]):
    """Decode `message_type` payloads and apply them with `apply(session, event)`."""

    message_type: type[M]
    apply: Callable[[AsyncSession, ReceivedEvent[M]], Awaitable[None]]

    @property
    def event_type(self) -> str:
        return str(self.message_type.DESCRIPTOR.full_name)


class EventConsumer:
    # A poison message is given up after this many deliveries (and logged loudly).
    MAX_DELIVER = 20

    def __init__(
        self,
        db: Database,
        js: JetStreamContext,
        *,
        name: str,
        handlers: list[EventHandler[Any]],
        batch_size: int = 50,
    ) -> None:
        """A durable consumer named `name` of the events `handlers` decode.

        The stream and the filter subjects come from the registry: a consumer reads one
        producer's stream, so every handled message type must belong to the same service.
        """
        if not handlers:
            raise ValueError(f"consumer {name} handles no event type")
        contracts = [contract_of(h.message_type) for h in handlers]
        streams = {c.stream for c in contracts}
        if len(streams) != 1:
            raise ValueError(f"consumer {name} mixes streams {sorted(streams)}; declare one consumer per stream")
        self.name = name
        self._db = db
        self._js = js
        self._stream = streams.pop()
        self._filter_subjects = sorted({c.subject for c in contracts})
        self._handlers: Mapping[str, EventHandler[Any]] = {h.event_type: h for h in handlers}
        self._batch_size = batch_size

    async def run(self, stop: asyncio.Event) -> None:
        if not await wait_for_stream(self._js, self._stream, stop=stop):
            return
        subscription = await self._js.pull_subscribe(
            self._filter_subjects[0],
            durable=self.name,
            stream=self._stream,
            config=ConsumerConfig(
                filter_subjects=self._filter_subjects if len(self._filter_subjects) > 1 else None,
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=30,
                max_deliver=self.MAX_DELIVER,
                backoff=[0.2, 1, 5, 15],
            ),
        )
        try:
            while not stop.is_set():
                try:
                    messages = await subscription.fetch(self._batch_size, timeout=1.0)
                except (TimeoutError, NatsTimeoutError):
                    continue
                except Exception:
                    log.exception("fetch failed", extra={"consumer": self.name})
                    await asyncio.sleep(1.0)
                    continue
                for msg in messages:
                    await self.handle(msg)
        finally:
            # Without this, draining the connection at shutdown waits for a reader that is gone.
            await subscription.unsubscribe()

    async def handle(self, msg: Msg) -> None:
        headers = dict(msg.headers or {})
        try:
            envelope = Envelope.from_headers(headers)
        except (KeyError, ValueError) as exc:
            log.error("dropping malformed event: %s", exc, extra={"consumer": self.name, "subject": msg.subject})
            EVENTS_HANDLED.labels(self.name, "malformed", "dropped").inc()
            await msg.term()
            return
        handler = self._handlers.get(envelope.event_type)
        if handler is None:
            # Not ours to act on; other event types share the subject space.
            await msg.ack_sync()
            return
        try:
            message = handler.message_type.FromString(msg.data)
        except DecodeError:
            log.error("dropping undecodable event", extra={"consumer": self.name, "event_id": str(envelope.event_id)})
            EVENTS_HANDLED.labels(self.name, envelope.event_type, "dropped").inc()
            await msg.term()
            return
        context = propagate.extract(headers)
        with tracer.start_as_current_span(
            f"consume {msg.subject}",
            context=context,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "nats",
                "messaging.destination.name": msg.subject,
                "messaging.message.id": str(envelope.event_id),
            },
        ):
            try:
                applied = await self._apply_once(handler, ReceivedEvent(envelope, message, msg.subject))
            except Exception:
                log.exception(
                    "event handler failed; will be redelivered",
                    extra={"consumer": self.name, "event_id": str(envelope.event_id)},
                )
                EVENTS_HANDLED.labels(self.name, envelope.event_type, "failed").inc()
                await msg.nak(delay=1.0)
                return
        EVENTS_HANDLED.labels(self.name, envelope.event_type, "applied" if applied else "duplicate").inc()
        await msg.ack_sync()

    async def _apply_once(self, handler: EventHandler[Any], event: ReceivedEvent[Any]) -> bool:
        async with self._db.transaction() as session:
            inserted = await session.execute(
                insert(inbox_table)
                .values(consumer=self.name, event_id=event.envelope.event_id, event_type=event.envelope.event_type)
                .on_conflict_do_nothing()
                .returning(inbox_table.c.event_id)
            )
            if inserted.first() is None:
                return False
            await handler.apply(session, event)
            return True
