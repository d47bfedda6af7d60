"""Reliable events: transactional outbox -> JetStream -> idempotent inbox consumers."""

from comuna_platform.events.consumer import ConsumerPolicy, EventConsumer, EventHandler, ReceivedEvent
from comuna_platform.events.failures import EventNotYetApplicable, UnprocessableEvent, is_transient
from comuna_platform.events.outbox import NewEvent, OutboxRelay, stage_event, stage_events
from comuna_platform.events.parking import ParkReason
from comuna_platform.events.tables import events_metadata, inbox_table, outbox_table, parked_table

__all__ = [
    "ConsumerPolicy",
    "EventConsumer",
    "EventHandler",
    "EventNotYetApplicable",
    "NewEvent",
    "OutboxRelay",
    "ParkReason",
    "ReceivedEvent",
    "UnprocessableEvent",
    "events_metadata",
    "inbox_table",
    "is_transient",
    "outbox_table",
    "parked_table",
    "stage_event",
    "stage_events",
]
