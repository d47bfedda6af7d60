"""Durable pull consumers with an inbox: each event takes effect at most once, and none is lost.

For every message the consumer checks it belongs where it arrived (a known event type, on the
subject and stream of its contract, stamped with its producer's `ce-source`), decodes it, and
opens one unit of work: insert (consumer, event id) into the inbox and, only if that row is new,
run the handler in the same transaction. A redelivery (after a crash before the ack, or a
republish) finds the row and is acknowledged without a second effect.

Failures:
- transient (database or NATS unavailable, see `failures.is_transient`): the message stays in
  hand and is retried with back-off until the dependency is back, with `in_progress` pings so
  JetStream does not redeliver it meanwhile. Never counts towards parking.
- the handler fails otherwise: `nak` with a delay; on the `max_deliveries`-th delivery the
  message is parked (`parking.park`) and acknowledged.
- the message can never be applied (malformed envelope, undecodable payload, wrong source,
  `UnprocessableEvent`): parked at once and acknowledged.

The loop survives lost acknowledgements and NATS restarts (it re-binds after a reconnect and
re-creates its durable if the server lost it); anything else it raises is for the supervisor
(`comuna_platform.supervision`), which logs it and restarts the consumer with back-off.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from google.protobuf.message import DecodeError, Message
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import APIError, NotFoundError
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind
from prometheus_client import Counter
from sqlalchemy.dialects.postgresql import insert

from comuna_platform.db import Database
from comuna_platform.events.envelope import Envelope
from comuna_platform.events.failures import EventNotYetApplicable, UnprocessableEvent, is_transient
from comuna_platform.events.parking import (
    REPLAYED_TOTAL,
    Delivery,
    ParkedMessage,
    ParkReason,
    get_parked,
    mark_replayed,
    park,
)
from comuna_platform.events.registry import contract_for_type, contract_of
from comuna_platform.events.tables import inbox_table
from comuna_platform.supervision import Backoff

if TYPE_CHECKING:
    from comuna_platform.uow import UnitOfWork

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

EVENTS_HANDLED = Counter("comuna_events_handled_total", "Events consumed", ["consumer", "event_type", "outcome"])
EVENT_RETRIES = Counter(
    "comuna_event_retries_total", "Attempts to apply an event that will be retried", ["consumer", "kind"]
)

M = TypeVar("M", bound=Message)
T = TypeVar("T")


@dataclass(frozen=True)
class ReceivedEvent(Generic[M]):
    envelope: Envelope
    message: M
    subject: str


@dataclass(frozen=True)
class EventHandler(Generic[M]):
    """Decode `message_type` payloads and apply them with `apply(uow, event)`.

    `uow` is the unit of work that also records the event in the inbox: whatever the handler
    writes (and stages) commits together with that row, or not at all.
    """

    message_type: type[M]
    apply: Callable[[UnitOfWork, ReceivedEvent[M]], Awaitable[None]]

    @property
    def event_type(self) -> str:
        return str(self.message_type.DESCRIPTOR.full_name)


@dataclass(frozen=True)
class ConsumerPolicy:
    """Delivery, retry and parking rules of a consumer (defaults suit production)."""

    # Deliveries whose handler failed (not transiently) after which the message is parked.
    max_deliveries: int = 5
    # How long JetStream waits for an ack before redelivering. Long enough for a whole batch
    # to be handled, so a healthy run has no redeliveries; held messages are kept alive with
    # `in_progress` pings, so no early redelivery ever counts as a delivery.
    ack_wait: float = 30.0
    # Delay before the next delivery after the n-th failed one (the last value repeats).
    redelivery_delays: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0)
    # Waits between attempts while a dependency is unavailable.
    transient_backoff: Backoff = field(default_factory=lambda: Backoff(initial=0.5, cap=30.0))
    # `/readyz` fails when no fetch (or server round trip) completed for this long.
    stall_seconds: float = 30.0
    batch_size: int = 50
    fetch_timeout: float = 1.0
    # While idle, confirm the server still answers (and still has the durable) this often.
    probe_seconds: float = 5.0
    max_ack_pending: int = 1000

    def redelivery_delay(self, delivered: int) -> float:
        return self.redelivery_delays[min(max(delivered, 1), len(self.redelivery_delays)) - 1]


class ConsumerStopping(Exception):
    """The service is stopping while a message was held for a retry; it stays unacknowledged."""


class ReplayRefused(Exception):
    """A parked message that cannot be replayed as it is (e.g. a forged source)."""


@dataclass(frozen=True)
class _Accepted:
    handler: EventHandler[Any]
    event: ReceivedEvent[Any]


@dataclass(frozen=True)
class _Rejected:
    reason: ParkReason
    error: str
    envelope: Envelope | None = None


class EventConsumer:
    def __init__(
        self,
        db: Database,
        js: JetStreamContext,
        *,
        name: str,
        handlers: list[EventHandler[Any]],
        policy: ConsumerPolicy | None = None,
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
        self.policy = policy or ConsumerPolicy()
        self._db = db
        self._js = js
        self.stream = streams.pop()
        self.filter_subjects = sorted({c.subject for c in contracts})
        self._handlers: Mapping[str, EventHandler[Any]] = {h.event_type: h for h in handlers}
        self._last_contact = time.monotonic()

    # --- health ---------------------------------------------------------------------------

    def health(self) -> str | None:
        """None while fetches complete; else why `/readyz` should fail."""
        silent = time.monotonic() - self._last_contact
        if silent > self.policy.stall_seconds:
            return f"no fetch completed for {silent:.0f} s"
        return None

    def _contact(self) -> None:
        self._last_contact = time.monotonic()

    # --- the loop ---------------------------------------------------------------------------

    def desired_config(self) -> ConsumerConfig:
        single = len(self.filter_subjects) == 1
        return ConsumerConfig(
            name=self.name,
            durable_name=self.name,
            filter_subject=self.filter_subjects[0] if single else None,
            filter_subjects=None if single else self.filter_subjects,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.policy.ack_wait,
            # JetStream never gives up on a message by itself: the consumer parks it instead.
            max_deliver=-1,
            max_ack_pending=self.policy.max_ack_pending,
        )

    async def ensure_durable(self) -> None:
        """Create the durable consumer, or update an existing one to the current config.

        (`pull_subscribe` would keep whatever config an existing durable was created with.)
        A change the server cannot apply in place is applied by re-creating the durable from
        the first unacknowledged message on; the inbox absorbs anything delivered twice.
        """
        config = self.desired_config()
        try:
            await self._js.add_consumer(self.stream, config)
            return
        except NotFoundError:
            raise
        except APIError as exc:
            log.warning("durable consumer cannot be updated in place; re-creating it: %s", exc, extra=self._extra())
        info = await self._js.consumer_info(self.stream, self.name)
        resume = (info.ack_floor.stream_seq or 0) + 1 if info.ack_floor is not None else 1
        await self._js.delete_consumer(self.stream, self.name)
        await self._js.add_consumer(
            self.stream, config.evolve(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=resume)
        )

    async def _bind(self) -> JetStreamContext.PullSubscription:
        await self.ensure_durable()
        subscription = await self._js.pull_subscribe_bind(durable=self.name, stream=self.stream)
        self._contact()
        return subscription

    def _reconnects(self) -> int:
        # nats-py counts reconnections on the client; the JetStream context keeps a reference.
        client = getattr(self._js, "_nc", None)
        stats = getattr(client, "stats", None) or {}
        return int(stats.get("reconnects", 0))

    async def run(self, stop: asyncio.Event) -> None:
        if not await self._wait_for_stream(stop):
            return
        reconnects = self._reconnects()
        subscription = await self._bind()
        try:
            while not stop.is_set():
                if self._reconnects() != reconnects:
                    # The server may have restarted (and lost the durable, or our pull requests).
                    log.info("NATS reconnected; re-binding the consumer", extra=self._extra())
                    reconnects = self._reconnects()
                    await _unsubscribe(subscription)
                    subscription = await self._bind()
                try:
                    messages = await subscription.fetch(self.policy.batch_size, timeout=self.policy.fetch_timeout)
                except (TimeoutError, NatsTimeoutError):
                    if await self._probe() == "gone":
                        await _unsubscribe(subscription)
                        subscription = await self._bind()
                    continue
                self._contact()
                await self._handle_batch(messages, stop)
        except ConsumerStopping:
            return
        finally:
            # Without this, draining the connection at shutdown waits for a reader that is gone.
            await _unsubscribe(subscription)

    async def _wait_for_stream(self, stop: asyncio.Event) -> bool:
        """Until the producer has created its stream; False if asked to stop first.

        The server answering "no such stream" is contact: a consumer waiting for a producer
        that starts later is not stalled (and `/readyz` must not say so).
        """
        while not stop.is_set():
            try:
                await self._js.stream_info(self.stream)
                return True
            except NotFoundError:
                self._contact()
                log.info("waiting for stream", extra=self._extra())
            try:
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            except TimeoutError:
                pass
        return False

    async def _probe(self) -> str:
        """After an empty fetch: does the server still answer, and still have our durable?"""
        if time.monotonic() - self._last_contact < self.policy.probe_seconds:
            return "ok"
        try:
            await self._js.consumer_info(self.stream, self.name, timeout=2.0)
        except NotFoundError:
            log.warning("durable consumer vanished from the server; re-creating it", extra=self._extra())
            return "gone"
        except Exception as exc:
            log.warning("NATS does not answer: %s", exc, extra=self._extra())
            return "unreachable"
        self._contact()
        return "ok"

    async def _handle_batch(self, messages: Sequence[Msg], stop: asyncio.Event) -> None:
        in_hand = list(messages)
        for msg in messages:
            await self.handle(msg, in_hand=in_hand, stop=stop)
            in_hand.remove(msg)

    # --- one message --------------------------------------------------------------------------

    async def handle(self, msg: Msg, *, in_hand: Sequence[Msg] = (), stop: asyncio.Event | None = None) -> None:
        """Apply, retry or park one message, then acknowledge it (or nak it for a later retry)."""
        stop = stop or asyncio.Event()
        held = in_hand or [msg]
        metadata = msg.metadata
        headers = dict(msg.headers or {})
        delivery = Delivery(
            consumer=self.name,
            stream=metadata.stream,
            subject=msg.subject,
            stream_seq=metadata.sequence.stream,
            headers=headers,
            payload=bytes(msg.data or b""),
            deliveries=metadata.num_delivered,
        )
        verdict = self._examine(delivery.subject, delivery.stream, headers, delivery.payload)
        if isinstance(verdict, _Rejected):
            await self._park(delivery, verdict, held, stop)
            await self._ack(msg)
            return
        envelope = verdict.event.envelope
        with tracer.start_as_current_span(
            f"consume {msg.subject}",
            context=propagate.extract(headers),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "nats",
                "messaging.destination.name": msg.subject,
                "messaging.message.id": str(envelope.event_id),
            },
        ):
            try:
                applied = await self._retrying(lambda: self._apply_once(verdict.handler, verdict.event), held, stop)
            except (ConsumerStopping, asyncio.CancelledError):
                raise
            except UnprocessableEvent as exc:
                rejected = _Rejected(ParkReason.UNPROCESSABLE, f"{type(exc).__name__}: {exc}", envelope)
                await self._park(delivery, rejected, held, stop)
                await self._ack(msg)
                return
            except Exception as exc:
                await self._handler_failed(msg, delivery, envelope, exc, held=held, stop=stop)
                return
        EVENTS_HANDLED.labels(self.name, envelope.event_type, "applied" if applied else "duplicate").inc()
        await self._ack(msg)

    def _examine(self, subject: str, stream: str, headers: dict[str, str], payload: bytes) -> _Accepted | _Rejected:
        """Is this message an event this consumer may apply, from its rightful producer?"""
        try:
            envelope = Envelope.from_headers(headers)
        except (KeyError, ValueError) as exc:
            return _Rejected(ParkReason.MALFORMED_ENVELOPE, f"malformed CloudEvents envelope: {exc!r}")
        contract = contract_for_type(envelope.event_type)
        if contract is None:
            return _Rejected(ParkReason.UNKNOWN_TYPE, f"unknown event type {envelope.event_type!r}", envelope)
        if (subject, stream, envelope.source) != (contract.subject, contract.stream, contract.source):
            return _Rejected(
                ParkReason.SOURCE_MISMATCH,
                f"{envelope.event_type} belongs on {contract.subject} in {contract.stream} from {contract.source}; "
                f"arrived on {subject} in {stream} from {envelope.source!r}",
                envelope,
            )
        handler = self._handlers.get(envelope.event_type)
        if handler is None:
            return _Rejected(ParkReason.UNKNOWN_TYPE, f"{envelope.event_type} is not handled by {self.name}", envelope)
        try:
            message = handler.message_type.FromString(payload)
        except DecodeError as exc:
            return _Rejected(ParkReason.UNDECODABLE, f"payload is not a {envelope.event_type}: {exc}", envelope)
        return _Accepted(handler, ReceivedEvent(envelope, message, subject))

    async def _handler_failed(
        self,
        msg: Msg,
        delivery: Delivery,
        envelope: Envelope,
        exc: Exception,
        *,
        held: Sequence[Msg],
        stop: asyncio.Event,
    ) -> None:
        error = f"{type(exc).__name__}: {exc}"
        EVENTS_HANDLED.labels(self.name, envelope.event_type, "failed").inc()
        waiting = isinstance(exc, EventNotYetApplicable)
        if delivery.deliveries >= self.policy.max_deliveries and not waiting:
            await self._park(delivery, _Rejected(ParkReason.HANDLER_FAILED, error, envelope), held, stop)
            await self._ack(msg)
            return
        delay = self.policy.redelivery_delay(min(delivery.deliveries, self.policy.max_deliveries))
        log.warning(
            "event handler failed; redelivery %d of %d in %.1f s",
            delivery.deliveries + 1,
            self.policy.max_deliveries,
            delay,
            exc_info=exc,
            extra={**self._extra(), "event_id": str(envelope.event_id), "error": error},
        )
        EVENT_RETRIES.labels(self.name, "redelivery").inc()
        try:
            await msg.nak(delay=delay)
        except Exception as nak_error:
            # JetStream redelivers it after ack_wait anyway.
            log.warning("nak failed: %s", nak_error, extra=self._extra())

    async def _park(self, delivery: Delivery, rejected: _Rejected, held: Sequence[Msg], stop: asyncio.Event) -> None:
        envelope = rejected.envelope
        event_type = envelope.event_type if envelope else "malformed"

        async def keep() -> None:
            await park(
                self._db,
                delivery,
                reason=rejected.reason,
                error=rejected.error,
                event_id=envelope.event_id if envelope else None,
                event_type=envelope.event_type if envelope else None,
            )

        await self._retrying(keep, held, stop)
        EVENTS_HANDLED.labels(self.name, event_type, "parked").inc()

    async def _ack(self, msg: Msg) -> None:
        try:
            await msg.ack_sync(timeout=2.0)
        except Exception as exc:
            # The effect (or the parked row) is committed: a redelivery finds the inbox row (or the
            # parked row) and changes nothing. Losing an ack is no reason to stop consuming.
            log.warning("acknowledgement failed; the message will be redelivered: %s", exc, extra=self._extra())

    async def _retrying(self, attempt: Callable[[], Awaitable[T]], held: Sequence[Msg], stop: asyncio.Event) -> T:
        """Run `attempt`, waiting out transient failures for as long as they last."""
        failures = 0
        while True:
            try:
                return await attempt()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                failures += 1
                delay = self.policy.transient_backoff.delay(failures)
                EVENT_RETRIES.labels(self.name, "transient").inc()
                log.warning(
                    "dependency unavailable; retrying in %.1f s: %s",
                    delay,
                    exc,
                    extra={**self._extra(), "attempt": failures},
                )
                await self._hold(held, delay, stop)

    async def _hold(self, held: Sequence[Msg], seconds: float, stop: asyncio.Event) -> None:
        """Wait `seconds`, telling JetStream the held messages are still being worked on."""
        deadline = time.monotonic() + seconds
        ping_every = self.policy.ack_wait / 3
        while (remaining := deadline - time.monotonic()) > 0:
            for msg in held:
                try:
                    await msg.in_progress()
                except Exception as exc:
                    # NATS may be what is unavailable; the message is then simply redelivered later.
                    log.debug("in_progress failed: %s", exc, extra=self._extra())
            try:
                await asyncio.wait_for(stop.wait(), timeout=min(remaining, ping_every))
            except TimeoutError:
                continue
            raise ConsumerStopping

    async def _apply_once(self, handler: EventHandler[Any], event: ReceivedEvent[Any]) -> bool:
        async with self._db.unit_of_work() as uow:
            return await self._apply_in(uow, handler, event)

    async def _apply_in(self, uow: UnitOfWork, handler: EventHandler[Any], event: ReceivedEvent[Any]) -> bool:
        inserted = await uow.session.execute(
            insert(inbox_table)
            .values(consumer=self.name, event_id=event.envelope.event_id, event_type=event.envelope.event_type)
            .on_conflict_do_nothing()
            .returning(inbox_table.c.event_id)
        )
        if inserted.first() is None:
            return False
        await handler.apply(uow, event)
        return True

    # --- replay -------------------------------------------------------------------------------

    async def replay(self, parked: ParkedMessage) -> str:
        """Apply a parked message through the inbox and mark it replayed, in one unit of work.

        Returns "applied", "duplicate" (its event had taken effect already) or "already_replayed".
        Raises `ReplayRefused` when the message can never be applied, and whatever the handler
        raises when it still fails (the row then stays parked).
        """
        verdict = self._examine(parked.subject, parked.stream, parked.headers, parked.payload)
        if isinstance(verdict, _Rejected):
            raise ReplayRefused(verdict.error)
        async with self._db.unit_of_work() as uow:
            current = await get_parked(uow.session, parked.id, for_update=True)
            if current is None or current.replayed_at is not None:
                return "already_replayed"
            applied = await self._apply_in(uow, verdict.handler, verdict.event)
            await mark_replayed(uow.session, parked.id)
        REPLAYED_TOTAL.labels(self.name).inc()
        EVENTS_HANDLED.labels(self.name, verdict.event.envelope.event_type, "replayed").inc()
        log.info(
            "parked message replayed",
            extra={**self._extra(), "parked_id": parked.id, "event_id": str(verdict.event.envelope.event_id)},
        )
        return "applied" if applied else "duplicate"

    def _extra(self) -> dict[str, str]:
        return {"consumer": self.name, "stream": self.stream}


async def _unsubscribe(subscription: JetStreamContext.PullSubscription) -> None:
    try:
        await subscription.unsubscribe()
    except Exception as exc:
        log.debug("unsubscribe failed: %s", exc)
